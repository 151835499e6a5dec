"""The output clock: a process of its own that sends scheduled MIDI at absolute deadlines.

Model inference shares a GIL with everything else in the main process and shows multi-ms
tails there, so the clock lives apart and imports neither torch nor numpy. It sleeps in
``poll()`` until just before a deadline, then spins the last ``SPIN`` seconds; timing error is
measured right at the send point against the monotonic clock (shared by all processes).
Each message carries the index of the token that produced it, so a rollback (``replace``)
drops exactly the not-yet-sent future. If the engine dies (even ``kill -9``), the pipe closes
and the player ends every sounding note and closes the recording cleanly.
"""
from __future__ import annotations

import heapq
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

SPIN = 0.0012
# SCHED_FIFO priority: above every normal process, below JACK's own real-time threads (5 and up).
# Above them, a spinning send (rtmidi's JACK output waits with sched_yield for ring-buffer room)
# starved the very thread that drains the buffer, and the clock locked up.
CLOCK_PRIORITY = 2
REPORT_EVERY = 0.05  # s between reports of sent messages to the engine (displays drain them at <= 60 Hz)
MAX_TIMING_SAMPLES = 200_000


@dataclass
class PlayerConfig:
    api: str | None  # None: no MIDI system, play only into the recording
    port: str | None  # exact port name (already matched), or the virtual port's name
    virtual: bool
    record: str | None
    start: float  # monotonic time of performance t = 0
    channel: int = 0
    program: int | None = None
    tempo_us: int = 500_000
    soundfont: str | None = None  # the built-in synth's (api "fluidsynth"); None: its default
    clock_out: tuple[str, str] | None = None  # (api, port) to send 24-ppqn MIDI clock to
    bpm: float = 120.0  # the clock's tempo


