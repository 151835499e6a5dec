"""MIDI clock: 24 ticks per quarter note out to a chosen port, and an external clock's tempo in.

``ClockOut`` lives in the output-clock process (player.py): the player sends each tick at its
absolute deadline with the same sleep-then-spin as notes, and the error is measured right at the
send point. Start (0xFA) goes out with the first tick at performance time 0, stop (0xFC) when the
take ends. A take that follows another in one run (OSC /stop, then /play) goes on with the song
instead: Song Position Pointer (0xF2) at the next bar after the last take's end, then Continue
(0xFB), so a DAW that records to livegen's clock carries on where it stopped rather than
rewinding. Tick k falls on beat k/24 of the engine's tempo map, the one the DCRNN's grid follows,
so the clock stays on the music's beat through tempo changes.

``TempoFollower`` estimates an incoming clock's bpm: the line under the last beat of tick times
(24 ticks) that touches the earliest, since ticks only ever arrive late; a sender's hiccup and its
burst of catch-up ticks leave it alone, and a tempo change is fully followed one beat after it
happens.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque

from livegen.errors import UserError
from livegen.messages import say
from livegen.midi.ports import PolledReader, RtMidiOutput, match_port, rtmidi_client
from livegen.music.tempo import MAX_BPM, MIN_BPM, BeatSource, TempoMap

PPQN = 24
TICK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
SIXTEENTHS_PER_BAR = 16  # Song Position counts MIDI beats (16th notes, 6 ticks); takes begin on a 4/4 bar
MAX_SONG_POSITION = 0x3FFF
CLOCK_IN_PORT = "clock in"  # the input port a MIDI clock in listens on: livegen:clock in


def next_bar_position(position: int, ticks: int) -> int | None:
    """Song Position of the bar after ``ticks`` more clock ticks from ``position``; None past the
    pointer's range (the next take then starts the song again)."""
    sixteenths = position + -(-ticks // 6)
    bar = -(-sixteenths // SIXTEENTHS_PER_BAR) * SIXTEENTHS_PER_BAR
    return bar if bar <= MAX_SONG_POSITION else None


class ClockOut:
    """MIDI clock on its own output; ``due`` is the monotonic deadline of the next message."""

    def __init__(self, api: str, port: str, bpm: float, song_position: int | None = None):
        """``song_position`` (16ths): go on with the song from there (Continue) instead of Start.
        Nothing is sent before ``begin``."""
        if not MIN_BPM <= bpm <= MAX_BPM:
            raise UserError(f"clock tempo {bpm:g} bpm is outside {MIN_BPM:g}..{MAX_BPM:g}")
        try:
            self._port = RtMidiOutput(api, port)
        except UserError as exc:
            raise UserError(f"the MIDI clock output: {exc}") from None
        self.name = self._port.name
        self.start = 0.0  # monotonic time of performance t = 0
        self.tempo = TempoMap(bpm)
        self._count = 0  # ticks sent
        self.due = float("inf")
        self.started = False
        self.song_position = song_position
        self.timing: list[float] = []  # send time minus deadline, s

    def begin(self, start: float, now: float) -> None:
        """Tick from performance time 0 at monotonic ``start``; a clock started mid-take (``now`` > 0,
        after the last one died) goes on from the next 16th with Song Position and Continue."""
        self.start = start
        if now > 0:
            sixteenths = math.ceil(self.tempo.beat_at(now) * 4)
            self._count = sixteenths * PPQN // 4
            self.song_position = min((self.song_position or 0) + sixteenths, MAX_SONG_POSITION)
        self.due = start + self.tempo.time_at_beat(self._count / PPQN)

    def send_due(self) -> None:
        """Send what is due now (start with the first tick) and move to the next deadline."""
        sent_at = time.monotonic()
        if not self.started:
            if self.song_position is None:
                self._port.send([START])
            else:
                position = self.song_position
                self._port.send([SONG_POSITION, position & 0x7F, position >> 7])
                self._port.send([CONTINUE])
            self.started = True
        self._port.send([TICK])
        if len(self.timing) < 200_000:
            self.timing.append(sent_at - self.due)
        self._count += 1
        self.due = self.start + self.tempo.time_at_beat(self._count / PPQN)

    @property
    def ticks(self) -> int:
        return self._count

    def set_tempo(self, t: float, bpm: float) -> None:
        """``bpm`` from performance time ``t`` on (changes arrive ahead of their time)."""
        self.tempo.set(t, bpm)
        self.tempo.forget_before(self.due - self.start - 1.0)
        self.due = self.start + self.tempo.time_at_beat(self._count / PPQN)

    def close(self) -> None:
        if self.started:
            self._port.send([STOP])
        self._port.close(release=False)


class TempoFollower:
    """The tempo and beat of an incoming MIDI clock (``--clock-in``), from the tick arrival times."""

    WINDOW = PPQN  # one beat of ticks
    FIRST = PPQN  # ticks before a clock's first estimate: over less than a beat, a sender's stall is a big share
    GAP = 1.0  # s without ticks: the clock stopped; the next ticks start a fresh estimate

    def __init__(self):
        self._times: deque[tuple[int, float]] = deque(maxlen=self.WINDOW + 1)  # (tick number, arrival)
        self._lock = threading.Lock()
        self._line: tuple[float, float] | None = None  # arrival of tick n = a + b * n
        self.bpm: float | None = None
        self.running = False  # between Start/Continue and Stop
        self.started = False  # a Start was seen: tick 0 is the first beat of a bar
        self.ticks = 0  # since the last start: the beat is ticks // 24

    def on_message(self, status: int, at: float) -> None:
        """Feed one realtime byte with its arrival time (monotonic seconds)."""
        with self._lock:
            if status in (START, CONTINUE):
                self.running = True
                if status == START:
                    self.ticks = 0
                    self.started = True
                    self._times.clear()
                    self._line = None
            elif status == STOP:
                self.running = False
            elif status == TICK:
                if self._times and at - self._times[-1][1] > self.GAP:
                    self._times.clear()
                    self._line = None
                self._times.append((self.ticks, at))
                self.ticks += 1
                self._estimate()

    def _estimate(self) -> None:
        """The line under the window's ticks, touching the earliest: a tick is never early, only
        late (held by the sender, the MIDI system's period or our own reader thread), so the
        earliest arrivals keep the clock's time and a burst of late ones leaves the tempo alone.
        Of the lower hull's edges, the one under the window's middle tick is the line that sits
        closest under all of them."""
        if len(self._times) < self.FIRST:
            return
        hull: list[tuple[int, float]] = []
        for n, t in self._times:
            while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (t - hull[-2][1])
                                      <= (hull[-1][1] - hull[-2][1]) * (n - hull[-2][0])):
                hull.pop()
            hull.append((n, t))
        middle = (self._times[0][0] + self._times[-1][0]) / 2
        (n0, t0), (n1, t1) = next((a, b) for a, b in zip(hull, hull[1:]) if b[0] >= middle)
        slope = (t1 - t0) / (n1 - n0)
        if slope > 0:
            self._line = (t0 - slope * n0, slope)
            self.bpm = 60.0 / (slope * PPQN)

    def beat_at(self, at: float) -> tuple[float, float] | None:
        """(beat position, bpm) of the incoming clock at monotonic time ``at`` (beat 0 at its
        Start), or None while there is no running clock to follow."""
        with self._lock:
            if self._line is None or not self._times or at - self._times[-1][1] > self.GAP:
                return None
            a, b = self._line
            return (at - a) / b / PPQN, self.bpm


class ClockIn(BeatSource):
    """Listens to an external MIDI clock on an input port: a ``TempoFollower`` as a beat source.
    Its ticks are read by a ``PolledReader``, never in the MIDI system's real-time cycle."""

    def __init__(self, api: str, port: str, follower: TempoFollower | None = None):
        self.follower = follower or TempoFollower()
        try:
            raw = rtmidi_client(api, output=False)
        except Exception as exc:  # no rtmidi, or the MIDI system refused a client
            raise UserError(f"cannot listen for a MIDI clock on {api}: {exc}") from None
        names = raw.get_ports()
        try:
            wanted = match_port(port, names, kind="clock source (an output of another program)")
        except UserError:
            raw.delete()
            raise
        raw.ignore_types(sysex=True, timing=False, active_sense=True)
        raw.open_port(names.index(wanted), CLOCK_IN_PORT)
        self.name = f"the MIDI clock from {wanted}"
        self._reader = PolledReader(raw, wanted, self._on_midi, say)

    @property
    def quantum(self) -> float:
        return 4.0 if self.follower.started else 1.0  # after a Start, tick 0 began a bar

    def beat_at(self, at: float) -> tuple[float, float] | None:
        return self.follower.beat_at(at)

    def _on_midi(self, message: list[int], at: float) -> None:
        if message and message[0] in (TICK, START, CONTINUE, STOP):
            self.follower.on_message(message[0], at)

    def close(self) -> None:
        self._reader.close()
