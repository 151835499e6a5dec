"""The output clock: a process of its own that sends scheduled MIDI at absolute deadlines.

Model inference shares a GIL with everything else in the main process and shows multi-ms
tails there, so the clock lives apart and imports neither torch nor numpy, and nor does anything
it loads: this module, the MIDI modules it imports, and ``livegen.cli``, which the spawned process
imports again as the program's main module (tests/test_imports.py checks them). It sleeps in
``poll()`` until just before a deadline, then spins the last ``SPIN`` seconds; timing error is
measured right at the send point against the monotonic clock (shared by all processes).
Each message carries its layer and the index of the token that produced it, so a rollback
(``replace``) drops exactly that layer's not-yet-sent future. Layers (a Char-RNN melody beside a
DCRNN rhythm) share this one clock; each plays on its own port and channel and records to its
own track. If the engine dies (even ``kill -9``), the pipe closes
and the player ends every sounding note and closes the recording cleanly.

The clock opens its ports, says it is ready, and only then learns the instant of performance time
0 (``start``): however long the process took to start on a busy machine, the engine and the clock
agree on one timeline. Every message passes the ``NoteGuard`` on its way out. A note-on that
reaches its deadline more than ``LATE_NOTE_LIMIT`` late (the generator fell behind) is dropped,
not played late, and counted; its note-off is then dropped by the guard.
"""
from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from livegen.engine.note_guard import NoteGuard
from livegen.errors import UserError
from livegen.midi.clock import ClockOut
from livegen.midi.fluidsynth import FluidSynthOutput
from livegen.midi.ports import ALL_NOTES_OFF, NullOutput, RtMidiOutput
from livegen.midi.recorder import Recorder

SPIN = 0.0012
LATE_NOTE_LIMIT = 0.020  # s: a note-on later than this is dropped (counted), never played late
# SCHED_FIFO priority: above every normal process, below JACK's own real-time threads (5 and up).
# Above them, a spinning send (rtmidi's JACK output waits with sched_yield for ring-buffer room)
# starved the very thread that drains the buffer, and the clock locked up.
CLOCK_PRIORITY = 2
REPORT_EVERY = 0.05  # s between reports of sent messages to the engine (displays drain them at <= 60 Hz)
MAX_TIMING_SAMPLES = 200_000
VOLUME_CC = 7
RECENT_SENT = 1024  # messages kept for a recording begun a moment before its command arrived
PLAYER_TRACK = "player"  # the recording's track of what a player played into --midi-in


@dataclass(frozen=True)
class LayerOutput:
    """Where one layer plays: a port, a channel, and the program and volume it starts with."""

    api: str | None  # None: no MIDI system, play only into the recording
    port: str | None  # exact port name (already matched), or the virtual port's name
    virtual: bool = False
    soundfont: str | None = None  # the built-in synth's (api "fluidsynth"); None: its default
    channel: int = 0
    program: int | None = None
    volume: int | None = None  # channel volume (CC 7) 0..127; None leaves the synth's own
    name: str = ""  # the layer's track name in the recording
    max_note_seconds: float = 4.0  # the guard ends a note sounding longer

    @property
    def port_key(self) -> tuple:
        """Layers with the same key share one open port."""
        return self.api, self.port, self.virtual, self.soundfont

    def setup_messages(self) -> list[list[int]]:
        out = [] if self.program is None else [[0xC0 | self.channel, self.program]]
        return out + ([] if self.volume is None else [[0xB0 | self.channel, VOLUME_CC, self.volume]])


@dataclass
class PlayerConfig:
    layers: tuple[LayerOutput, ...]  # layer 0 is the main one: switch_output and "now" messages go there
    record: str | None
    tempo_us: int = 500_000
    clock_out: tuple[str, str] | None = None  # (api, port) to send 24-ppqn MIDI clock to
    bpm: float = 120.0  # the clock's tempo
    song_position: int | None = None  # the clock goes on with the song from here (16ths); None: Start
    resume: tuple[int, int | None] | None = None  # (tick, layer): go on with a repaired recording
    record_from: float = 0.0  # performance time that is the recording's 0 (Rec pressed mid-take)
    player_track: bool = False  # a player's MIDI is recorded on a track after the layers'

    def track_names(self) -> list[str] | None:
        """The recording's track names (None: one track, a single layer and no player)."""
        names = [layer.name for layer in self.layers] + ([PLAYER_TRACK] if self.player_track else [])
        return names if len(names) > 1 else None


