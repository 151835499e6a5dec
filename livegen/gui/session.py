"""The panel's engine side, free of Qt: takes, merged controls and MIDI port listings.

Starting a take (loading a model, spawning the clock process) and listing ports (rtmidi opens a
client per listing) take tens to hundreds of ms, so both run on worker threads; the Qt thread
only submits work and reads results on its timer. Nothing here ever waits on Qt.
"""
from __future__ import annotations

import dataclasses
import queue
from collections import deque
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

from livegen.engine.engine import Engine, EngineSettings
from livegen.errors import UserError
from livegen.music.conditioning import Controls


@dataclass
class TakeRequest:
    """Everything a new take needs, read from the panel when Play is pressed."""

    model: str  # "charrnn" or a checkpoint path
    api: str  # auto | alsa | jack
    port: str  # "" = the first output (or a virtual "livegen" port when there is none)
    virtual: str  # a virtual port to create instead of ``port``
    settings: EngineSettings
    record: str | None = None
    replay: object | None = None  # a livegen.sessions.Take: its control stream steers, not the panel
    soundfont: str | None = None  # the built-in synth's SoundFont (None: its default)
    script: str | None = None  # a control script (.jsonl) that steers from the take's start
    layers: tuple = ()  # the preset's [[layers]]: more models playing beside the main one
    clock_out: str | None = None  # a port to send MIDI clock to (start, ticks at the tempo, stop)


class ControlHub:
    """Where the panel's controls meet: the hand (XY pad, camera) sets pitch and density, the
    armband or the z bars set z and the theme, the panel sets the pitch-class histogram; the
    merged value steers the playing engine."""

    def __init__(self, controls: Controls | None = None):
        self._lock = threading.Lock()
        self.controls = controls or Controls()
        self._engine: Engine | None = None
        self._t0 = time.monotonic()

    def attach(self, engine: Engine | None) -> None:
        with self._lock:
            self._engine = engine

    def gesture(self, controls: Controls, t: float | None = None) -> None:
        """Sink for the hand (pad, camera; thread-safe): takes pitch and density only, so the
        armband's z is never overwritten by a source that does not know it."""
        self._update(t, pitch=controls.pitch, density=controls.density)

    def muscles(self, t: float | None = None, **changes) -> None:
        """For the armband and the z bars (thread-safe): z, and the theme (with toward, mix)."""
        if not set(changes) <= {"z", "theme", "toward", "mix"}:
            raise ValueError(f"not a muscles control: {sorted(set(changes) - {'z', 'theme', 'toward', 'mix'})}")
        self._update(t, **changes)

    def armband(self):
        """A sink for an ``EmgControls``: it plays z; a theme it recalls (a held gesture) is taken
        too, but the theme the panel chose is not overwritten by the one the source started with."""
        started = [self.controls.theme]

        def sink(controls: Controls, t: float | None = None) -> None:
            if controls.theme != started[0]:
                started[0] = controls.theme
                self.muscles(t, z=controls.z, theme=controls.theme, toward=None, mix=0.0)
            else:
                self.muscles(t, z=controls.z)
        return sink

    def script(self, offset: float = 0.0):
        """A sink for a control script started ``offset`` s into the take: it steers what the
        script's lines change, stamped on the take's clock, and leaves the rest to the hand, the
        armband and the panel (a script's merged value would otherwise undo their moves)."""
        last = [self.controls]

        def sink(controls: Controls, t: float | None = None) -> None:
            changes = {f.name: getattr(controls, f.name) for f in dataclasses.fields(controls)
                       if getattr(controls, f.name) != getattr(last[0], f.name)}
            last[0] = controls
            if changes:
                self._update(None if t is None else t + offset, **changes)
        return sink

    def set_histogram(self, histogram: tuple[float, ...] | None) -> None:
        self._update(None, histogram=histogram)

    def clock(self) -> float:
        """Performance time of the playing take (sources stamp their values with it)."""
        engine = self._engine
        return engine.now() if engine is not None else time.monotonic() - self._t0

    def _update(self, t: float | None, **changes) -> None:
        with self._lock:
            self.controls = dataclasses.replace(self.controls, **changes)
            controls, engine = self.controls, self._engine
        if engine is not None and engine.running:
            engine.set_controls(controls, t)


