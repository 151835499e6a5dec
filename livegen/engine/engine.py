"""The live engine: a generator thread running ahead of an output-clock process.

The generator keeps ``lookahead`` seconds of music scheduled in the player (see player.py).
A control change takes effect ``CONTROL_DELAY`` after it arrives: the generator rolls back to
the first token at or after that instant, the player drops the future those tokens made, and
regeneration resumes from the saved state. Applying every change at arrival + a fixed delay
(rather than "whenever the thread got to it") makes a take a pure function of the control
stream and the seed, so scripted and replayed takes are reproducible note for note.

Layers play several models at once on one clock (e.g. the Char-RNN's melody from the camera
beside the DCRNN's rhythm from the armband): every layer reads the same control stream, hears
only the controls its model uses, and rolls back on its own.
"""
from __future__ import annotations

import multiprocessing
import os
import select
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from livegen.engine.generator import Generator, LiveGenerator, Steering
from livegen.engine.player import LayerOutput, PlayerConfig, run_player
from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.music.tempo import MAX_BPM, MIN_BPM

GENERATOR_PRIORITY = 1  # SCHED_FIFO, below the clock's (see player.CLOCK_PRIORITY)
SEND_TIMEOUT = 2.0  # s the clock may leave its pipe full before the take is failed
CONTROL_DELAY = 0.005  # s from a control's arrival to the instant it governs the music
START_MARGIN = 0.25  # s between start() and performance time 0: room to generate the first notes


@dataclass
class OutputChoice:
    api: str | None = None  # None: no MIDI system; "fluidsynth": the built-in synth
    port: str | None = None
    virtual: bool = False
    soundfont: str | None = None  # the built-in synth's SoundFont (None: its default)


@dataclass
class EngineSettings:
    lookahead: float = 0.3
    temperature: float = 1.0
    seed: int = 0
    channel: int = 0
    program: int | None = None
    steering: bool = True
    max_note_seconds: float = 4.0
    max_polyphony: int = 12
    bpm: float = 120.0  # the DCRNN's grid (the Char-RNN keeps its own time)
    external_z: tuple[int, ...] = tuple(range(8))  # the DCRNN's z dims that the controls' "z" plays
    volume: int | None = None  # channel volume (CC 7) of the main layer; None leaves the synth's


@dataclass
class Layer:
    """A voice beside the main one: its own model, port, channel (0..15), program and volume."""

    model: object
    output: OutputChoice
    channel: int = 0
    program: int | None = None
    volume: int | None = None
    temperature: float | None = None  # None: the engine's

    def describe(self) -> dict:
        return {"model": self.model.kind, "channel": self.channel + 1, "program": self.program,
                "volume": self.volume, "port": self.output.port, "temperature": self.temperature}


def make_generator(model, controls: Controls, settings: EngineSettings) -> LiveGenerator:
    """The live generator for a model, by its kind."""
    if model.kind == "charrnn":
        return Generator(model, controls, settings.seed, settings.temperature, Steering(enabled=settings.steering),
                         settings.channel, settings.max_note_seconds, settings.max_polyphony)
    if model.kind == "dcrnn":
        from livegen.engine.dcrnn_live import DCRNNGenerator

        return DCRNNGenerator(model, controls, settings.seed, settings.bpm, settings.channel,
                              settings.max_note_seconds, settings.max_polyphony, settings.external_z)
    raise UserError(f"no live generator for model kind {model.kind!r}")


@dataclass
class EngineStats:
    control_to_midi: list[float] = field(default_factory=list)  # seconds
    timing_error: list[float] = field(default_factory=list)  # seconds, from the player
    clock_timing: list[float] = field(default_factory=list)  # seconds: MIDI clock ticks sent minus deadline
    clock_ticks: int = 0  # MIDI clock ticks sent
    step_seconds: list[float] = field(default_factory=list)
    late_controls: int = 0
    late_rollbacks: int = 0
    late_arrivals: int = 0  # messages that reached the clock after their deadline
    sent: int = 0
    tokens: int = 0


