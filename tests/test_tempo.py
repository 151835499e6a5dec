"""The tempo map, the DCRNN re-timed by tempo changes, and the follower's phase-locked loop."""
from __future__ import annotations

import pytest

from livegen.models.checkpoint import load_model
from livegen.engine.dcrnn_live import DCRNNGenerator
from livegen.engine.engine import CONTROL_DELAY, EngineSettings
from livegen.engine.tempo_follow import TempoFollow
from livegen.midi.clock import PPQN, START, TICK, TempoFollower
from livegen.music.conditioning import Controls
from livegen.music.tempo import BeatSource, TempoMap


@pytest.mark.parametrize("changes, t, beat", [
    ([], 1.5, 3.0),                                   # 120 bpm: two beats a second
    ([(1.0, 60.0)], 3.0, 2.0 + 2.0),                  # beat 2 at 1 s, then one a second
    ([(1.0, 60.0), (2.0, 240.0)], 2.5, 3.0 + 2.0),    # beat 3 at 2 s, then four a second
    ([(1.0, 60.0), (0.5, 240.0)], 1.0, 1.0 + 2.0),    # a newer change overrides the later one
])
def test_tempo_map_round_trips_beats_and_times(changes, t, beat):
    tempo = TempoMap(120.0)
    for at, bpm in changes:
        tempo.set(at, bpm)
    assert tempo.beat_at(t) == pytest.approx(beat)
    assert tempo.time_at_beat(beat) == pytest.approx(t)
    tempo.forget_before(t)
    assert tempo.beat_at(t) == pytest.approx(beat) and tempo.time_at_beat(beat) == pytest.approx(t)


def notes(gen, until):
    out = []
    while gen.time < until:
        out += [(round(t, 6), m[1]) for t, _, m in gen.step() if m[0] & 0xF0 == 0x90]
    return out


def test_a_tempo_change_retimes_the_dcrnn_grid_and_a_rollback_matches_a_straight_run():
    model = load_model("dcrnn")
    z = Controls(z=(0.3, -0.5, 0.8, 0.0, -0.2, 0.6, -0.9, 0.1))
    straight = DCRNNGenerator(model, z, seed=4, bpm=120.0)
    straight.timeline.set(2.0, Controls(z=z.z, bpm=150.0))
    played = notes(straight, 5.0)
    steps = 60.0 / 150.0 / model.config.steps_per_beat
    late = [t for t, _ in played if t >= 2.0]
    assert late and all(abs((t - 2.0) / steps - round((t - 2.0) / steps)) < 1e-6 for t in late)  # on the new grid
    rolled = DCRNNGenerator(model, z, seed=4, bpm=120.0)
    notes(rolled, 2.4)  # generated ahead at 120 bpm, then the change arrives
    rolled.timeline.set(2.0, Controls(z=z.z, bpm=150.0))
    rolled.rollback(2.0)
    again = DCRNNGenerator(model, z, seed=4, bpm=120.0)
    early = notes(again, 2.0)
    assert early + notes(rolled, 5.0) == played


def test_the_charrnn_regenerates_for_a_tempo_change_when_its_notes_sit_on_the_beat_or_count_beats():
    from livegen.engine.engine import make_generator

    on_grid = make_generator(load_model("expressive"), Controls(), EngineSettings())
    free = make_generator(load_model("expressive"), Controls(), EngineSettings(timing="free"))
    assert on_grid.hears(Controls(), Controls(bpm=90.0)) and not free.hears(Controls(), Controls(bpm=90.0))
    assert free.hears(Controls(), Controls(pitch=0.9))
    in_beats = make_generator(load_model("charrnn"), Controls(), EngineSettings(timing="free"))
    assert in_beats.hears(Controls(), Controls(bpm=90.0))  # its steps are the beat's


def test_the_tempo_follower_reads_beat_and_bpm_off_the_ticks():
    follower = TempoFollower()
    follower.on_message(START, 10.0)
    interval = 60.0 / 100.0 / PPQN
    for k in range(PPQN + 1):
        follower.on_message(TICK, 10.0 + k * interval)
    beat, bpm = follower.beat_at(10.0 + 0.9)  # 1.5 beats at 100 bpm after the first tick
    assert bpm == pytest.approx(100.0) and beat == pytest.approx(1.5)
    assert follower.beat_at(10.0 + 5.0) is None  # ticks stopped: nothing to follow


class SteadyBeat(BeatSource):
    """An outside clock: beat 0 at ``origin`` (monotonic), a tempo that jumps at ``jump``."""

    name, quantum = "a test clock", 4.0

    def __init__(self, origin, before, after, jump):
        self.map = TempoMap(before)
        self.map.set(jump - origin, after)
        self.origin = origin

    def beat_at(self, at):
        return self.map.beat_at(at - self.origin), self.map.bpm_at(at - self.origin)

    def close(self):
        pass


class Engine:
    """Just what the follower sees of an engine: a clock it can steer by simulated time."""

    def __init__(self, bpm):
        self.start_time, self.t, self.running = 100.0, 0.0, True
        self.settings, self.controls = EngineSettings(bpm=bpm), Controls()
        self.changes = []

    def now(self):
        return self.t

    def set_tempo(self, bpm, t):
        self.changes.append((t + CONTROL_DELAY, bpm))


def test_the_follower_locks_phase_and_tempo_within_two_beats_of_a_jump():
    engine = Engine(120.0)
    # the outside beat 0 falls 0.17 s into the take; its tempo jumps 90 -> 140 at 6 s
    source = SteadyBeat(origin=engine.start_time + 0.17, before=90.0, after=140.0, jump=engine.start_time + 6.0)
    follow = TempoFollow(engine, source)
    errors = []
    while engine.t < 12.0:
        engine.t += follow.update()
        t = engine.t + TempoFollow.LEAD + CONTROL_DELAY
        outside, _ = source.beat_at(engine.start_time + t)
        error = follow.mirror.beat_at(t) - outside
        errors.append((t, abs(error - round(error / 4) * 4), follow.mirror.bpm_at(t)))
    before_jump = [(e, bpm) for t, e, bpm in errors if 5.0 < t < 6.0]
    assert max(e for e, _ in before_jump) < 0.01 and all(abs(bpm - 90) < 1 for _, bpm in before_jump)
    jump_beat = source.map.beat_at(6.0 - 0.17)
    settled = [(t, e, bpm) for t, e, bpm in errors if source.map.beat_at(t - 0.17) >= jump_beat + 2.0]
    assert settled and all(e < 0.02 and abs(bpm - 140.0) / 140.0 < 0.02 for _, e, bpm in settled)