class Takes:
    """One Engine per take. Starts and stops run in order on one worker thread; failures land in
    ``errors`` for the panel to show. Loaded models are kept, so a new take starts quickly."""

    def __init__(self, hub: ControlHub):
        self.hub = hub
        self.engine: Engine | None = None
        self.replaying = None  # the control source of a take being replayed
        self.script = None  # the control script steering the take
        self.errors: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._models: dict[str, object] = {}
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-takes")
        self._pending: list[Future] = []
        self._closed = False

    @property
    def busy(self) -> bool:
        self._pending = [f for f in self._pending if not f.done()]
        return bool(self._pending)

    def play(self, request: TakeRequest) -> None:
        """Stop the current take (if any) and start a new one."""
        self._submit(self._stop_now)
        self._submit(self._start_now, request)

    def stop(self) -> None:
        self._submit(self._stop_now)

    def use_script(self, path: str | None) -> None:
        """Steer the playing take from a control script, from its first line on (None: stop it)."""
        self._submit(self._switch_script, path)

    def preload(self, model: str) -> None:
        """Load a model ahead of Play; a bad checkpoint is reported at once."""
        self._submit(self._model, model)

    def panic(self) -> None:
        engine = self.engine
        if engine is not None:
            engine.panic()

    def shutdown(self) -> None:
        """Stop the take and wait for it (the window is closing); idempotent."""
        if not self._closed:
            self._submit(self._stop_now)
            self._closed = True  # a timer firing while the window closes must not start a take
            self._jobs.shutdown(wait=True)

    def _submit(self, job, *args) -> None:
        if self._closed:
            return
        self._pending.append(self._jobs.submit(self._reporting, job, *args))

    def _reporting(self, job, *args) -> None:
        try:
            job(*args)
        except UserError as exc:
            self.errors.put(str(exc))
        except Exception as exc:  # the panel must show it and live on, whatever it was
            self.errors.put(f"{type(exc).__name__}: {exc}")

    def _model(self, name: str):
        if name not in self._models:
            from livegen.cli import load_model

            self._models[name] = load_model(name)
        return self._models[name]

    def _start_now(self, request: TakeRequest) -> None:
        from livegen import presets
        from livegen.cli import build_layers, choose_output

        model = self._model(request.model)
        wanted = SimpleNamespace(no_port=False, port=request.port or None, virtual=request.virtual or None,
                                 api=request.api, soundfont=request.soundfont, layer=None, emg=None)
        output = choose_output(wanted, presets.Preset())
        layers = build_layers(wanted, presets.Preset(layers=list(request.layers)), output, request.settings, model)
        clock_out = _clock_output(request.api, request.clock_out) if request.clock_out else None
        if request.replay is not None:
            source = request.replay.source()
            engine = Engine(model, output, request.settings, source.initial(), record=request.record,
                            end=request.replay.duration, layers=layers, clock_out=clock_out)
            engine.start()
            source.start(engine.set_controls, engine.now)
            self.engine, self.replaying = engine, source
            return
        engine = Engine(model, output, request.settings, self.hub.controls, record=request.record, layers=layers,
                        clock_out=clock_out)
        engine.start()
        self.engine = engine
        self.hub.attach(engine)
        engine.set_controls(self.hub.controls)  # whatever moved while the clock process started
        if request.script:
            self._start_script(request.script, engine, 0.0)

    def _switch_script(self, path: str | None) -> None:
        self._stop_script()
        engine = self.engine
        if path and engine is not None and engine.running and self.replaying is None:
            self._start_script(path, engine, max(0.0, engine.now()))

    def _start_script(self, path: str, engine: Engine, offset: float) -> None:
        from livegen.sensors.script import ScriptControls

        source = ScriptControls(path, self.hub.controls)
        sink = self.hub.script(offset)
        sink(source.initial(), 0.0)  # its lines at t = 0
        source.start(sink, lambda: engine.now() - offset)
        self.script = source

    def _stop_script(self) -> None:
        if self.script is not None:
            self.script.stop()
            self.script = None

    def _stop_now(self) -> None:
        engine, self.engine = self.engine, None
        self.hub.attach(None)
        self._stop_script()
        if self.replaying is not None:
            self.replaying.stop()
            self.replaying = None
        if engine is not None:
            engine.stop()