def run_player(conn, config: PlayerConfig | None) -> None:
    """Entry point of the player process; a spare one (``config`` None) first waits for its take's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the engine, which stops us in order
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(CLOCK_PRIORITY))
        realtime = True
    except (AttributeError, PermissionError, OSError):
        realtime = False
    if config is None:
        try:
            config = conn.recv()
        except (EOFError, OSError):  # not needed after all (the take did not start): end quietly
            return

    ports: dict[tuple, object] = {}
    try:
        for layer in config.layers:
            if layer.port_key not in ports:
                ports[layer.port_key] = open_port(*layer.port_key)
        recorder = None
        if config.record:
            recorder = Recorder(config.record, config.tempo_us, track_names=config.track_names(), resume=config.resume,
                                origin=config.record_from)
        clock = None
        if config.clock_out:
            clock = ClockOut(*config.clock_out, config.bpm, config.song_position)
    except (UserError, OSError, ValueError) as exc:
        for port in ports.values():
            port.close()
        conn.send(("error", str(exc)))
        return
    opened = list(ports.values())
    layer_port = [list(ports).index(layer.port_key) for layer in config.layers]
    gc.collect()  # what is loaded now lives as long as the clock: keep the collector's passes short
    gc.freeze()
    conn.send(("ready", {"port": opened[layer_port[0]].name, "realtime": realtime,
                         "clock_out": clock.name if clock else None}))
    try:
        command = conn.recv()  # ("start", monotonic time of performance t = 0), or "stop"
    except (EOFError, OSError):
        command = ("stop", None)
    player = Player(conn, config, command[1] if command[0] == "start" else time.monotonic(),
                    opened, layer_port, recorder, clock)
    if command[0] != "start":
        player.finish()
        return
    player.loop()


class SpareClock:
    """A clock process started before its take is known, so that its interpreter and modules load
    while the command line reads the preset, loads the model and matches the ports: spawning one
    takes about as long as all of that, and the two side by side also get more of a busy machine's
    CPU than one after the other. ``hand_over`` gives it its take; ``close`` ends one not used."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=run_player, args=(child, None), name="livegen-clock", daemon=True)
        self._proc.start()
        child.close()

    def hand_over(self, config: PlayerConfig):
        """(pipe, process) now starting ``config``, as ``Engine`` launches a clock; None when the
        spare is gone (handed over already, or died): the caller launches one."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if proc is None:
            return None
        if proc.is_alive():
            try:
                conn.send(config)
                return conn, proc
            except (OSError, ValueError):
                pass
        conn.close()
        proc.join(1.0)
        return None

    def close(self) -> None:
        if self._proc is None:
            return
        self._conn.close()  # its wait for a take ends, and so does it
        self._proc.join(2.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn = self._proc = None


def open_port(api: str | None, port: str | None, virtual: bool, soundfont: str | None = None):
    if api == "fluidsynth":
        return FluidSynthOutput(soundfont)
    if api is None or port is None:
        return NullOutput()
    return RtMidiOutput(api, port, virtual=virtual)


class PortOpener(threading.Thread):
    """Opens the next port beside the clock: loading a SoundFont takes a second or two, and the
    music goes on on the old port meanwhile. ctypes and rtmidi release the GIL while they work."""

    def __init__(self, args):
        super().__init__(name="livegen-port-opener", daemon=True)
        self.args, self.port, self.error = args, None, None
        sys.setswitchinterval(0.0005)  # hand the GIL back to the clock quickly
        self.start()

    def run(self) -> None:
        try:
            self.port = open_port(*self.args)
        except (UserError, OSError) as exc:
            self.error = str(exc)


class Player:
    def __init__(self, conn, config: PlayerConfig, start: float, ports: list, layer_port: list[int], recorder,
                 clock=None):
        self.conn, self.config, self.recorder = conn, config, recorder
        self.start = start  # monotonic time of performance t = 0
        self.ports, self.layer_port = ports, layer_port  # layer i plays on ports[layer_port[i]]
        self.clock = clock  # ClockOut: MIDI clock ticks at their own deadlines, between the notes
        if clock is not None:
            clock.begin(start, time.monotonic() - start)
        self.guard = NoteGuard([layer.max_note_seconds for layer in config.layers])
        self.queue: list[tuple[float, int, int, int, list[int]]] = []  # (time, seq, layer, token index, message)
        self.seq = 0
        self.sent_token = [-1] * len(layer_port)  # per layer: highest token index whose message was sent
        self.timing: list[float] = []
        self.thru_delay: list[float] = []  # a player's message: its arrival -> its copy sent thru
        self.sent = 0
        self.late_rollbacks = 0
        self.late_arrivals = 0
        self.late_dropped = 0  # note-ons dropped for reaching their deadline too late
        self.sent_log: list[tuple[float, list[int]]] = []  # reported to the engine for displays
        self.last_report = 0.0
        self.reported_timing = 0
        self.opener: PortOpener | None = None  # a switch in progress
        self.recorded_on: set[tuple[int, int, int]] = set()  # (layer, channel, key) sounding in the recording
        # what was sent lately: Rec is stamped in the main process, so what went out between that
        # instant and the command reaching this process still belongs in the file
        self.recent: deque[tuple[float, int, list[int]]] = deque(maxlen=RECENT_SENT)

    def now(self) -> float:
        return time.monotonic() - self.start

    def loop(self) -> None:
        start = self.start
        setup_at = max(0.0, self.now())  # 0, or where a restarted clock picks the take up
        for layer, output in enumerate(self.config.layers):
            for msg in output.setup_messages():
                self._emit(setup_at, msg, -1, layer)
        while True:
            if self.opener is not None and not self.opener.is_alive():
                self._switch_to_opened()
            now = time.monotonic()
            clock = self.clock
            expiry = self.guard.next_expiry()
            note_due = start + self.queue[0][0] if self.queue else None
            if clock is not None and clock.due - now <= SPIN and (note_due is None or clock.due <= note_due):
                while time.monotonic() < clock.due:
                    pass
                clock.send_due()
                continue
            if expiry is not None and start + expiry - now <= SPIN and (note_due is None or expiry < note_due - start):
                while time.monotonic() < start + expiry:
                    pass
                for due, port, layer, msg in self.guard.expire(expiry):
                    self._send(due, port, layer, msg)
                continue
            if note_due is not None:
                if note_due - now <= SPIN:
                    while time.monotonic() < note_due:
                        pass
                    t, _, layer, token, msg = heapq.heappop(self.queue)
                    sent_at = time.monotonic()
                    if msg[0] & 0xF0 == 0x90 and msg[2] > 0 and sent_at - note_due > LATE_NOTE_LIMIT:
                        self.late_dropped += 1
                        continue
                    self._emit(t, msg, token, layer)
                    if len(self.timing) < MAX_TIMING_SAMPLES:
                        self.timing.append(sent_at - note_due)
                    continue
                wait = note_due - now - SPIN
            else:
                wait = 0.05
            if clock is not None:
                wait = min(wait, clock.due - now - SPIN)
            if expiry is not None:
                wait = min(wait, start + expiry - now - SPIN)
            if self.recorder is not None and self.recorder.flush_due() and wait > 0.003:
                self.recorder.flush()
                continue
            if self.sent_log and wait > 0.003 and now - self.last_report >= REPORT_EVERY:
                self._report(now)
                continue
            try:
                if not self.conn.poll(max(0.0, min(wait, 0.05))):
                    continue
                command = self.conn.recv()
            except (EOFError, OSError):  # the engine is gone: end cleanly
                self.finish()
                return
            if not self._handle(command):
                return

    def _handle(self, command) -> bool:
        name = command[0]
        if name == "schedule":
            self._schedule(command[1], command[2])
        elif name == "replace":  # rollback: drop every message the layer's token >= first made
            layer, first, events = command[1], command[2], command[3]
            late = self.sent_token[layer] >= first
            self.late_rollbacks += late
            self.queue = [e for e in self.queue if e[2] != layer or e[3] < first]
            heapq.heapify(self.queue)
            now = self.now()
            for port, msg in self.guard.discard(layer, first):  # notes the discarded music started
                self._send(now, port, layer, msg)
            self._schedule(layer, events)
            self.conn.send(("replaced", command[4], time.monotonic(), late))
        elif name == "now":  # send immediately on the main layer (a program change from a preset)
            for msg in command[1]:
                self._emit(self.now(), msg, -1, 0)
        elif name == "heard":  # (performance time, message, thru): a player's message, as it arrived
            self._heard(*command[1:])
        elif name == "tempo":  # (performance time, bpm): the MIDI clock out follows the music's tempo
            if self.clock is not None:
                self.clock.set_tempo(command[1], command[2])
        elif name == "panic":
            self.queue.clear()
            self._release_all(self.now(), panic=True)
            self.conn.send(("panicked",))
        elif name == "switch":  # another port, opened beside the clock; see _switch_to_opened
            if self.opener is not None:  # a newer choice wins over one still opening
                self.opener.join()
                self._switch_to_opened()
            self.opener = PortOpener(command[1:])
        elif name == "record":  # (path, performance time of its 0, track names): Rec pressed mid-take
            self._start_recording(*command[1:])
        elif name == "record_stop":
            self._stop_recording(self.now())
        elif name == "stop":
            self.finish(command[1])
            return False
        return True

    def _heard(self, t: float, msg: list[int], thru: bool) -> None:
        """A player's message: sent on to the main layer's port (thru), recorded on its own track.
        It bypasses the guard (the player's notes are theirs); the port still ends them at its close."""
        if thru:
            self.ports[self.layer_port[0]].send(msg)
            if len(self.thru_delay) < MAX_TIMING_SAMPLES:
                self.thru_delay.append(time.monotonic() - self.start - t)
        if self.recorder is not None and t >= self.recorder.origin:
            self.recorder.add(t, msg, len(self.config.layers))

    def _start_recording(self, path: str, origin: float, names: list[str] | None) -> None:
        """Record from ``origin`` on, the music going on: each layer's program and volume first,
        so the file sounds as the take does."""
        self._stop_recording(origin)
        try:
            self.recorder = Recorder(path, self.config.tempo_us, track_names=names, origin=origin)
        except OSError as exc:
            self.conn.send(("record_failed", f"cannot record to {path}: {exc.strerror or exc}"))
            return
        for layer, output in enumerate(self.config.layers):
            for msg in output.setup_messages():
                self.recorder.add(origin, msg, layer)
        for t, layer, msg in self.recent:
            if t >= origin:
                self._record(t, msg, layer)

    def _stop_recording(self, at: float) -> None:
        """End the notes sounding in the recording at ``at`` (in the file only) and close it."""
        if self.recorder is None:
            return
        for layer, channel, key in sorted(self.recorded_on):
            self.recorder.add(at, [0x80 | channel, key, 0], layer)
        self.recorded_on.clear()
        self.recorder.close()
        self.recorder = None

    def _switch_to_opened(self) -> None:
        """End our notes on the main layer's old port, then play on the new one (or only record if
        it failed); the layers that shared the old port move with it."""
        opener, self.opener = self.opener, None
        main = self.layer_port[0]
        self._release(main, self.now())
        self.ports[main].close(release=False)
        self.ports[main] = opener.port or NullOutput()
        self.conn.send(("switched", self.ports[main].name, opener.error))

    def _release(self, index: int, now: float, panic: bool = False) -> None:
        """End every note sounding on ports[index], each in the recording track of its layer
        (``panic``: and reset the sound on those channels with all-notes-off)."""
        layers = self._layers_on(index)
        by_channel = {self.config.layers[i].channel: i for i in reversed(layers)}
        port = self.ports[index]
        for msg in port.panic_messages() if panic else port.release_messages():
            self._emit(now, msg, -1, by_channel.get(msg[0] & 0x0F, layers[0]))

    def _layers_on(self, index: int) -> list[int]:
        """The layers that play on ports[index]."""
        return [i for i, p in enumerate(self.layer_port) if p == index]

    def _release_all(self, now: float, panic: bool = False) -> None:
        for index in range(len(self.ports)):
            self._release(index, now, panic)

    def _schedule(self, layer: int, events) -> None:
        late_before = self.now()
        for t, token, msg in events:
            heapq.heappush(self.queue, (t, self.seq, layer, token, msg))
            self.seq += 1
            self.late_arrivals += t < late_before  # the generator fell behind the clock

    def _report(self, now: float) -> None:
        """What was sent since the last report, with its timing errors (for the panel's live view)."""
        self.conn.send(("sent", self.sent_log, self.timing[self.reported_timing:], self.late_dropped))
        self.sent_log = []
        self.reported_timing = len(self.timing)
        self.last_report = now

    def _emit(self, t: float, msg: list[int], token: int, layer: int) -> None:
        """Send a layer's message through the guard: the one way a message leaves the clock."""
        port = self.layer_port[layer]
        for out in self.guard.admit(t, port, layer, token, msg):
            self._send(t, port, layer, out)
        if token > self.sent_token[layer]:
            self.sent_token[layer] = token

    def _send(self, t: float, port: int, layer: int, msg: list[int]) -> None:
        self.ports[port].send(msg)
        self.recent.append((t, layer, msg))
        if self.recorder is not None:
            self._record(t, msg, layer)
        self.sent += 1
        if len(self.sent_log) < 10_000:
            self.sent_log.append((t, msg))

    def _record(self, t: float, msg: list[int], layer: int) -> None:
        """Into the recording: a note-off only for a note it holds (one begun before Rec was
        pressed, or made before its 0, stays out)."""
        kind = msg[0] & 0xF0
        if kind in (0x80, 0x90):
            key = (layer, msg[0] & 0x0F, msg[1])
            if kind == 0x90 and msg[2] > 0:
                if t < self.recorder.origin:
                    return
                self.recorded_on.add(key)
            elif key in self.recorded_on:
                self.recorded_on.discard(key)
            elif self.recorder.origin > 0:
                return
        self.recorder.add(t, msg, layer)

    def finish(self, end: float | None = None) -> None:
        """Drop the future, end every sounding note (also in the recording), then send all-notes-off
        on each layer's channel (to the port only: the music in the file ended with its note-offs),
        close everything.

        ``end``: the take's planned end (``--duration``); the note-offs are recorded there, so a
        seeded take is the same file every time however late the stop arrived."""
        self.queue.clear()
        if self.opener is not None:  # a port still opening must not be left open
            self.opener.join(10.0)
            if self.opener.port is not None:
                self.opener.port.close()
            self.opener = None
        at = end if end is not None else max(0.0, self.now())
        for due, port, layer, msg in self.guard.expire(at):  # notes that reached their limit before the end
            self._send(due, port, layer, msg)
        self._release_all(at)
        for index, port in enumerate(self.ports):
            for channel in sorted({self.config.layers[i].channel for i in self._layers_on(index)}):
                port.send([0xB0 | channel, ALL_NOTES_OFF, 0])  # for a note-off the MIDI system lost (an xrun)
            port.close(release=False)
        if self.clock is not None:
            self.clock.close()
        if self.recorder is not None:
            self.recorder.close()
        try:
            self.conn.send(("stopped", {"timing": self.timing, "sent": self.sent, "thru": self.thru_delay,
                                        "clock_timing": self.clock.timing if self.clock else [],
                                        "clock_ticks": self.clock.ticks if self.clock else 0,
                                        "late_rollbacks": self.late_rollbacks,
                                        "late_arrivals": self.late_arrivals,
                                        "late_dropped": self.late_dropped,
                                        "retriggers": self.guard.retriggers,
                                        "stray_offs": self.guard.stray_offs,
                                        "expired": self.guard.expired}))
        except (OSError, BrokenPipeError):
            pass
