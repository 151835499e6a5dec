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

import gc
import math
import multiprocessing
import os
import select
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from livegen.engine.charrnn_live import CharRNNGenerator, Steering, Structure
from livegen.engine.dcrnn_live import DCRNNGenerator
from livegen.engine.live_generator import LiveGenerator
from livegen.engine.player import LayerOutput, PlayerConfig, SpareClock, open_port, run_player
from livegen.engine.respond import Responder, RespondSettings
from livegen.errors import UserError
from livegen.messages import say
from livegen.midi import recorder
from livegen.music.conditioning import Controls, clamp_control
from livegen.sessions import SessionWriter, session_path

GENERATOR_PRIORITY = 1  # SCHED_FIFO, below the clock's (see player.CLOCK_PRIORITY)
SEND_TIMEOUT = 2.0  # s the clock may leave its pipe full before the take is failed
RESYNC_MARGIN = 0.05  # s after a new clock is ready before the music it is handed begins
CLOCK_START_TIMEOUT = 20.0  # s a clock process may take to open its ports
MAX_CLOCK_RESTARTS = 3  # per take: a clock that keeps dying fails the take
# s between the note-offs sent after a clock died: a burst from a just-connected JACK client
# reached the receiver garbled (every message a copy of the first), a paced one whole
ORPHAN_PACE = 0.004
CONTROL_DELAY = 0.005  # s from a control's arrival to the instant it governs the music
HEARD_BACKLOG = 4096  # player messages waiting for the generator thread; a flood beyond is dropped
START_MARGIN = 0.1  # s between the clock being ready and performance time 0: the first notes, made
# already, reach it (under load too: a late first note is dropped, not played late)


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
    bpm: float = 120.0  # the beat: the DCRNN's grid, the Char-RNN's in grid timing, the MIDI clock out
    timing: str = "grid"  # the Char-RNN's onsets: "grid" (on the beat's 16ths) or "free" (its own timing)
    external_z: tuple[int, ...] = tuple(range(8))  # the DCRNN's z dims that the controls' "z" plays
    volume: int | None = None  # channel volume (CC 7) of the main layer; None leaves the synth's
    retime_rests: bool = True  # a Char-RNN's rest follows a change made while it plays (see Structure)


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
        return {"model": self.model.name, "channel": self.channel + 1, "program": self.program,
                "volume": self.volume, "port": self.output.port, "temperature": self.temperature}


def make_generator(model, controls: Controls, settings: EngineSettings) -> LiveGenerator:
    """The live generator for a model, by its kind."""
    if model.kind == "charrnn":
        steering = Steering(enabled=settings.steering)
        structure = Structure(timing=settings.timing, retime_rests=settings.retime_rests)
        return CharRNNGenerator(model, controls, settings.seed, settings.temperature, steering, settings.channel,
                                settings.max_note_seconds, settings.max_polyphony, settings.bpm, structure)
    if model.kind == "dcrnn":
        return DCRNNGenerator(model, controls, settings.seed, settings.bpm, settings.channel,
                              settings.max_note_seconds, settings.max_polyphony, settings.external_z)
    raise UserError(f"no live generator for model kind {model.kind!r}")


@dataclass
class EngineStats:
    control_to_midi: list[float] = field(default_factory=list)  # seconds
    timing_error: list[float] = field(default_factory=list)  # seconds, from the player
    thru_delay: list[float] = field(default_factory=list)  # seconds: a player's message arrived -> sent thru
    clock_timing: list[float] = field(default_factory=list)  # seconds: MIDI clock ticks sent minus deadline
    clock_ticks: int = 0  # MIDI clock ticks sent
    step_seconds: list[float] = field(default_factory=list)
    late_controls: int = 0
    late_rollbacks: int = 0
    late_arrivals: int = 0  # messages that reached the clock after their deadline
    late_dropped: int = 0  # note-ons the clock left out rather than play them late
    retriggers: int = 0  # note-ons on a sounding key the clock's guard ended first
    stray_offs: int = 0  # note-offs for keys not sounding, dropped by the guard
    expired: int = 0  # notes the guard ended at max_note_seconds
    clock_restarts: int = 0  # clock processes that died and were replaced
    sent: int = 0
    tokens: int = 0


