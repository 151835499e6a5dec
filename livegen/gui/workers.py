"""The panel's engine side, free of Qt: its take worker, MIDI port listings and OSC.

Starting a take (loading a model, spawning the clock process) and listing ports (rtmidi opens a
client per listing) take tens to hundreds of ms, so both run on worker threads; the Qt thread
only submits work and reads results on its timer. Nothing here ever waits on Qt. Every job is
``guarded``: whatever it raises is said once per kind on the worker's ``errors`` (the window's
banner) and counted in its ``faults``, and the worker takes the next job.
"""
from __future__ import annotations

import queue
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace

from livegen import presets
from livegen.checks import parse_target
from livegen.control.osc import OscServer, OscState
from livegen.engine.engine import Engine
from livegen.errors import UserError
from livegen.faults import Faults, guarded
from livegen.midi import ports
from livegen.music.conditioning import Controls
from livegen.take.controls import ControlHub
from livegen.take.runner import TakeRunner
from livegen.take.spec import TakeSpec


class TakeWorker:
    """The panel's takes, each started from a ``TakeSpec`` by the take layer's runner, as
    ``livegen perform`` starts them. Starts and stops run in order on one worker thread; failures
    land in ``errors`` for the panel to show. The runner keeps loaded models, so a new take starts
    quickly, and the outside beat (a MIDI clock in, a Link session) from take to take."""

    def __init__(self, hub: ControlHub):
        self.hub = hub
        self.errors: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.faults = Faults("the panel's take worker", "press Play again; if it repeats, restart the panel and "
                             "report this line", self.errors.put)
        self.runner = TakeRunner(hub, report=self.errors.put)
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-takes")
        self._pending: list[Future] = []
        self._closed = False

    @property
    def engine(self) -> Engine | None:
        return self.runner.engine

    @property
    def listeners(self) -> list:
        """Attached to every take's engine (OSC out's note feed)."""
        return self.runner.listeners

    @property
    def replaying(self) -> bool:
        spec = self.runner.spec
        return self.runner.engine is not None and spec is not None and spec.controls.startswith("replay:")

    @property
    def follow(self):
        return self.runner.follow

    @property
    def beats_for(self) -> str:
        return self.runner.beats_for

    @property
    def busy(self) -> bool:
        self._pending = [f for f in self._pending if not f.done()]
        return bool(self._pending)

    def play(self, spec: TakeSpec) -> None:
        """Stop the current take (if any) and start a new one."""
        self._submit(self.runner.end_take)
        self._submit(self.runner.start_take, spec)

    def stop(self) -> None:
        self._submit(self.runner.end_take)

    def start_recording(self, path: str) -> None:
        """Record the playing take from now on, on its clock: no new take, no gap."""
        self._submit(self.runner.start_recording, path)

    def stop_recording(self) -> None:
        self._submit(self.runner.stop_recording)

    def use_script(self, path: str | None) -> None:
        """Steer the playing take from a control script, from its first line on (None: stop it)."""
        self._submit(self.runner.use_script, path)

    def preload(self, model: str) -> None:
        """Load a model ahead of Play; a bad checkpoint is reported at once."""
        self._submit(self.runner.model, model)

    def panic(self) -> None:
        engine = self.engine
        if engine is not None:
            engine.panic()

    def shutdown(self) -> None:
        """Stop the take and wait for it (the window is closing); idempotent."""
        if not self._closed:
            self._submit(self.runner.close)  # also leaves the clock port or Link session
            self._closed = True  # a timer firing while the window closes must not start a take
            self._jobs.shutdown(wait=True)

    def _submit(self, job, *args) -> None:
        if self._closed:
            return
        self._pending.append(self._jobs.submit(guarded(self._reporting, self.faults), job, *args))

    def _reporting(self, job, *args) -> None:
        """A ``UserError`` is the user's to fix: said every time, not counted as a fault."""
        try:
            job(*args)
        except UserError as exc:
            self.errors.put(str(exc))


class PortWatch:
    """Lists MIDI outputs (where notes and clock go) and inputs (where a clock comes from) on a
    worker thread; ``latest`` is the newest (api, outputs, inputs), or None when the MIDI system
    asked for is not there (Play then says why). The listing clients live as long as the API choice: on JACK every
    new client and port reorders the graph, and a 1 Hz churn of them makes receivers drop events."""

    def __init__(self):
        self.errors: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.faults = Faults("the panel's MIDI port listing", "the port lists may be out of date; if it repeats, "
                             "restart the panel and report this line", self.errors.put)
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-ports")
        self._future: Future | None = None
        self._api: str | None = None  # the choice the lister was made for (auto | alsa | jack)
        self._lister = None  # rtmidi.MidiOut kept open for listing
        self._input_lister = None  # rtmidi.MidiIn, on the MIDI system a clock comes in on
        self._resolved: str | None = None
        self.latest: tuple[str | None, list[str], list[str]] | None = None
        self.listed_at = 0.0  # monotonic time of ``latest``
        self._closed = False

    def refresh(self, api: str, rescan: bool = False) -> None:
        """Ask for a new listing unless one is still being made; ``rescan`` looks for the MIDI
        system again (a JACK server started since)."""
        if not self._closed and (self._future is None or self._future.done()):
            self._future = self._jobs.submit(guarded(self._list, self.faults), api, rescan)

    def _list(self, api: str, rescan: bool) -> None:
        try:
            if rescan or api != self._api:
                self._open_lister(api)
            outputs = self._lister.get_ports() if self._lister is not None else []
            inputs = self._input_lister.get_ports() if self._input_lister is not None else []
            self.latest, self.listed_at = (self._resolved, outputs, inputs), time.monotonic()
        except (UserError, RuntimeError):  # rtmidi raises RuntimeError subclasses
            self._api, self.latest = None, None

    def _open_lister(self, api: str) -> None:
        self._close_listers()
        self._api = api
        if api == "fluidsynth":  # the built-in synth: one output, nothing to list
            self._resolved, self._lister = api, SimpleNamespace(get_ports=lambda: ["fluidsynth"], delete=lambda: None)
        else:
            self._resolved = ports.resolve_api(api)
            if self._resolved is not None:
                self._lister = ports.rtmidi_client(self._resolved, output=True)
        clock_api = self._resolved if self._resolved in ports.APIS else ports.resolve_api("auto")  # as --clock-in
        if clock_api is not None:
            self._input_lister = ports.rtmidi_client(clock_api, output=False)

    def _close_listers(self) -> None:
        for lister in (self._lister, self._input_lister):
            if lister is not None:
                lister.delete()
        self._lister = self._input_lister = None

    def shutdown(self) -> None:
        """Leave the MIDI system (a JACK server serves a limited number of clients); idempotent."""
        if not self._closed:
            self._closed = True
            self._jobs.submit(guarded(self._close_listers, self.faults))
            self._jobs.shutdown(wait=True)