class Engine:
    def __init__(self, model, output: OutputChoice, settings: EngineSettings | None = None,
                 controls: Controls | None = None, record: str | None = None, log=None,
                 end: float | None = None, clock_out: tuple[str, str] | None = None, layers: list[Layer] = (),
                 song_position: int | None = None):
        self.model, self.output = model, output
        self.settings = settings or EngineSettings()
        s = self.settings  # layer 0 is the main voice; ``layers`` play beside it on the same clock
        self.layers = [Layer(model, output, s.channel, s.program, s.volume), *layers]
        self.initial = controls or Controls()
        self.record = record
        self.end = end  # performance time at which the take ends (--duration): nothing is played after it
        self.clock_out = clock_out  # (api, port): 24-ppqn MIDI clock at settings.bpm, from the clock process
        self.song_position = song_position  # where the clock out goes on with the song (a follow-up take)
        self.log = log or (lambda text: print(f"livegen: {text}", file=sys.stderr))
        self.stats = EngineStats()
        self.start_time = 0.0
        self.failed: str | None = None
        self.port_error: str | None = None
        self._clock_stuck = False
        # (arrival monotonic, performance t it was made at, effective t, controls)
        self._changes: list[tuple[float, float, float, Controls]] = []
        self.session = None  # SessionWriter: the control stream beside the recording
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._pending_acks: dict[int, tuple[float, float]] = {}
        self._change_id = 0
        self._finished = threading.Event()
        self._final: dict = {}
        self.player_info: dict = {}
        self.controls = self.initial
        # ring buffers for displays (a GUI drains them on a timer; the engine never waits on them)
        self.sent_messages: deque[tuple[float, list[int]]] = deque(maxlen=4096)
        self.recent_timing: deque[float] = deque(maxlen=2048)
        self.listeners: list = []  # called with each batch of (t, message) sent; must return at once (OSC out)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        sys.setswitchinterval(0.0005)  # hand the GIL over quickly: control threads must not wait 5 ms
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.start_time = time.monotonic() + START_MARGIN + 0.5  # the player process takes a moment to start
        outputs = tuple(LayerOutput(layer.output.api, layer.output.port, layer.output.virtual, layer.output.soundfont,
                                    layer.channel, layer.program, layer.volume,
                                    f"{i + 1} {layer.model.kind} ch{layer.channel + 1}")
                        for i, layer in enumerate(self.layers))
        config = PlayerConfig(outputs, self.record, self.start_time, clock_out=self.clock_out, bpm=self.settings.bpm,
                              song_position=self.song_position)
        self._proc = ctx.Process(target=run_player, args=(child, config), name="livegen-clock", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(20):
            self._proc.kill()
            raise UserError("the output clock process did not start within 20 s")
        try:
            kind, info = self._conn.recv()
        except EOFError:
            raise UserError("the output clock process died while starting") from None
        if kind == "error":
            self._proc.join(2)
            raise UserError(info)
        self.player_info = info
        self.start_time = max(self.start_time, time.monotonic() + START_MARGIN)
        if self.record:
            self._open_session()
        self.generators = [self._layer_generator(i, layer) for i, layer in enumerate(self.layers)]
        self._reader = threading.Thread(target=self._read_player, name="livegen-player-reader", daemon=True)
        self._reader.start()
        self._thread = threading.Thread(target=self._run, name="livegen-generator", daemon=True)
        self._thread.start()

    def _layer_generator(self, index: int, layer: Layer) -> LiveGenerator:
        """Layer ``index`` samples with seed + index: two layers of one model do not play in unison."""
        s = self.settings
        return make_generator(layer.model, self.initial, replace(
            s, channel=layer.channel, seed=s.seed + index,
            temperature=s.temperature if layer.temperature is None else layer.temperature))

    def _open_session(self) -> None:
        from livegen.sessions import SessionWriter, session_path

        s = self.settings
        header = {"midi": os.path.basename(self.record), "model": self.model.kind, "seed": s.seed,
                  "temperature": s.temperature, "bpm": s.bpm, "lookahead": s.lookahead, "channel": s.channel + 1,
                  "program": s.program, "volume": s.volume, "steering": s.steering}
        if len(self.layers) > 1:
            header["layers"] = [layer.describe() for layer in self.layers[1:]]
        try:
            self.session = SessionWriter(session_path(self.record), header, self.initial)
        except OSError as exc:
            self._send(("stop", None))
            raise UserError(f"cannot write the session {session_path(self.record)}: {exc.strerror}") from None

    def now(self) -> float:
        """Performance time in seconds (negative before the first note's instant)."""
        return time.monotonic() - self.start_time

    def set_controls(self, controls: Controls, t: float | None = None) -> float:
        """Steer the music; thread-safe. ``t`` is the performance time the change was made
        (scripts and replays give it; live sensors leave it to the arrival time). Returns the
        effective time."""
        with self._send_lock:
            if controls.bpm is None:  # sources that know nothing of tempo keep the one in force
                controls = replace(controls, bpm=self.controls.bpm)
            return self._enqueue(controls, t)

    def set_tempo(self, bpm: float, t: float | None = None) -> float:
        """Follow an outside tempo (MIDI clock in, Ableton Link): the other controls stay as they are."""
        with self._send_lock:
            return self._enqueue(replace(self.controls, bpm=min(max(float(bpm), MIN_BPM), MAX_BPM)), t)

    def _enqueue(self, controls: Controls, t: float | None) -> float:
        arrival = time.monotonic()
        # a change made before the first note governs from time 0: the generator was built with the
        # initial controls, so the same change replayed at t=0 does the same
        made = max(0.0, (arrival - self.start_time) if t is None else t)
        effective = made + CONTROL_DELAY
        self._changes.append((arrival, made, effective, controls))
        self.controls = controls
        self._wake.set()
        return effective

    def panic(self) -> None:
        self._send(("panic",))

    def send_now(self, messages: list[list[int]]) -> None:
        """Send channel messages at once, outside the schedule (a program change from a preset)."""
        self._send(("now", messages))

    def switch_output(self, output: OutputChoice) -> None:
        """Play on another port from now on; notes sounding on the old one are ended there.
        A port that cannot be opened leaves the engine playing into the recording only, with
        ``port_error`` set and logged."""
        self.output = self.layers[0].output = output
        self._send(("switch", output.api, output.port, output.virtual, output.soundfont))

    def stop(self, timeout: float = 10.0) -> EngineStats:
        """Stop generating, end every sounding note, close the recording. Idempotent."""
        self._stop.set()
        self._wake.set()
        if hasattr(self, "_thread"):
            self._thread.join(timeout)
        ended = self.end is not None and self.now() >= self.end
        self._send(("stop", self.end if ended else None))
        if self.session is not None:
            self.session.close(self.end if ended else max(0.0, self.now()))
        self._finished.wait(2.0 if self._clock_stuck else timeout)
        if hasattr(self, "_proc"):
            self._proc.join(0.5 if self._clock_stuck else timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(2.0)
                if self.record:  # the clock could not close the take: make it a valid file here
                    from livegen.midi import recorder

                    try:
                        recorder.repair(self.record)
                        recorder.forget_unfinished(self.record)
                    except (OSError, ValueError):
                        pass
        self.stats.timing_error = self._final.get("timing", [])
        self.stats.clock_timing = self._final.get("clock_timing", [])
        self.stats.clock_ticks = self._final.get("clock_ticks", 0)
        self.stats.sent = self._final.get("sent", 0)
        self.stats.late_rollbacks = self._final.get("late_rollbacks", 0)
        self.stats.late_arrivals = self._final.get("late_arrivals", 0)
        return self.stats

    @property
    def running(self) -> bool:
        return not self._stop.is_set() and self.failed is None

    # --- threads -------------------------------------------------------------------------------

    def _send(self, command) -> None:
        """Send to the clock, never blocking for long: a clock that stops reading (its port wedged,
        e.g. a JACK server that died) fails the take instead of hanging the engine."""
        with self._send_lock:
            if self._clock_stuck:
                return
            try:
                _, writable, _ = select.select([], [self._conn.fileno()], [], SEND_TIMEOUT)
                if not writable:
                    self._clock_stuck = True
                    self._fail("the output clock stopped responding (is the MIDI port's server still up?); "
                               "the take was repaired")
                    return
                self._conn.send(command)
            except (OSError, ValueError, AttributeError):
                pass

    def _read_player(self) -> None:
        while True:
            try:
                reply = self._conn.recv()
            except (EOFError, OSError):
                if not self._stop.is_set():
                    self._fail("the output clock process died; notes were ended and the take kept")
                self._finished.set()
                return
            kind = reply[0]
            if kind == "replaced":
                _, change_id, acked, late = reply
                if change_id in self._pending_acks:
                    arrival, effective_mono = self._pending_acks.pop(change_id)
                    self.stats.control_to_midi.append(max(acked, effective_mono) - arrival)
            elif kind == "switched":
                self.player_info["port"], self.port_error = reply[1], reply[2]
                if reply[2]:
                    self.log(f"{reply[2]}; playing into the recording only")
            elif kind == "sent":
                self.sent_messages.extend(reply[1])
                self.recent_timing.extend(reply[2])
                for listener in self.listeners:
                    listener(reply[1])
            elif kind == "stopped":
                self._final = reply[1]
                self._finished.set()
                return

    def _fail(self, message: str) -> None:
        if self.failed is None:
            self.failed = message
            self.log(message)
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        try:  # real-time priority below the clock's, so a busy machine cannot starve a rollback
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(GENERATOR_PRIORITY))
        except (AttributeError, PermissionError, OSError):
            pass
        try:
            self._generate()
        except Exception as exc:  # the model or a guard blew up: stop cleanly, notes off
            self._fail(f"generator stopped: {type(exc).__name__}: {exc}")
            self._send(("stop", None))

    def _generate(self) -> None:
        gens = self.generators
        lookahead = self.settings.lookahead
        batches: list[list] = [[] for _ in gens]  # per layer: made, not yet sent to the clock
        while not self._stop.is_set():
            if self._changes:
                with self._send_lock:
                    changes, self._changes = self._changes, []
                for arrival, made, effective, controls in changes:
                    self._apply_change(arrival, made, effective, controls, batches)
            now = self.now()
            layer = min(range(len(gens)), key=lambda i: gens[i].time)  # the layer furthest behind goes next
            gen = gens[layer]
            if gen.time < now + lookahead and (self.end is None or gen.time < self.end):
                t0 = time.perf_counter()
                batch = batches[layer]
                batch += [m for m in gen.step() if self.end is None or m[0] < self.end]
                self.stats.step_seconds.append(time.perf_counter() - t0)
                self.stats.tokens += 1
                if batch and (batch[-1][0] - now < 0.1 or len(batch) >= 8):
                    self._send(("schedule", layer, batch))
                    batches[layer] = []
                continue
            self._flush(batches)
            for g in gens:
                g.forget_before(now - 1.0)
            if len(self.stats.step_seconds) > 100_000:
                del self.stats.step_seconds[:50_000]
            self._wake.wait(min(0.01, max(0.0005, gen.time - now - lookahead)))
            self._wake.clear()

    def _flush(self, batches: list[list]) -> None:
        for layer, batch in enumerate(batches):
            if batch:
                self._send(("schedule", layer, batch))
                batches[layer] = []

    def _apply_change(self, arrival: float, made: float, effective: float, controls: Controls,
                      batches: list[list]) -> None:
        now = self.now()
        if effective < now + 0.0005:  # arrived later than CONTROL_DELAY allows: apply as soon as possible
            self.stats.late_controls += 1
            effective = now + 0.001
            made = effective - CONTROL_DELAY
        if self.session is not None and (self.end is None or made < self.end):  # as applied: a replay governs the same instant
            self.session.change(made, controls)
        before = self.generators[0].timeline.at(effective)
        if self.clock_out and (before.bpm or self.settings.bpm) != (controls.bpm or self.settings.bpm):
            self._send(("tempo", effective, controls.bpm or self.settings.bpm))  # the MIDI clock out follows
        self._change_id += 1
        timed = arrival >= self.start_time  # a change made before the first note has no latency to speak of
        heard = awaiting_ack = False
        for layer, gen in enumerate(self.generators):
            hears = gen.hears(gen.timeline.at(effective), controls)  # e.g. the Char-RNN keeps its own tempo
            gen.timeline.set(effective, controls)
            batch, batches[layer] = batches[layer], []
            first = gen.rollback(effective) if hears else None
            heard |= hears
            if first is None:  # not heard, or nothing generated that late yet: the new controls simply apply
                if batch:
                    self._send(("schedule", layer, batch))
                continue
            if timed and not awaiting_ack:
                self._pending_acks[self._change_id] = (arrival, self.start_time + effective)
                awaiting_ack = True
            self._send(("replace", layer, first, [e for e in batch if e[1] < first], self._change_id))
        if heard and timed and not awaiting_ack:
            self.stats.control_to_midi.append(max(time.monotonic(), self.start_time + effective) - arrival)
