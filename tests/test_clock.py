"""MIDI clock out of the clock process and an external clock's tempo in, on a real JACK server."""
import random
import signal
import statistics
import subprocess
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ClockBand, livegen_cmd
from livegen.midi.ports import PolledReader
from livegen.midi.clock import (CONTINUE, PPQN, SONG_POSITION, START, STOP, TICK, ClockIn, TempoFollower,
                                next_bar_position)


class ClockReceiver:
    """A JACK MIDI input that keeps every realtime byte (mido's inputs drop clock) with its time."""

    def __init__(self, name):
        import rtmidi

        self.events, self.name = [], name
        raw = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=f"test-{name}")
        raw.ignore_types(sysex=True, timing=False, active_sense=True)
        raw.open_virtual_port(name)  # read by a thread, as livegen's inputs are: no Python in JACK's cycle
        self._reader = PolledReader(raw, name, lambda message, at: self.events.append((at, message)))

    def bytes(self, status=None):
        return [(t, m) for t, m in list(self.events) if status is None or m[0] == status]

    def close(self):
        self._reader.close()


def beats_to_settle(times, new_bpm, change_at):
    follower, estimates = TempoFollower(), []
    follower.on_message(START, times[0])
    for index, t in enumerate(times):
        follower.on_message(TICK, t)
        if index >= change_at:
            estimates.append(follower.bpm)
    for index in range(len(estimates)):
        if all(abs(b - new_bpm) <= 0.02 * new_bpm for b in estimates[index:]):
            return index / PPQN
    return None


def clock_times(segments, jitter=0.0, seed=0):
    rng, times, t = random.Random(seed), [], 0.0
    for bpm, beats in segments:
        for _ in range(beats * PPQN):
            times.append(t + rng.uniform(-jitter, jitter))
            t += 60.0 / bpm / PPQN
    return times


@pytest.mark.parametrize("jitter", [0.0, 0.002])
def test_following_90_to_140_bpm_settles_within_two_beats(jitter):
    times = clock_times([(90, 8), (140, 8)], jitter)
    assert beats_to_settle(times, 140, 8 * PPQN) <= 2.0
    times = clock_times([(140, 8), (90, 8)], jitter)
    assert beats_to_settle(times, 90, 8 * PPQN) <= 2.0


@settings(max_examples=60, deadline=None)
@given(bpm=st.floats(60, 200), hiccups=st.lists(st.tuples(st.integers(PPQN, 4 * PPQN - 1), st.floats(0.0, 0.05)),
                                               max_size=3),
       seed=st.integers(0, 2**16))
def test_a_senders_hiccups_and_their_catch_up_bursts_leave_the_tempo_alone(bpm, hiccups, seed):
    """A loaded DAW's clock thread wakes late now and then and sends the ticks it owes at once;
    on arrival each tick also waits for the MIDI system's period (5.3 ms). No tick is early."""
    rng, every, late, times = random.Random(seed), 60.0 / bpm / PPQN, 0.0, []
    held = dict(hiccups)
    for n in range(4 * PPQN):
        due = n * every
        late = max(0.0, late - every) + held.get(n, 0.0)  # owed ticks go out back to back
        times.append(due + late + rng.uniform(0.0, 0.0053))
    follower = TempoFollower()
    for t in times:
        follower.on_message(TICK, t)
    assert follower.bpm == pytest.approx(bpm, rel=0.02)


def test_a_stopped_clock_starts_a_fresh_estimate():
    follower = TempoFollower()
    for t in clock_times([(60, 2)]):
        follower.on_message(TICK, t)
    assert follower.bpm == pytest.approx(60, rel=1e-6) and follower.ticks == 2 * PPQN
    follower.on_message(STOP, 2.0)
    assert not follower.running
    for t in clock_times([(180, 1)]):
        follower.on_message(TICK, t + 10.0)  # long after: the old ticks must not drag the estimate
    assert follower.bpm == pytest.approx(180, rel=1e-6)