class Engine:
    def __init__(self, model, output: OutputChoice, settings: EngineSettings | None = None,
                 controls: Controls | None = None, record: str | None = None, log=None,
                 end: float | None = None, clock_out: tuple[str, str] | None = None, layers: list[Layer] = (),
                 song_position: int | None = None, respond: RespondSettings | None = None,
                 player_track: bool = False, thru: bool = False):
        self.model, self.output = model, output
        self.settings = settings or EngineSettings()
        s = self.settings  # layer 0 is the main voice; ``layers`` play beside it on the same clock
        self.layers = [Layer(model, output, s.channel, s.program, s.volume), *layers]
        self.initial = controls or Controls()
        self.record = record  # the file being recorded now (None: the take plays unrecorded)
        self.record_from = 0.0  # performance time the recording began: 0, or the press of Rec mid-take
        self.spare_clock: SpareClock | None = None  # a clock process started before the take was known
        self.record_error: str | None = None  # why the last recording started mid-take could not go on
        self.end = end  # performance time at which the take ends (--duration): nothing is played after it
        self.clock_out = clock_out  # (api, port): 24-ppqn MIDI clock at settings.bpm, from the clock process
        self.song_position = song_position  # where the clock out goes on with the song (a follow-up take)
        self.log = log or say
        self.respond = respond  # how the main layer responds to a player (None: it plays on its own)
        self.responder: Responder | None = None  # continue and answer modes: layer 0 listens, then answers
        self.player_track = player_track  # a player's MIDI comes in: recorded on a track of its own
        self.thru = thru  # and is sent on to the main layer's port as it comes
        self._heard: deque[tuple[float, list[int]]] = deque(maxlen=HEARD_BACKLOG)
        self.heard_dropped = 0  # player messages left out when the backlog was full
        self.stats = EngineStats()
        self.start_time = 0.0
        self.failed: str | None = None
        self.port_error: str | None = None
        self._clock_stuck = False
        # (arrival monotonic, performance t it was made at, effective t, controls)
        self._changes: list[tuple[float, float, float, Controls]] = []
        self.session = None  # SessionWriter: the control stream beside the recording
        self._session_lock = threading.Lock()  # the generator thread writes it, Rec opens and closes it
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._pending_acks: dict[int, tuple[float, float]] = {}
        self._scheduled_ons: deque[tuple[float, int, int, int]] = deque(maxlen=8192)  # (t, layer, channel, note)
        self._resync = threading.Event()  # a new clock needs the future generated again
        self._made: dict[float, float] = {}  # effective time -> the time the change was made at
        self._session_until = float("-inf")  # effective time up to which the session is written
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
        # the clock process starts first, and the first notes are made while it loads and opens its
        # ports: once it is ready, only the margin for handing them over stands before the music
        config = self._player_config()
        spare, self.spare_clock = self.spare_clock, None
        launched = (spare and spare.hand_over(config)) or self._launch_clock(config)
        try:
            self.generators = [self._layer_generator(i, layer) for i, layer in enumerate(self.layers)]
            if self.respond is not None and self.respond.answers:
                if self.model.kind != "charrnn":
                    raise UserError(f"--respond {self.respond.mode} answers with the Char-RNN: use --model charrnn "
                                    "(a DCRNN can play beside it with --layer dcrnn)")
                self.responder = Responder(self.respond, self.generators[0], self.settings.bpm)
            primed = self._prime()
        except BaseException:
            launched[1].kill()  # a model that cannot start leaves no clock behind
            raise
        # everything loaded so far (the model, its libraries) lives as long as the process: keep it
        # out of the collector, whose full passes over it stalled every thread here for ~0.2 s
        gc.collect()
        gc.freeze()
        self._conn, self._proc, self.player_info = self._await_clock(*launched)
        # performance time 0 is fixed only now that the clock is ready, and the clock is told it:
        # however long its process took to start, both keep one timeline
        self.start_time = time.monotonic() + START_MARGIN
        if self.record:
            try:
                self.session = self._open_session(self.initial)
            except UserError:
                self._send(("stop", None))
                raise
        self._send(("start", self.start_time))
        for layer, batch in enumerate(primed):
            if batch:
                self._send(("schedule", layer, batch))
        self._reader = threading.Thread(target=self._read_player, name="livegen-player-reader", daemon=True)
        self._reader.start()
        self._thread = threading.Thread(target=self._run, name="livegen-generator", daemon=True)
        self._thread.start()

    def _prime(self) -> list[list]:
        """Each layer's first ``lookahead`` seconds of music, made before performance time 0 is fixed."""
        primed = []
        for gen in self.generators:
            batch = []
            while (self.responder is None or gen is not self.responder.gen) and gen.time < self.settings.lookahead and (self.end is None or gen.time < self.end):
                batch += [m for m in gen.step() if self.end is None or m[0] < self.end]
                self.stats.tokens += 1
            primed.append(batch)
        return primed

    def _player_config(self, resume: tuple[int, int | None] | None = None) -> PlayerConfig:
        s = self.settings
        outputs = tuple(LayerOutput(layer.output.api, layer.output.port, layer.output.virtual, layer.output.soundfont,
                                    layer.channel, layer.program, layer.volume,
                                    f"{i + 1} {layer.model.kind} ch{layer.channel + 1}", s.max_note_seconds)
                        for i, layer in enumerate(self.layers))
        return PlayerConfig(outputs, self.record, clock_out=self.clock_out, bpm=s.bpm,
                            song_position=self.song_position, resume=resume, record_from=self.record_from,
                            player_track=self.player_track)

    def _track_names(self) -> list[str] | None:
        """A layered take's track names, as the clock's recorder gives them (None: one track)."""
        return self._player_config().track_names()

    def _start_clock(self, config: PlayerConfig):
        """Start a clock process and wait until its ports are open: (pipe, process, what it opened)."""
        return self._await_clock(*self._launch_clock(config))

    @staticmethod
    def _launch_clock(config: PlayerConfig):
        """Start a clock process, not waiting for it: (pipe, process)."""
        ctx = multiprocessing.get_context("spawn")
        conn, child = ctx.Pipe()
        proc = ctx.Process(target=run_player, args=(child, config), name="livegen-clock", daemon=True)
        proc.start()
        child.close()
        return conn, proc

    @staticmethod
    def _await_clock(conn, proc):
        """Wait until a launched clock has opened its ports: (pipe, process, what it opened)."""
        if not conn.poll(CLOCK_START_TIMEOUT):
            proc.kill()
            raise UserError(f"the output clock process did not start within {CLOCK_START_TIMEOUT:g} s")
        try:
            kind, info = conn.recv()
        except (EOFError, OSError):
            raise UserError("the output clock process died while starting") from None
        if kind == "error":
            proc.join(2)
            raise UserError(info)
        return conn, proc, info

    def _layer_generator(self, index: int, layer: Layer) -> LiveGenerator:
        """Layer ``index`` samples with seed + index: two layers of one model do not play in unison."""
        s = self.settings
        return make_generator(layer.model, self.initial, replace(
            s, channel=layer.channel, seed=s.seed + index,
            temperature=s.temperature if layer.temperature is None else layer.temperature))

    def _open_session(self, initial: Controls) -> SessionWriter:
        """The control stream beside the recording, starting from ``initial`` at its time 0."""
        s = self.settings
        header = {"midi": os.path.basename(self.record), "model": self.model.name, "seed": s.seed,
                  "temperature": s.temperature, "bpm": s.bpm, "lookahead": s.lookahead, "channel": s.channel + 1,
                  "program": s.program, "volume": s.volume, "steering": s.steering, "timing": s.timing}
        if self.record_from:
            header["from"] = round(self.record_from, 3)  # a replay starts a fresh model: the notes differ
        if len(self.layers) > 1:
            header["layers"] = [layer.describe() for layer in self.layers[1:]]
        if self.respond is not None:
            header["respond"] = self.respond.describe()
        try:
            return SessionWriter(session_path(self.record), header, initial)
        except OSError as exc:
            raise UserError(f"cannot write the session {session_path(self.record)}: {exc.strerror}") from None

    def start_recording(self, path: str) -> None:
        """Record from now on into ``path`` (and its session beside it) while the take plays on:
        the same clock, the same model, no gap. The file's time 0 is this instant; notes sounding
        already are left out of it, as are their note-offs."""
        if not self.running:
            raise UserError("nothing is playing to record")
        if self.record:
            raise UserError(f"already recording to {self.record}")
        with self._session_lock:
            at = max(0.0, self.now())
            self.record, self.record_from, self.record_error = path, at, None
            self._session_until = at  # the controls governing now are the session's first row
            try:
                self.session = self._open_session(self.generators[0].timeline.at(at))
            except UserError:
                self.record, self.record_from = None, 0.0
                raise
        self._send(("record", path, at, self._track_names()))

    def stop_recording(self) -> str | None:
        """Close the recording started with ``start_recording`` (or at the start); the take plays
        on. Returns the file, or None when nothing was recorded."""
        path = self.record
        if path is None:
            return None
        with self._session_lock:
            at = max(self.record_from, self.now())
            if self.session is not None:
                self._write_session(at)
                self.session.close(at - self.record_from)
                self.session = None
            self.record, self.record_from = None, 0.0
        self._send(("record_stop",))
        return path

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
            return self._enqueue(replace(self.controls, bpm=clamp_control("bpm", bpm)), t)

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

    def hear(self, msg: list[int], at: float | None = None, t: float | None = None) -> None:
        """A player's channel message (thread-safe, returns at once): arrived at monotonic time
        ``at`` (None: now), or played at performance time ``t`` (a replay). It is recorded on the
        player's track, sent on with ``thru``, and heard by the responder; a session keeps it."""
        if t is None:
            t = (time.monotonic() if at is None else at) - self.start_time
        if self.responder is not None:
            if len(self._heard) == HEARD_BACKLOG:
                self.heard_dropped += 1
                return
            self._heard.append((t, msg))
        self._send(("heard", t, msg, self.thru))
        with self._session_lock:
            if self.session is not None and t >= self.record_from:
                self.session.player(t - self.record_from, msg)
        self._wake.set()

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
        with self._session_lock:
            if self.session is not None:
                until = self.end if ended else max(self.record_from, self.now())
                self._write_session(until)
                self.session.close(until - self.record_from)
                self.session = None
        self._finished.wait(2.0 if self._clock_stuck else timeout)
        if hasattr(self, "_proc"):
            self._proc.join(0.5 if self._clock_stuck else timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(2.0)
                if self.record:  # the clock could not close the take: make it a valid file here
                    try:
                        recorder.repair(self.record, names=self._track_names())
                        recorder.forget_unfinished(self.record)
                    except (OSError, ValueError):
                        pass
        self.stats.timing_error = self._final.get("timing", [])
        self.stats.thru_delay = self._final.get("thru", [])
        self.stats.clock_timing = self._final.get("clock_timing", [])
        self.stats.clock_ticks = self._final.get("clock_ticks", 0)
        self.stats.sent = self._final.get("sent", 0)
        self.stats.late_rollbacks = self._final.get("late_rollbacks", 0)
        self.stats.late_arrivals = self._final.get("late_arrivals", 0)
        for key in ("late_dropped", "retriggers", "stray_offs", "expired"):
            setattr(self.stats, key, self._final.get(key, getattr(self.stats, key)))
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
            if command[0] in ("schedule", "replace"):
                self._note_scheduled(command[1], command[2] if command[0] == "schedule" else command[3])
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

    def _note_scheduled(self, layer: int, events) -> None:
        """Remember the note-ons handed to the clock: if it dies, these may be sounding."""
        for t, _, msg in events:
            if msg[0] & 0xF0 == 0x90 and msg[2] > 0:
                self._scheduled_ons.append((t, layer, msg[0] & 0x0F, msg[1]))

    def _read_player(self) -> None:
        while True:
            try:
                reply = self._conn.recv()
            except (EOFError, OSError):
                if not self._stop.is_set() and self._recover_clock():
                    continue
                self._finished.set()
                return
            kind = reply[0]
            if kind == "replaced":
                _, change_id, acked, late = reply
                if change_id in self._pending_acks:
                    made, effective_mono = self._pending_acks.pop(change_id)
                    self.stats.control_to_midi.append(max(acked, effective_mono) - made)
            elif kind == "switched":
                self.player_info["port"], self.port_error = reply[1], reply[2]
                if reply[2]:
                    self.log(f"{reply[2]}; playing into the recording only")
            elif kind == "sent":
                self.sent_messages.extend(reply[1])
                self.recent_timing.extend(reply[2])
                if reply[3] and not self.stats.late_dropped:
                    self.log("the music fell behind the clock (is the machine overloaded?): notes that would "
                             "have been late are left out, not played late")
                self.stats.late_dropped = reply[3]
                for listener in self.listeners:
                    listener(reply[1])
            elif kind == "record_failed":  # the clock could not open the file: the take plays on
                self.record_error = reply[1]
                self.log(f"error: {reply[1]}")
                self.stop_recording()
            elif kind == "stopped":
                self._final = reply[1]
                self._finished.set()
                return

    def _recover_clock(self) -> bool:
        """The clock process died (killed, crashed): end on the ports every note it may have left
        sounding, repair the recording, and start a new clock that plays on from here. False when
        the take cannot go on (the failure is then logged)."""
        at = self.now()
        with self._send_lock:  # the generator's messages go nowhere until the new clock is there
            self._clock_stuck = True
        self._proc.join(1.0)
        if self._proc.is_alive():  # its pipe broke but it hangs on: it cannot be trusted with the port
            self._proc.kill()
            self._proc.join(2.0)
        code = self._proc.exitcode
        died = "still running" if code is None else f"killed by signal {-code}" if code < 0 else f"exit {code}"
        ended = self._end_orphaned_notes(at)
        resume, repaired = None, []
        if self.record:
            try:
                found = recorder.repair(self.record, split=False)
                resume, repaired = (found["tick"], found["layer"]), ["the take was repaired"]
            except (OSError, ValueError) as exc:
                repaired = [f"the take could not be repaired ({exc}); `livegen recover` may"]
        what = f"the output clock process died at {max(at, 0.0):.1f} s ({died})"
        if ended is not None:
            what += f"; {ended} notes it may have left sounding were ended on the port"
        what = "; ".join([what, *repaired])
        if self.stats.clock_restarts >= MAX_CLOCK_RESTARTS or self._stop.is_set():
            if self.record:
                try:
                    recorder.split_layers(self.record, self._track_names())
                    recorder.forget_unfinished(self.record)
                except (OSError, ValueError):
                    pass
            why = "the take was ending" if self._stop.is_set() else f"it died {self.stats.clock_restarts + 1} times"
            self._fail(f"{what}; {why}, so the take stops")
            return False
        try:
            conn, proc, info = self._start_clock(self._player_config(resume=resume))
        except UserError as exc:
            self._fail(f"{what}; a new clock could not start ({exc})")
            return False
        self.log(f"{what}; a new clock plays on")
        with self._send_lock:
            old, self._conn, self._proc = self._conn, conn, proc
            old.close()
            self._clock_stuck = False
            conn.send(("start", self.start_time))
            self._resync.set()  # the generator hands the new clock the future from here
            self._wake.set()
            self.stats.clock_restarts += 1
        if self._stop.is_set():  # stopped while the new clock was starting
            self._send(("stop", None))
        return True

    def _end_orphaned_notes(self, at: float) -> int | None:
        """Note-offs, from this process, on every port a dead clock was playing (a virtual port or
        the built-in synth died with it), for each note-on handed to the clock that may still
        sound: the clock ends every note within max_note_seconds, so those are all there can be.
        Returns how many were sent (None: no port to reach)."""
        since = at - self.settings.max_note_seconds - 0.5
        with self._send_lock:
            keys = {(layer, ch, note) for t, layer, ch, note in self._scheduled_ons if since <= t}
        ended = 0
        by_port: dict[tuple, list[int]] = {}
        for i, layer in enumerate(self.layers):
            o = layer.output
            if o.api in (None, "fluidsynth") or o.port is None or o.virtual:
                continue
            by_port.setdefault((o.api, o.port), []).append(i)
        if not by_port:
            return None
        for (api, name), indices in by_port.items():
            try:
                port = open_port(api, name, False)
            except (UserError, OSError) as exc:
                self.log(f"could not reach {name} to end its notes: {exc}")
                continue
            messages = [[0x80 | ch, note, 0] for i in indices for _, ch, note in sorted(k for k in keys if k[0] == i)]
            try:
                for msg in messages:
                    port.send(msg)
                    time.sleep(ORPHAN_PACE)
            finally:
                port.close(release=False)
            ended += len(messages)
        return ended

    def _fail(self, message: str) -> None:
        if self.failed is None:
            self.failed = message
            self.log(f"error: {message}")  # shown under -q too: the take ends on it
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
            if self._resync.is_set():  # a new clock: what the dead one held is gone, make it again
                self._resync.clear()
                resume_at = self.now() + RESYNC_MARGIN
                for gen in gens:
                    gen.rollback(resume_at)
                batches = [[] for _ in gens]
            if self._changes:
                with self._send_lock:
                    changes, self._changes = self._changes, []
                for arrival, made, effective, controls in changes:
                    self._apply_change(arrival, made, effective, controls, batches)
            responder = self.responder
            if responder is not None:
                self._respond(responder, batches)
            now = self.now()
            playing = [i for i in range(len(gens)) if i or responder is None or not responder.holding]
            layer = min(playing or [0], key=lambda i: gens[i].time)  # the layer furthest behind goes next
            gen = gens[layer]
            end = self.end if layer or responder is None else min(self.end or math.inf, responder.answer_end)
            if playing and gen.time < now + lookahead and (end is None or gen.time < end):
                t0 = time.perf_counter()
                batch = batches[layer]
                batch += [m for m in gen.step() if end is None or m[0] < end]
                self.stats.step_seconds.append(time.perf_counter() - t0)
                self.stats.tokens += 1
                if batch and (batch[-1][0] - now < 0.1 or len(batch) >= 8):
                    self._send(("schedule", layer, batch))
                    batches[layer] = []
                continue
            self._flush(batches)
            with self._session_lock:
                if self.session is not None:
                    self._write_session(now)
            for g in gens:
                g.forget_before(now - 1.0)
            if len(self.stats.step_seconds) > 100_000:
                del self.stats.step_seconds[:50_000]
            self._wake.wait(min(0.01, max(0.0005, gen.time - now - lookahead)) if playing else 0.01)
            self._wake.clear()

    def _respond(self, responder: Responder, batches: list[list]) -> None:
        """The player's messages since the last pass, then what the deadline asks for, each
        after layer 0's made music is handed over (a replace must find it at the clock)."""
        commands = []
        while self._heard:
            t, msg = self._heard.popleft()
            commands += responder.hear(t, msg, self.now())
        commands += responder.poll(self.now(), self.settings.lookahead)
        if commands:
            if batches[0]:
                self._send(("schedule", 0, batches[0]))
                batches[0] = []
            for command in commands:
                self._send(command)

    def _write_session(self, until: float) -> None:
        """Write the controls that governed the music up to ``until`` (in time order, as played:
        a change made now never lands after one a script handed over for later)."""
        timeline = self.generators[0].timeline
        times = timeline.times
        for i, (effective, controls) in enumerate(zip(times, timeline.values)):
            last_at_its_time = i + 1 == len(times) or times[i + 1] != effective  # the one that governs
            if self._session_until < effective <= until and last_at_its_time:
                made = self._made.pop(effective, effective - CONTROL_DELAY)
                if self.end is None or made < self.end:
                    self.session.change(max(0.0, made - self.record_from), controls)
                self._session_until = effective
        self.session.write_player(until - self.record_from)
        if len(self._made) > 1000:  # changes overridden before they governed
            self._made = {t: m for t, m in self._made.items() if t > self._session_until}

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
        self._made[effective] = made  # the session writes it once it governs (see _write_session)
        before = self.generators[0].timeline.at(effective)
        if self.clock_out and (before.bpm or self.settings.bpm) != (controls.bpm or self.settings.bpm):
            self._send(("tempo", effective, controls.bpm or self.settings.bpm))  # the MIDI clock out follows
        self._change_id += 1
        timed = arrival >= self.start_time  # a change made before the first note has no latency to speak of
        made_mono = max(arrival, self.start_time + made)  # a script hands its changes over ahead of their time
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
                self._pending_acks[self._change_id] = (made_mono, self.start_time + effective)
                awaiting_ack = True
            self._send(("replace", layer, first, [e for e in batch if e[1] < first], self._change_id))
        if heard and timed and not awaiting_ack:
            self.stats.control_to_midi.append(max(time.monotonic(), self.start_time + effective) - made_mono)
