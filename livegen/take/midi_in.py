"""A player's MIDI into a take: the input ports ``--midi-in`` names, listened to on their own threads.

Each message is stamped on the monotonic clock as it arrives (the port's reader thread) and goes
to the engine (``Engine.hear``: recorded on the player's track and in the session, sent on with
``--thru``, heard by the responder) and, in the ``accompany`` mode, through the ``ControlHub``:
the pitch-class histogram and density follow what the player held and played over the last few
seconds. Messages learned bindings take (``LearnedBindings``) steer their controls or actions
instead, and the ports only those bindings name are waited for when absent. More than
``MAX_RATE`` messages a second (a flood) are dropped and said once. A watcher notices a port
that vanished (one line; the music goes on) and opens it again when it returns.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from livegen.engine.engine import Engine
from livegen.errors import UserError
from livegen.midi import ports
from livegen.music.phrase import PlayerPhrase, PlayerPulse, estimate_controls
from livegen.take.controls import ControlHub
from livegen.take.midi_learn import LearnedBindings

MAX_RATE = 2000  # player messages a second passed on (a MIDI cable carries ~1000); the rest are dropped
ACCOMPANY_SECONDS = 4.0  # how far back the accompaniment listens
ACCOMPANY_EVERY = 0.1  # s between its updates of the controls
WATCH_EVERY = 1.0  # s between looks for a vanished or returned port


class PlayerInputs:
    """The take's MIDI inputs, open from ``start`` to ``stop``."""

    def __init__(self, api: str, names: tuple[str, ...], hub: ControlHub, accompany: bool = False,
                 report: Callable[[str], None] | None = None, learned: LearnedBindings | None = None):
        self.api, self.hub, self.accompany, self.learned = api, hub, accompany, learned
        self.report = report or (lambda text: None)
        available = ports.list_ports(api)["inputs"]
        self.names = [ports.match_port(name, available, kind="input") for name in names]  # errors before a note
        self.waiting = [name for name in (learned.ports if learned else ()) if name not in self.names]
        self.engine: Engine | None = None
        self.pulse: PlayerPulse | None = None  # set when the take follows the player's tempo
        self.ports: dict[str, ports.InputPort | None] = {}
        self.phrase = PlayerPhrase()  # the accompaniment's ear
        self._lock = threading.Lock()
        self._window_start, self._window_count = 0.0, 0
        self.dropped = 0
        self._last_follow = 0.0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, engine: Engine) -> "PlayerInputs":
        self.engine = engine
        available = ports.list_ports(self.api)["inputs"] if self.waiting else []
        for name in self.names:
            self.ports[name] = self._open(name)
        for name in self.waiting:  # a controller's port bound in the preset: opened now or when it appears
            self.ports[name] = None
            if name in available:
                self.ports[name] = self._open(name)
            else:
                self.report(f"MIDI input {name!r} (learned bindings) is not here: waiting for it")
        self._watcher = threading.Thread(target=self._watch, name="livegen-midi-in-watch", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5.0)
        for port in self.ports.values():
            if port is not None:
                port.close()
        self.ports = {}

    def _open(self, name: str) -> ports.InputPort:
        return ports.RtMidiInput(self.api, name, lambda at, msg: self._on_message(at, msg, name), report=self.report)

    def _on_message(self, at: float, msg: list[int], port: str) -> None:
        """On a port's thread: pass the message on at once, never waiting."""
        with self._lock:
            if at - self._window_start >= 1.0:
                self._window_start, self._window_count = at, 0
            self._window_count += 1
            if self._window_count > MAX_RATE:
                self.dropped += 1
                if self.dropped == 1:
                    self.report(f"MIDI input: more than {MAX_RATE} messages a second; the excess is left out")
                return
        engine = self.engine
        if engine is None or not engine.running:
            return
        if self.learned is not None and self.learned.handle(port, at, msg, at - engine.start_time):
            return  # a controller's move, not the player's playing
        if port in self.waiting:
            return  # a controller's port: only its bound messages count
        engine.hear(msg, at=at)
        if self.pulse is not None:
            self.pulse.hear(at, msg)
        if self.accompany:
            self._follow(at - engine.start_time, msg)

    def _follow(self, t: float, msg: list[int]) -> None:
        """Accompany: the histogram and density of the player's last few seconds, as controls."""
        if self.phrase.hear(t, msg) != "on" or t - self._last_follow < ACCOMPANY_EVERY:
            return
        self._last_follow = t
        notes = self.phrase.between(t - ACCOMPANY_SECONDS, t + 1e-6)
        heard = estimate_controls(notes, self.hub.controls, span=ACCOMPANY_SECONDS)
        self.hub.player(heard, t)

    def _watch(self) -> None:
        """Once a second, a look at the inputs there are (one client kept open for it)."""
        lister = ports.InputLister(self.api)
        failing = False
        try:
            while not self._stop.wait(WATCH_EVERY):
                try:
                    self._reconcile(lister.inputs())
                    failing = False
                except Exception as exc:  # the MIDI system itself went away: said once, tried again
                    if not failing:
                        self.report(f"MIDI inputs cannot be listed ({exc}); trying again every second")
                    failing = True
        finally:
            lister.close()

    def _reconcile(self, available: list[str]) -> None:
        """A port gone is closed and said; one back is opened again and said."""
        for name, port in list(self.ports.items()):
            if port is not None and name not in available:
                port.close()
                self.ports[name] = None
                self.report(f"MIDI input {name!r} is gone: the music goes on, and it reconnects when it returns")
            elif port is None and name in available:
                try:
                    self.ports[name] = self._open(name)
                    self.report(f"MIDI input {name!r} is back")
                except UserError:
                    continue
