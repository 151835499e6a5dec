"""``livegen bench --parts clock``: MIDI clock out on a JACK port while the engine plays there
(send-point error and interval error, ms), how fast the tempo follower settles when an incoming
clock jumps 90 -> 140 bpm, and a DCRNN take following that clock (``--clock-in``): its beat
against the band's. Runs on the JACK server there is, or a private dummy one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np

from livegen.engine.engine import Engine, EngineSettings, OutputChoice
from livegen.engine.tempo_follow import TempoFollow
from livegen.midi import ports
from livegen.midi.clock import CONTINUE, PPQN, START, STOP, TICK, ClockIn, TempoFollower
from livegen.midi.ports import api_available, rtmidi_client
from livegen.models.checkpoint import load_model
from livegen.music.conditioning import Controls
from livegen.music.tempo import TempoMap


def clock_bench(model, seconds: float = 20.0, log=print) -> dict:
    """MIDI clock out on a JACK port while the engine plays there (send-point error and interval
    error, ms), and how fast the tempo follower settles when an incoming clock jumps 90 -> 140 bpm."""
    with jack_for_bench() as why_not:
        if why_not:
            return {"skipped": why_not}
        follower = TempoFollower()
        clock_in = _virtual_input("livegen-clock-bench", follower)
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
            clock_in.close()
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
    out = rtmidi_client("jack", output=True)
    out.open_port(out.get_ports().index(target))
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
        out.close_port()
        out.delete()
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
    import rtmidi  # needs the system's ALSA library: only the clock bench's JACK ports use it

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


def _virtual_input(name: str, follower: TempoFollower) -> ports.PolledReader:
    """A virtual JACK input whose clock bytes ``follower`` hears, read as ``ClockIn`` reads them."""
    import rtmidi  # needs the system's ALSA library: only the clock bench's JACK ports use it

    rt_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="livegen-bench")
    rt_in.ignore_types(sysex=True, timing=False, active_sense=True)
    rt_in.open_virtual_port(name)
    return ports.PolledReader(rt_in, name, lambda message, at: message and message[0] in (TICK, START, CONTINUE, STOP)
                        and follower.on_message(message[0], at))


class jack_for_bench:
    """The running JACK server, or a private dummy one for the bench; yields why not when neither."""

    def __enter__(self):
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
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            if self._saved is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._saved
        return False
