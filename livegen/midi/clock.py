"""MIDI clock: 24 ticks per quarter note out to a chosen port, and an external clock's tempo in.

``ClockOut`` lives in the output-clock process (player.py): the player sends each tick at its
absolute deadline with the same sleep-then-spin as notes, and the error is measured right at the
send point. Start (0xFA) goes out with the first tick at performance time 0, stop (0xFC) when the
take ends. A take that follows another in one run (OSC /stop, then /play) goes on with the song
instead: Song Position Pointer (0xF2) at the next bar after the last take's end, then Continue
(0xFB), so a DAW that records to livegen's clock carries on where it stopped rather than
rewinding. Tick k falls on beat k/24 of the engine's tempo map, the one the DCRNN's grid follows,
so the clock stays on the music's beat through tempo changes.

``TempoFollower`` estimates an incoming clock's bpm: a least-squares line through the last beat
of tick times (24 ticks), so jitter averages out and a tempo change is fully followed one beat
after it happens.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque

from livegen.engine.tempo import BeatSource
from livegen.errors import UserError
from livegen.music.tempo import MAX_BPM, MIN_BPM, TempoMap

PPQN = 24
TICK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
SIXTEENTHS_PER_BAR = 16  # Song Position counts MIDI beats (16th notes, 6 ticks); takes begin on a 4/4 bar
MAX_SONG_POSITION = 0x3FFF


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
        from livegen.midi.ports import _backend

        if not MIN_BPM <= bpm <= MAX_BPM:
            raise UserError(f"clock tempo {bpm:g} bpm is outside {MIN_BPM:g}..{MAX_BPM:g}")
        try:
            self._port = _backend(api).open_output(port)
        except Exception as exc:
            raise UserError(f"cannot open the MIDI clock output {port!r} on {api}: {exc}") from None
        self.name = self._port.name
        self._raw = self._port._rt
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
            self.song_position = (self.song_position or 0) + sixteenths
        self.due = start + self.tempo.time_at_beat(self._count / PPQN)

    def send_due(self) -> None:
        """Send what is due now (start with the first tick) and move to the next deadline."""
        sent_at = time.monotonic()
        if not self.started:
            if self.song_position is None:
                self._raw.send_message([START])
            else:
                position = self.song_position
                self._raw.send_message([SONG_POSITION, position & 0x7F, position >> 7])
                self._raw.send_message([CONTINUE])
            self.started = True
        self._raw.send_message([TICK])
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
            self._raw.send_message([STOP])
        self._port.close()


class TempoFollower:
    """The tempo and beat of an incoming MIDI clock (``--clock-in``), from the tick arrival times."""

    WINDOW = PPQN  # one beat of ticks
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
        n = len(self._times)
        if n < 3:
            return
        xs = [x for x, _ in self._times]
        t0 = self._times[0][1]
        ys = [t - t0 for _, t in self._times]
        mx, my = sum(xs) / n, sum(ys) / n
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        if slope > 0:
            self._line = (t0 + my - slope * mx, slope)
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
    """Listens to an external MIDI clock on an input port: a ``TempoFollower`` as a beat source."""

    def __init__(self, api: str, port: str, follower: TempoFollower | None = None):
        import rtmidi

        from livegen.midi.ports import _RTMIDI_API, match_port

        self.follower = follower or TempoFollower()
        try:
            self._in = rtmidi.MidiIn(getattr(rtmidi, f"API_{_RTMIDI_API[api]}"), name="livegen-clock-in")
        except rtmidi.SystemError as exc:
            raise UserError(f"cannot listen for a MIDI clock on {api}: {exc}") from None
        names = self._in.get_ports()
        try:
            wanted = match_port(port, names, kind="clock source (an output of another program)")
        except UserError:
            self._in.delete()
            raise
        self._in.ignore_types(sysex=True, timing=False, active_sense=True)
        self._in.set_callback(self._on_midi)
        self._in.open_port(names.index(wanted))
        self.name = f"the MIDI clock from {wanted}"

    @property
    def quantum(self) -> float:
        return 4.0 if self.follower.started else 1.0  # after a Start, tick 0 began a bar

    def beat_at(self, at: float) -> tuple[float, float] | None:
        return self.follower.beat_at(at)

    def _on_midi(self, event, _data=None) -> None:
        message, _delta = event
        if message and message[0] in (TICK, START, CONTINUE, STOP):
            self.follower.on_message(message[0], time.monotonic())

    def close(self) -> None:
        self._in.close_port()
        self._in.delete()


# --- benchmark (``livegen bench --parts clock``) -------------------------------------------------

def clock_bench(model, seconds: float = 20.0, log=print) -> dict:
    """MIDI clock out on a JACK port while the engine plays there (send-point error and interval
    error, ms), and how fast the tempo follower settles when an incoming clock jumps 90 -> 140 bpm."""
    import numpy as np

    from livegen.engine.engine import Engine, EngineSettings, OutputChoice
    from livegen.midi import ports

    with _jack_for_bench() as why_not:
        if why_not:
            return {"skipped": why_not}
        follower = TempoFollower()
        rt_in = _virtual_input("livegen-clock-bench", follower)
        try:
            time.sleep(0.3)
            target = ports.match_port("livegen-clock-bench", ports.list_ports("jack")["outputs"])
            log(f"bench: MIDI clock out at 120 bpm to {target} for {seconds:g} s, notes on the same port")
            engine = Engine(model, OutputChoice("jack", target), EngineSettings(seed=5, bpm=120.0),
                            end=seconds, clock_out=("jack", target))
            engine.start()
            while engine.now() < seconds + 0.05 and engine.running:
                time.sleep(0.05)
            stats = engine.stop()
            sent = np.asarray(stats.clock_timing) * 1000.0
            interval = np.abs(np.diff(sent))
            received_bpm = follower.bpm
            log("bench: following an incoming clock that jumps from 90 to 140 bpm")
            settle = _follow_step(target, follower)
        finally:
            rt_in.close_port()
            rt_in.delete()
        log("bench: a DCRNN take following that clock (--clock-in): its beat against the band's")
        settle.update(_follow_live(log))

    def pct(a):
        return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4),
                "max": round(float(a.max()), 4)} if len(a) else {"p50": None, "p99": None, "max": None}

    return {"ticks": int(len(sent)), "send_error_ms": pct(np.abs(sent)), "interval_error_ms": pct(interval),
            "received_bpm_at_120": round(received_bpm, 2) if received_bpm else None, **settle}


def _follow_step(target: str, follower: TempoFollower, before: float = 90.0, after: float = 140.0,
                 beats: int = 8) -> dict:
    """Send a clock at ``before`` then ``after`` bpm (sleep-then-spin deadlines) and measure when the
    estimate comes within 2 % of the new tempo and stays there."""
    from livegen.midi.ports import _backend

    port = _backend("jack").open_output(target)
    out = port._rt
    estimates = []  # (tick index after the change, bpm)
    try:
        follower.on_message(STOP, time.monotonic())
        out.send_message([START])
        deadline = time.monotonic() + 0.05
        for tick in range(2 * beats * PPQN):
            bpm = before if tick < beats * PPQN else after
            while deadline - time.monotonic() > 0.002:
                time.sleep(0.001)
            while time.monotonic() < deadline:
                pass
            out.send_message([TICK])
            deadline += 60.0 / bpm / PPQN
            if tick >= beats * PPQN:
                time.sleep(0.0005)  # let the callback see the tick (JACK delivers once per period)
                estimates.append((tick - beats * PPQN, follower.bpm))
        out.send_message([STOP])
        time.sleep(0.1)
    finally:
        port.close()
    settled = None
    for index, (tick, _) in enumerate(estimates):
        if all(b is not None and abs(b - after) <= 0.02 * after for _, b in estimates[index:]):
            settled = tick
            break
    tail = [b for t, b in estimates if t >= PPQN * (beats - 2) and b is not None]
    return {"follow_90_to_140_settle_beats": round(settled / PPQN, 2) if settled is not None else None,
            "follow_bpm_after": round(sum(tail) / len(tail), 2) if tail else None}


def _follow_live(log, before: float = 90.0, after: float = 140.0, beats: int = 12) -> dict:
    """A DCRNN take with ``TempoFollow`` on a JACK clock that jumps ``before`` -> ``after`` bpm:
    from the tempo the engine was given and the ticks' send times, the beats until the take's
    beat stays within 0.05 beat of the band's, until its tempo stays within 2 %, and the phase
    error after (the ticks' transit through JACK included)."""
    import numpy as np
    import rtmidi

    from livegen.cli import load_model
    from livegen.engine.engine import Engine, EngineSettings, OutputChoice
    from livegen.engine.tempo import TempoFollow
    from livegen.music.conditioning import Controls
    from livegen.music.tempo import TempoMap

    band = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="livegen-bench-band")
    band.open_virtual_port("livegen-bench-band")
    time.sleep(0.3)
    clock_in = ClockIn("jack", "livegen-bench-band")
    engine = Engine(load_model("dcrnn"), OutputChoice(), EngineSettings(seed=3, bpm=120.0), Controls(z=(0.0,) * 8))
    changes: list[tuple[float, float]] = []
    steer = engine.set_tempo

    def recorded(bpm, t=None):
        changes.append((steer(bpm, t), bpm))

    engine.set_tempo = recorded
    sent: list[float] = []  # monotonic send time of every tick
    try:
        engine.start()
        follow = TempoFollow(engine, clock_in)
        band.send_message([START])
        deadline = time.monotonic() + 0.05
        for tick in range(2 * beats * PPQN):
            while deadline - time.monotonic() > 0.002:
                time.sleep(0.001)
            while time.monotonic() < deadline:
                pass
            band.send_message([TICK])
            sent.append(time.monotonic())
            if tick == PPQN:
                follow.start()  # one beat in: the follower has a tempo to start from
            deadline += 60.0 / (before if tick < beats * PPQN else after) / PPQN
        follow.stop()
    finally:
        engine.stop()
        clock_in.close()
        band.close_port()
        band.delete()
    ours = TempoMap(120.0)
    for t, bpm in changes:
        ours.set(t, bpm)
    rows = []  # (band beat, phase error in beats, our bpm) at each band beat after the change
    for k in range(beats, 2 * beats):
        t = sent[k * PPQN] - engine.start_time
        error = ours.beat_at(t) - k
        rows.append((k - beats, error - round(error / 4.0) * 4.0, ours.bpm_at(t)))
    def settled(ok):
        return next((b for b, _, _ in rows if all(ok(e, bpm) for b2, e, bpm in rows if b2 >= b)), None)

    tail = np.abs([e for b, e, _ in rows if b >= beats // 2]) * 60.0 / after * 1000.0
    return {"follow_live_phase_settle_beats": settled(lambda e, bpm: abs(e) < 0.05),
            "follow_live_tempo_settle_beats": settled(lambda e, bpm: abs(bpm - after) < 0.02 * after),
            "follow_live_tempo_changes": len(changes),
            "follow_live_phase_error_ms": {"p50": round(float(np.percentile(tail, 50)), 2),
                                           "max": round(float(tail.max()), 2)} if len(tail) else None}


def _virtual_input(name: str, follower: TempoFollower):
    import rtmidi

    rt_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="livegen-bench")
    rt_in.ignore_types(sysex=True, timing=False, active_sense=True)
    rt_in.set_callback(lambda event, _data=None: event[0] and event[0][0] in (TICK, START, CONTINUE, STOP)
                       and follower.on_message(event[0][0], time.monotonic()))
    rt_in.open_virtual_port(name)
    return rt_in


class _jack_for_bench:
    """The running JACK server, or a private dummy one for the bench; yields why not when neither."""

    def __enter__(self):
        import os
        import shutil
        import subprocess

        from livegen.midi.ports import api_available

        self._proc = None
        if api_available("jack"):
            return None
        if shutil.which("jackd") is None:
            return "no JACK server and no jackd to start one (apt-get install jackd2)"
        name = f"livegen-bench-{os.getpid()}"
        self._saved = os.environ.get("JACK_DEFAULT_SERVER")
        self._proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=dict(os.environ, JACK_NO_AUDIO_RESERVATION="1"))
        os.environ["JACK_DEFAULT_SERVER"] = name
        deadline = time.monotonic() + 10
        while not api_available("jack"):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                return "the private JACK dummy server did not start"
            time.sleep(0.1)
        return None

    def __exit__(self, *exc):
        import os

        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            if self._saved is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._saved
        return False