class PlayedNotes:
    """What the commentary listens to: the messages the panel drained from the playing take
    (the engine's ring buffer has one reader, the panel), with that take's clock and settings."""

    def __init__(self, takes: TakeWorker):
        self.takes = takes
        self.sent_messages: deque = deque(maxlen=20_000)

    def now(self) -> float:
        engine = self.takes.engine
        return engine.now() if engine is not None else 0.0

    @property
    def settings(self):
        engine = self.takes.engine
        return engine.settings if engine is not None else None


class PanelPerformance:
    """The ``Performance`` an OscServer steers on the panel, as the take runner is on the
    command line: pitch, density and z go through the ControlHub, so the pad, sliders and z bars move with
    them; /play, /stop, /panic and /preset are handed to ``press`` and ``apply``, which the window
    makes thread-safe (queued to the Qt thread, where they press its own buttons)."""

    def __init__(self, hub: ControlHub, press, apply):
        self.hub, self._press, self._apply = hub, press, apply

    def controls(self) -> Controls:
        return self.hub.controls

    def steer(self, controls: Controls) -> None:
        self.hub.remote(controls)

    def play(self) -> None:
        self._press("play")

    def stop(self) -> None:
        self._press("stop")

    def panic(self) -> None:
        self._press("panic")

    def preset(self, name: str) -> None:
        """Read here, so an unknown preset is OSC's logged and ignored message; applied on the Qt thread."""
        self._apply(presets.load(name))


class OscLink:
    """The panel's OSC, as ``perform --osc PORT --osc-host H --osc-out HOST:PORT``: an OscServer
    and an OscState started and closed on a worker thread (closing joins their threads, an out
    host's name may need a lookup), so the Qt thread never waits; ``status`` and ``errors`` say
    how it went."""

    def __init__(self, performance: PanelPerformance, takes: TakeWorker, log):
        self.performance, self.takes, self.log = performance, takes, log
        self.errors: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.faults = Faults("the panel's OSC worker", "OSC may be off: switch it off and on again; if it repeats, "
                             "report this line", lambda text: self.errors.put(f"OSC: {text}"))
        self.server = None
        self.state = None
        self.status = "off"
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-osc")
        self._closed = False

    def configure(self, port: int, host: str, out: str) -> None:
        """Listen on ``host:port`` (0: OSC off) and send the state to ``out`` ("": nowhere)."""
        if not self._closed:
            self._jobs.submit(guarded(self._restart, self.faults), port, host, out)

    def shutdown(self) -> None:
        """Close the server and the state sender and wait for it (the window is closing); idempotent."""
        if not self._closed:
            self._closed = True
            self._jobs.submit(guarded(self._close, self.faults))
            self._jobs.shutdown(wait=True)

    def _restart(self, port: int, host: str, out: str) -> None:
        self._close()
        if not port:
            return
        try:
            self.server = OscServer(self.performance, port, host, log=self.log).start()
            listening = "{}:{}".format(*self.server.address)
            if out:
                takes = self.takes
                self.state = OscState(self.performance, *parse_target(out),
                                      playing=lambda: takes.engine is not None and takes.engine.running,
                                      clock=self.performance.hub.clock).start()
                self.takes.listeners.append(self.state.on_sent)  # the next takes' notes
                engine = takes.engine
                if engine is not None:
                    engine.listeners.append(self.state.on_sent)  # and the playing one's
            self.status = f"listening on {listening}" + (f", state to {out}" if out else "")
        except UserError as exc:
            self._close()
            self.status = "off"
            self.errors.put(f"OSC: {exc}")

    def _close(self) -> None:
        if self.state is not None:
            self.takes.listeners.remove(self.state.on_sent)
            engine = self.takes.engine
            if engine is not None and self.state.on_sent in engine.listeners:  # the playing take's too
                engine.listeners.remove(self.state.on_sent)
            self.state.close()
            self.state = None
        if self.server is not None:
            self.server.close()
            self.server = None
        self.status = "off"