def _clock_output(api: str, wanted: str) -> tuple[str, str]:
    """(api, exact port) for the MIDI clock, as ``perform --clock-out``: on the MIDI system in use
    (auto when the notes go to the built-in synth, which has no clock input)."""
    from livegen.midi import ports

    resolved = ports.resolve_api(api if api in ports.APIS else "auto")
    if resolved is None:
        raise UserError(f"MIDI clock out to {wanted!r} needs a MIDI system (ALSA or a JACK server)")
    return resolved, ports.match_port(wanted, ports.list_ports(resolved)["outputs"])


class PortWatch:
    """Lists MIDI outputs on a worker thread; ``latest`` is the newest (api, outputs), or None when
    the MIDI system asked for is not there (Play then says why). One listing client lives as long as the API choice: on JACK every
    new client and port reorders the graph, and a 1 Hz churn of them makes receivers drop events."""

    def __init__(self):
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-ports")
        self._future: Future | None = None
        self._api: str | None = None  # the choice the lister was made for (auto | alsa | jack)
        self._lister = None  # rtmidi.MidiOut kept open for listing
        self._resolved: str | None = None
        self.latest: tuple[str | None, list[str]] | None = None
        self.listed_at = 0.0  # monotonic time of ``latest``

    def refresh(self, api: str, rescan: bool = False) -> None:
        """Ask for a new listing unless one is still being made; ``rescan`` looks for the MIDI
        system again (a JACK server started since)."""
        if self._future is None or self._future.done():
            self._future = self._jobs.submit(self._list, api, rescan)

    def _list(self, api: str, rescan: bool) -> None:
        try:
            if rescan or api != self._api:
                self._open_lister(api)
            outputs = self._lister.get_ports() if self._lister is not None else []
            self.latest, self.listed_at = (self._resolved, outputs), time.monotonic()
        except (UserError, RuntimeError):  # rtmidi raises RuntimeError subclasses
            self._api, self.latest = None, None

    def _open_lister(self, api: str) -> None:
        import rtmidi

        from livegen.midi import ports

        if self._lister is not None:
            self._lister.delete()
        self._lister = None
        if api == "fluidsynth":  # the built-in synth: one output, nothing to list
            self._api, self._resolved, self._lister = api, api, SimpleNamespace(get_ports=lambda: ["fluidsynth"],
                                                                                delete=lambda: None)
            return
        self._api, self._resolved = api, ports.resolve_api(api)
        if self._resolved is not None:
            rtapi = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}[self._resolved]
            self._lister = rtmidi.MidiOut(rtapi, name="livegen-panel")

    def shutdown(self) -> None:
        self._jobs.shutdown(wait=True)


class PlayedNotes:
    """What the commentary listens to: the messages the panel drained from the playing take
    (the engine's ring buffer has one reader, the panel), with that take's clock and settings."""

    def __init__(self, takes: Takes):
        self.takes = takes
        self.sent_messages: deque = deque(maxlen=20_000)

    def now(self) -> float:
        engine = self.takes.engine
        return engine.now() if engine is not None else 0.0

    @property
    def settings(self):
        engine = self.takes.engine
        return engine.settings if engine is not None else None