def run_player(conn, config: PlayerConfig) -> None:
    """Entry point of the player process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the engine, which stops us in order
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(CLOCK_PRIORITY))
        realtime = True
    except (AttributeError, PermissionError, OSError):
        realtime = False
    from livegen.errors import UserError

    try:
        port = _open_port(config.api, config.port, config.virtual, config.soundfont)
        recorder = None
        if config.record:
            from livegen.midi.recorder import Recorder

            recorder = Recorder(config.record, config.tempo_us)
        clock = None
        if config.clock_out:
            from livegen.midi.clock import ClockOut

            clock = ClockOut(*config.clock_out, config.bpm, config.start)
    except (UserError, OSError) as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", {"port": port.name, "realtime": realtime, "clock_out": clock.name if clock else None}))
    Player(conn, config, port, recorder, clock).loop()


def _open_port(api: str | None, port: str | None, virtual: bool, soundfont: str | None = None):
    from livegen.midi.ports import NullOutput, RtMidiOutput

    if api == "fluidsynth":
        from livegen.midi.fluidsynth import FluidSynthOutput

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
        from livegen.errors import UserError

        try:
            self.port = _open_port(*self.args)
        except (UserError, OSError) as exc:
            self.error = str(exc)


class Player:
    def __init__(self, conn, config: PlayerConfig, port, recorder, clock=None):
        self.conn, self.config, self.port, self.recorder = conn, config, port, recorder
        self.clock = clock  # ClockOut: MIDI clock ticks at their own deadlines, between the notes
        self.queue: list[tuple[float, int, int, list[int]]] = []  # (time, seq, token index, message)
        self.seq = 0
        self.sent_token = -1  # highest token index whose message was sent
        self.timing: list[float] = []
        self.sent = 0
        self.late_rollbacks = 0
        self.late_arrivals = 0
        self.sent_log: list[tuple[float, list[int]]] = []  # reported to the engine for displays
        self.last_report = 0.0
        self.reported_timing = 0
        self.opener: PortOpener | None = None  # a switch in progress

    def loop(self) -> None:
        start = self.config.start
        if self.config.program is not None:
            self._emit(0.0, [0xC0 | self.config.channel, self.config.program], -1)
        while True:
            if self.opener is not None and not self.opener.is_alive():
                self._switch_to_opened()
            now = time.monotonic()
            clock = self.clock
            if clock is not None and clock.due - now <= SPIN and (
                    not self.queue or clock.due <= start + self.queue[0][0]):
                while time.monotonic() < clock.due:
                    pass
                clock.send_due()
                continue
            if self.queue:
                due = start + self.queue[0][0]
                if due - now <= SPIN:
                    while time.monotonic() < due:
                        pass
                    t, _, token, msg = heapq.heappop(self.queue)
                    sent_at = time.monotonic()
                    self._emit(t, msg, token)
                    if len(self.timing) < MAX_TIMING_SAMPLES:
                        self.timing.append(sent_at - (start + t))
                    continue
                wait = due - now - SPIN
            else:
                wait = 0.05
            if clock is not None:
                wait = min(wait, clock.due - now - SPIN)
            if self.recorder is not None and self.recorder.flush_due() and wait > 0.003:
                self.recorder.flush()
                continue
            if self.sent_log and wait > 0.003 and now - self.last_report >= REPORT_EVERY:
                self._report(now)
                continue
            try:
                if not self.conn.poll(min(wait, 0.05)):
                    continue
                command = self.conn.recv()
            except (EOFError, OSError):  # the engine is gone: end cleanly
                self._finish()
                return
            if not self._handle(command):
                return

    def _handle(self, command) -> bool:
        name = command[0]
        if name == "schedule":
            self._schedule(command[1])
        elif name == "replace":  # rollback: drop every message made by token >= first
            first, events = command[1], command[2]
            late = self.sent_token >= first
            self.late_rollbacks += late
            self.queue = [e for e in self.queue if e[2] < first]
            heapq.heapify(self.queue)
            self._schedule(events)
            self.conn.send(("replaced", command[3], time.monotonic(), late))
        elif name == "now":  # send immediately (program change, panic)
            for msg in command[1]:
                self._emit(time.monotonic() - self.config.start, msg, -1)
        elif name == "tempo":  # (performance time, bpm): the MIDI clock out follows the music's tempo
            if self.clock is not None:
                self.clock.set_tempo(command[1], command[2])
        elif name == "panic":
            self.queue.clear()
            now = time.monotonic() - self.config.start
            for msg in self.port.release_messages():
                self._emit(now, msg, -1)
            self.conn.send(("panicked",))
        elif name == "switch":  # another port, opened beside the clock; see _switch_to_opened
            if self.opener is not None:  # a newer choice wins over one still opening
                self.opener.join()
                self._switch_to_opened()
            self.opener = PortOpener(command[1:])
        elif name == "stop":
            self._finish(command[1])
            return False
        return True

    def _switch_to_opened(self) -> None:
        """End our notes on the old port, then play on the new one (or only record if it failed)."""
        opener, self.opener = self.opener, None
        now = time.monotonic() - self.config.start
        for msg in self.port.release_messages():
            self._emit(now, msg, -1)
        self.port.close(panic=False)
        from livegen.midi.ports import NullOutput

        self.port = opener.port or NullOutput()
        self.conn.send(("switched", self.port.name, opener.error))

    def _schedule(self, events) -> None:
        late_before = time.monotonic() - self.config.start
        for t, token, msg in events:
            heapq.heappush(self.queue, (t, self.seq, token, msg))
            self.seq += 1
            self.late_arrivals += t < late_before  # the generator fell behind the clock

    def _report(self, now: float) -> None:
        """What was sent since the last report, with its timing errors (for the panel's live view)."""
        self.conn.send(("sent", self.sent_log, self.timing[self.reported_timing:]))
        self.sent_log = []
        self.reported_timing = len(self.timing)
        self.last_report = now

    def _emit(self, t: float, msg: list[int], token: int) -> None:
        self.port.send(msg)
        if self.recorder is not None:
            self.recorder.add(t, msg)
        if token > self.sent_token:
            self.sent_token = token
        self.sent += 1
        if len(self.sent_log) < 10_000:
            self.sent_log.append((t, msg))

    def _finish(self, end: float | None = None) -> None:
        """Drop the future, end every sounding note (also in the recording), close everything.

        ``end``: the take's planned end (``--duration``); the note-offs are recorded there, so a
        seeded take is the same file every time however late the stop arrived."""
        self.queue.clear()
        if self.opener is not None:  # a port still opening must not be left open
            self.opener.join(10.0)
            if self.opener.port is not None:
                self.opener.port.close()
            self.opener = None
        now = end if end is not None else max(0.0, time.monotonic() - self.config.start)
        for msg in self.port.release_messages():
            self._emit(now, msg, -1)
        self.port.close(panic=False)
        if self.clock is not None:
            self.clock.close()
        if self.recorder is not None:
            self.recorder.close()
        try:
            self.conn.send(("stopped", {"timing": self.timing, "sent": self.sent,
                                        "clock_timing": self.clock.timing if self.clock else [],
                                        "late_rollbacks": self.late_rollbacks,
                                        "late_arrivals": self.late_arrivals}))
        except (OSError, BrokenPipeError):
            pass