def test_perform_sends_midi_clock_at_the_tempo_with_start_and_stop(jack_server, receiver):
    clock = ClockReceiver("clock-sink")
    try:
        time.sleep(0.3)
        run = subprocess.run(livegen_cmd("perform", "--api", "jack", "--port", receiver.name, "--clock-out",
                                         "clock-sink", "--bpm", "150", "--duration", "4"), capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "MIDI clock error" in run.stderr
        receiver.settle()
        time.sleep(0.3)
        statuses = [m[0] for _, m in clock.bytes()]
        ticks = clock.bytes(TICK)
    finally:
        clock.close()
    assert statuses[0] == START and statuses[-1] == STOP
    assert abs(len(ticks) - 4 * 150 / 60 * PPQN) <= 6  # the take's 4 s of ticks, to JACK's period
    span = ticks[-1][0] - ticks[0][0]  # on arrival, through JACK's 21-ms periods: over the whole take
    assert 60.0 / (span / (len(ticks) - 1) * PPQN) == pytest.approx(150, rel=0.02)
    assert len(receiver.notes()) >= 10 and receiver.hanging() == 0


@pytest.mark.parametrize("position, ticks, bar", [(0, 0, 0), (0, 1, 16), (0, 96, 16), (0, 97, 32),
                                                  (16, 200, 64), (16368, 96, None)])
def test_the_next_take_goes_on_at_the_bar_after_the_last(position, ticks, bar):
    assert next_bar_position(position, ticks) == bar


def test_a_take_after_an_osc_stop_continues_the_song_at_the_next_bar(jack_server):
    from pythonosc.udp_client import SimpleUDPClient
    from test_osc import free_port

    clock, port = ClockReceiver("clock-song"), free_port()
    proc = subprocess.Popen(livegen_cmd("perform", "--no-port", "--clock-out", "clock-song", "--osc", str(port),
                                        "--bpm", "150"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = SimpleUDPClient("127.0.0.1", port)

    def statuses():
        return [m[0] for _, m in clock.bytes()]

    def wait_for(predicate, timeout=60):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline and proc.poll() is None, "timed out"
            time.sleep(0.02)

    try:
        wait_for(lambda: statuses().count(TICK) >= 3 * PPQN)
        client.send_message("/livegen/stop", [])
        wait_for(lambda: STOP in statuses())
        client.send_message("/livegen/play", 1)
        wait_for(lambda: CONTINUE in statuses() and statuses()[statuses().index(CONTINUE):].count(TICK) >= PPQN)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        time.sleep(0.3)
        clock.close()
    assert proc.returncode == 0, err  # Ctrl-C during a take: perform's way to stop
    events = [m for _, m in clock.bytes()]
    first_stop = [m[0] for m in events].index(STOP)
    first_ticks = [m[0] for m in events[:first_stop]].count(TICK)
    assert events[0] == [START] and events[first_stop + 3][0] == TICK
    pointer, go_on = events[first_stop + 1], events[first_stop + 2]
    assert pointer[0] == SONG_POSITION and go_on == [CONTINUE]
    assert pointer[1] | pointer[2] << 7 == next_bar_position(0, first_ticks)  # the bar after the first take
    assert [m[0] for m in events].count(START) == 1 and events[-1] == [STOP]


def test_clock_in_follows_a_jack_clock_source(jack_server):
    band = ClockBand("clk-src", 100.0)
    follow = ClockIn("jack", "clk-src")
    try:
        band.start()
        time.sleep(3.0)
        assert follow.follower.running and follow.follower.ticks >= 2 * PPQN
        assert follow.follower.bpm == pytest.approx(100, rel=0.06)  # over one beat of 21-ms JACK periods
    finally:
        follow.close()
        band.close()


def test_the_clock_ins_reader_lives_through_a_failing_follower_and_says_so_once(jack_server, caplog):
    class Flaky(TempoFollower):
        failures = 0

        def on_message(self, status, at):
            if status == TICK and self.failures < 3:
                self.failures += 1
                raise RuntimeError("a bug in the follower")
            super().on_message(status, at)

    band = ClockBand("flaky-src", 120.0)
    follow = ClockIn("jack", "flaky-src", Flaky())
    try:
        band.start()
        deadline = time.monotonic() + 10
        while follow.follower.ticks < 3 * PPQN and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        follow.close()
        band.close()
    # the tests' JACK delivers in 21-ms periods, a twentieth of the one beat the estimate spans
    assert follow.follower.failures == 3 and follow.follower.bpm == pytest.approx(120, rel=0.06)
    assert [r.getMessage() for r in caplog.records if "a bug in the follower" in r.getMessage()] == [
        "MIDI input test-flaky-src:flaky-src: RuntimeError: a bug in the follower; listening on"]


def test_a_wrong_clock_port_is_one_line(jack_server):
    run = subprocess.run(livegen_cmd("perform", "--api", "jack", "--no-port", "--clock-out", "no-such-clock",
                                     "--duration", "1"), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert "no MIDI output matches 'no-such-clock'" in line


def test_perform_follows_a_clock_in_and_relays_it_on_the_clock_out(jack_server, receiver, tmp_path):
    import json

    source, sink = ClockBand("band-clock", 100.0), ClockReceiver("relay-sink")
    take = tmp_path / "followed.mid"
    try:
        source.start()
        time.sleep(0.5)
        proc = subprocess.Popen(livegen_cmd("perform", "--api", "jack", "--port", receiver.name, "--model", "dcrnn",
                                            "--clock-in", "band-clock", "--clock-out", "relay-sink", "--bpm", "120",
                                            "--duration", "9", "--record", str(take)),
                                stderr=subprocess.PIPE, text=True)
        said = [proc.stderr.readline()]
        while "following the MIDI clock" not in said[-1] and said[-1]:
            said.append(proc.stderr.readline())
        time.sleep(4.0)
        source.set_bpm(140.0)  # the band speeds up mid-take
        _, rest = proc.communicate(timeout=60)
        stderr = "".join(said) + rest
        assert proc.returncode == 0, stderr
        receiver.settle()
        ticks = sink.bytes(TICK)
    finally:
        source.close()
        sink.close()
    assert "following the MIDI clock from" in stderr
    rows = [json.loads(line) for line in take.with_suffix(".jsonl").read_text().splitlines()]
    tempi = [(r["t"], r["bpm"]) for r in rows[1:] if "bpm" in r]  # after the header
    # medians: the band's ticks come from another process of this (loaded, shared) machine, through JACK's periods
    assert statistics.median(b for t, b in tempi if 2.0 < t < 3.5) == pytest.approx(100, rel=0.02)  # locked ...
    assert statistics.median(b for t, b in tempi if t > 6.5) == pytest.approx(140, rel=0.02)  # ... and re-locked
    late = [t for t, _ in ticks if t > ticks[-1][0] - 2.0]  # the relayed clock, as it arrived
    assert 60.0 / ((late[-1] - late[0]) / (len(late) - 1) * PPQN) == pytest.approx(140, rel=0.03)
    assert len(receiver.notes()) >= 10 and receiver.hanging() == 0


def test_a_wrong_clock_in_port_is_one_line(jack_server):
    run = subprocess.run(livegen_cmd("perform", "--api", "jack", "--no-port", "--clock-in", "no-such-band",
                                     "--duration", "1"), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert "no MIDI clock source" in line and "'no-such-band'" in line


def test_perform_follows_the_presets_tempo_source(jack_server, tmp_path):
    preset = tmp_path / "band.toml"
    preset.write_text('[engine]\ntempo_source = "clock:no-such-clock-source"\n')
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--preset", str(preset), "--duration", "1"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no-such-clock-source" in run.stderr and "Traceback" not in run.stderr
