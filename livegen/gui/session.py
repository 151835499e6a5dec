"""The panel's engine side, free of Qt: takes, merged controls and MIDI port listings.

Starting a take (loading a model, spawning the clock process) and listing ports (rtmidi opens a
client per listing) take tens to hundreds of ms, so both run on worker threads; the Qt thread
only submits work and reads results on its timer. Nothing here ever waits on Qt. Every job is
``guarded``: whatever it raises is said once per kind on the worker's ``errors`` (the window's
banner) and counted in its ``faults``, and the worker takes the next job.
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
from livegen.engine.mixer import ControlMixer
from livegen.errors import UserError
from livegen.faults import Faults, guarded
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
    replay: object | None = None  # a livegen.sessions.RecordedTake: its control stream steers, not the panel
    soundfont: str | None = None  # the built-in synth's SoundFont (None: its default)
    script: str | None = None  # a control script (.jsonl) that steers from the take's start
    layers: tuple = ()  # the preset's [[layers]]: more models playing beside the main one
    clock_out: str | None = None  # a port to send MIDI clock to (start, ticks at the tempo, stop)
    tempo_source: str = "internal"  # the beat a take follows: internal | clock:PORT | link (as the preset says)


class ControlHub:
    """Where the panel's controls meet: the hand (XY pad, camera) sets pitch and density, the
    armband or the z bars set z and the theme, the panel sets the pitch-class histogram; the
    merged value steers the playing engine."""

    def __init__(self, controls: Controls | None = None):
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._t0 = time.monotonic()
        self.mixer = ControlMixer(controls or Controls(), self.clock)

    @property
    def controls(self) -> Controls:
        """The merged controls in force now (a script's changes still ahead are not in them)."""
        return self.mixer.current()

    def attach(self, engine: Engine | None) -> None:
        with self._lock:
            self._engine = engine
        self.mixer.reset(self.mixer.current())  # what a script held for later belonged to the last take

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

    def remote(self, controls: Controls, t: float | None = None) -> None:
        """Sink for OSC (thread-safe): the pitch, density and z it plays, never the key or theme."""
        self._update(t, pitch=controls.pitch, density=controls.density, z=controls.z)

    def set_histogram(self, histogram: tuple[float, ...] | None) -> None:
        self._update(None, histogram=histogram)

    def clock(self) -> float:
        """Performance time of the playing take (sources stamp their values with it)."""
        engine = self._engine
        return engine.now() if engine is not None else time.monotonic() - self._t0

    def _update(self, t: float | None, **changes) -> None:
        engine = self._engine
        self.mixer.change(engine.set_controls if engine is not None and engine.running else None, t, **changes)


class Takes:
    """One Engine per take. Starts and stops run in order on one worker thread; failures land in
    ``errors`` for the panel to show. Loaded models are kept, so a new take starts quickly; so is
    the outside beat (a MIDI clock in, a Link session), which a ``TempoFollow`` follows during
    each take, as ``perform --clock-in`` / ``--link`` do."""

    def __init__(self, hub: ControlHub):
        self.hub = hub
        self.engine: Engine | None = None
        self.replaying = None  # the control source of a take being replayed
        self.script = None  # the control script steering the take
        self.beats = None  # the open BeatSource, kept from take to take while its choice stays
        self.beats_for = "internal"  # the tempo source ``beats`` was opened for
        self.follow = None  # the TempoFollow locking the playing take to ``beats``
        self.listeners: list = []  # attached to every take's engine (OSC out's note feed)
        self.errors: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.faults = Faults("the panel's take worker", "press Play again; if it repeats, restart the panel and "
                             "report this line", self.errors.put)
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
            self._submit(self._open_beats, "internal", 0.0)  # leaves the clock port or Link session
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

    def _model(self, name: str):
        if name not in self._models:
            from livegen.cli import load_model

            self._models[name] = load_model(name)
        return self._models[name]

    def _start_now(self, request: TakeRequest) -> None:
        from livegen import presets
        from livegen.cli import build_layers, choose_output, clock_port

        model = self._model(request.model)
        wanted = SimpleNamespace(no_port=False, port=request.port or None, virtual=request.virtual or None,
                                 api=request.api, soundfont=request.soundfont, layer=None, emg=None)
        output = choose_output(wanted, presets.Preset())
        layers = build_layers(wanted, presets.Preset(layers=list(request.layers)), output, request.settings, model)
        clock_out = clock_port(wanted, presets.Preset(), request.clock_out) if request.clock_out else None
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
        engine.listeners += self.listeners
        engine.start()
        self.engine = engine
        self.hub.attach(engine)
        engine.set_controls(self.hub.controls)  # whatever moved while the clock process started
        if request.script:
            self._start_script(request.script, engine, 0.0)
        self._follow_tempo(request, engine)

    def _follow_tempo(self, request: TakeRequest, engine: Engine) -> None:
        """Lock the take to the chosen outside beat; one that cannot open is reported and the take
        plays on at the panel's tempo (the music must not stop for a missing clock)."""
        from livegen.engine.tempo_follow import TempoFollow

        try:
            self._open_beats(request.tempo_source, request.settings.bpm, request.api)
        except UserError as exc:
            self.errors.put(f"Tempo: {exc}; playing at {request.settings.bpm:g} bpm")
            return
        if self.beats is not None:
            self.follow = TempoFollow(engine, self.beats).start()

    def _open_beats(self, tempo_source: str, bpm: float, api: str = "auto") -> None:
        """Open the BeatSource ``tempo_source`` names, with ``perform``'s own ``--clock-in`` and
        ``--link`` code, closing the one open for another choice ("internal": none)."""
        from livegen import presets
        from livegen.cli import beat_source

        if tempo_source == self.beats_for:
            return
        if self.beats is not None:
            self.beats.close()
        self.beats, self.beats_for = None, "internal"
        kind, _, port = tempo_source.partition(":")
        wanted = SimpleNamespace(clock_in=port if kind == "clock" else None, link=kind == "link", api=api)
        self.beats = beat_source(wanted, presets.Preset(), bpm)
        self.beats_for = tempo_source

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
        if self.follow is not None:
            self.follow.stop()
            self.follow = None
        if self.replaying is not None:
            self.replaying.stop()
            self.replaying = None
        if engine is not None:
            engine.stop()


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
        import rtmidi

        from livegen.midi import ports

        self._close_listers()
        rtapis = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}
        self._api = api
        if api == "fluidsynth":  # the built-in synth: one output, nothing to list
            self._resolved, self._lister = api, SimpleNamespace(get_ports=lambda: ["fluidsynth"], delete=lambda: None)
        else:
            self._resolved = ports.resolve_api(api)
            if self._resolved is not None:
                self._lister = rtmidi.MidiOut(rtapis[self._resolved], name="livegen-panel")
        clock_api = self._resolved if self._resolved in ports.APIS else ports.resolve_api("auto")  # as --clock-in
        if clock_api is not None:
            self._input_lister = rtmidi.MidiIn(rtapis[clock_api], name="livegen-panel-in")

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


class PanelPerformance:
    """The ``Performance`` an OscServer steers on the panel, as ``EngineTakes`` is on the command
    line: pitch, density and z go through the ControlHub, so the pad, sliders and z bars move with
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
        from livegen import presets

        self._apply(presets.load(name))


class OscLink:
    """The panel's OSC, as ``perform --osc PORT --osc-host H --osc-out HOST:PORT``: an OscServer
    and an OscState started and closed on a worker thread (closing joins their threads, an out
    host's name may need a lookup), so the Qt thread never waits; ``status`` and ``errors`` say
    how it went."""

    def __init__(self, performance: PanelPerformance, takes: Takes, log):
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
        from livegen.control.osc import OscServer, OscState, parse_target

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
