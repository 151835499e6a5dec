"""Generation with rollback: reproducible, rollback equals knowing the change in advance, steering works."""
import numpy as np
import pytest
import torch

from livegen.engine.charrnn_live import CharRNNGenerator, TokenSampler
from livegen.engine.engine import EngineSettings, make_generator
from livegen.engine.live_generator import ControlTimeline
from livegen.models.charrnn import CharRNNConfig
from livegen.models.nets.charrnn import CharRNN
from livegen.music import events
from livegen.music.conditioning import Controls, control_pitch_to_midi
from livegen.sessions import VERSION, played_with


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CharRNN(CharRNNConfig(embed_dim=16, hidden=32)).eval().live()


@pytest.fixture(scope="module")
def trained():
    from livegen.models import checkpoint

    return checkpoint.load_model("charrnn")


def run(gen, until):
    out = []
    while gen.time < until:
        out += gen.step()
    return out


def test_same_seed_same_notes_other_seed_other_notes(trained):
    a = run(CharRNNGenerator(trained, Controls(), seed=4), 5.0)
    b = run(CharRNNGenerator(trained, Controls(), seed=4), 5.0)
    c = run(CharRNNGenerator(trained, Controls(), seed=5), 5.0)
    assert a == b and a != c and len(a) > 10


def test_rollback_equals_knowing_the_change_in_advance(model):
    change = Controls(pitch=0.9, density=0.8)
    planned = CharRNNGenerator(model, Controls(), seed=1)
    planned.timeline.set(2.0, change)
    expected = run(planned, 6.0)

    live = CharRNNGenerator(model, Controls(), seed=1)
    ahead = run(live, 3.0)  # generated past the change before it arrived
    live.timeline.set(2.0, change)
    first = live.rollback(2.0)
    assert first is not None
    kept = [m for m in ahead if m[1] < first]
    assert all(t < 2.0 + 1e-9 for t, _, _ in kept)
    assert kept + run(live, 6.0) == expected


def test_rollback_before_generation_reaches_the_time_is_a_no_op(model):
    gen = CharRNNGenerator(model, Controls(), seed=1)
    run(gen, 1.0)
    assert gen.rollback(5.0) is None


def test_forget_before_bounds_the_saved_states(model):
    gen = CharRNNGenerator(model, Controls(), seed=1)
    run(gen, 10.0)
    gen.forget_before(9.0)
    assert gen.history and all(h.time >= 9.0 for h in gen.history)
    oldest = gen.history[0]
    assert gen.rollback(8.0) == oldest.index  # the first state kept at or after 8 s


def test_steering_follows_pitch_and_density(trained):
    def stats(controls):
        msgs = [m for m in run(CharRNNGenerator(trained, controls, seed=2), 12.0)
                if m[2][0] & 0xF0 == 0x90 and m[2][2]]
        return np.mean([m[2][1] for m in msgs]), len(msgs) / 12.0

    low, high = stats(Controls(pitch=0.1)), stats(Controls(pitch=0.9))
    assert high[0] - low[0] > 25
    sparse, dense = stats(Controls(density=0.1)), stats(Controls(density=0.9))
    assert dense[1] > 4 * sparse[1]


def test_every_note_on_is_balanced_by_release(trained):
    gen = CharRNNGenerator(trained, Controls(density=1.0), seed=3, max_polyphony=4)
    msgs = run(gen, 8.0) + gen.release()
    sounding = set()
    for _, _, (status, pitch, velocity) in msgs:
        if status & 0xF0 == 0x90 and velocity:
            sounding.add(pitch)
            assert len(sounding) <= 4
        else:
            sounding.discard(pitch)
    assert not sounding


def test_sampler_is_reproducible_and_follows_the_distribution():
    s = TokenSampler(seed=9)
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    draws = [s.sample(logits, i) for i in range(5000)]
    assert draws == [TokenSampler(seed=9).sample(logits, i) for i in range(5000)]
    assert np.bincount(draws, minlength=3) / 5000 == pytest.approx([0.7, 0.2, 0.1], abs=0.03)


def test_timeline_holds_values_and_a_new_change_overrides_later_ones():
    tl = ControlTimeline(Controls(pitch=0.1))
    tl.set(1.0, Controls(pitch=0.2))
    tl.set(3.0, Controls(pitch=0.3))
    assert [tl.at(t).pitch for t in (0.5, 1.0, 2.9, 3.5)] == [0.1, 0.2, 0.2, 0.3]
    tl.set(2.0, Controls(pitch=0.4))
    assert tl.at(3.5).pitch == 0.4


def test_pitch_steering_moves_probability_between_pitches_but_keeps_its_total():
    from livegen.engine.charrnn_live import NOTE_ON, Steering, steer_pitch

    rng = np.random.default_rng(0)
    logits = rng.normal(size=388)
    steered = steer_pitch(logits, Steering().register_bias(control_pitch_to_midi(0.95)))

    def note_on_mass(x):
        p = np.exp(x - x.max())
        return p[NOTE_ON].sum() / p.sum()

    def mean_pitch(x):
        p = np.exp(x[NOTE_ON] - x[NOTE_ON].max())
        return float(np.arange(128) @ p / p.sum())

    assert note_on_mass(steered) == pytest.approx(note_on_mass(logits))
    assert mean_pitch(steered) > 80 > mean_pitch(logits) + 10  # the register moves to the hand's height
    assert np.array_equal(np.delete(steered, NOTE_ON), np.delete(logits, NOTE_ON))


def test_a_temperature_change_rolled_back_to_equals_knowing_it_in_advance(trained):
    hotter = Controls(temperature=1.8)
    planned = CharRNNGenerator(trained, Controls(), seed=6)
    planned.timeline.set(2.0, hotter)
    expected = run(planned, 6.0)
    live = CharRNNGenerator(trained, Controls(), seed=6)
    ahead = run(live, 3.0)
    live.timeline.set(2.0, hotter)
    first = live.rollback(2.0)  # the engine rolls back for a temperature: the generator hears it
    assert first is not None and live.hears(Controls(), hotter)
    assert [m for m in ahead if m[1] < first] + run(live, 6.0) == expected
    assert expected != run(CharRNNGenerator(trained, Controls(), seed=6), 6.0)  # the change was heard


def _entropy(tokens) -> float:
    p = np.bincount(tokens) / len(tokens)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_a_hotter_temperature_plays_more_distinct_pitches_and_tokens(trained):
    def take(temperature, seed):
        gen = CharRNNGenerator(trained, Controls(temperature=temperature), seed=seed)
        notes = [m[2][1] for m in run(gen, 20.0) if m[2][0] & 0xF0 == 0x90]
        tokens = [h.prev_token for h in gen.history][1:]
        return len(set(notes)), _entropy(tokens)

    for seed in (1, 2, 3):
        cool_pitches, cool_entropy = take(0.3, seed)
        hot_pitches, hot_entropy = take(1.8, seed)
        assert hot_pitches > cool_pitches and hot_entropy > cool_entropy + 0.5


def test_the_controls_temperature_overrides_the_generators_own(trained):
    own = run(CharRNNGenerator(trained, Controls(), seed=4, temperature=1.5), 5.0)
    assert run(CharRNNGenerator(trained, Controls(temperature=1.5), seed=4, temperature=0.6), 5.0) == own
    assert run(CharRNNGenerator(trained, Controls(temperature=None), seed=4, temperature=1.5), 5.0) == own


class ChordsThenRests:
    """A clock-time model that plays a chord of eight notes, then its longest rest (1 s), again and
    again: eight notes a second, so a sparse density stretches each rest to 4 s."""

    kind = name = "charrnn"
    config = CharRNNConfig(embed_dim=16, hidden=32)
    cycle = [events.encode("NOTE_ON", 60 + i) for i in range(8)] + [events.encode("TIME_SHIFT", 100)]

    def initial_state(self, cond):
        return 0

    def condition(self, cond):
        return None

    def step(self, token, conditioned, count):
        logits = np.full(events.VOCAB_SIZE, -1e9)
        logits[self.cycle[count % len(self.cycle)]] = 0.0
        return logits, count + 1


def onsets(messages) -> list[float]:
    return [t for t, _, m in messages if m[0] & 0xF0 == 0x90 and m[2]]


def resting(version: int = VERSION) -> tuple[CharRNNGenerator, float]:
    """A generator as a take of session ``version`` plays, a step into a rest stretched as far as
    it goes for a sparse density, and when that rest began."""
    settings = EngineSettings(**played_with({"version": version}))
    gen = make_generator(ChordsThenRests(), Controls(density=0.05), settings)
    while True:
        before = gen.current
        gen.step()
        if before.rest is None and gen.current.prev_token == ChordsThenRests.cycle[-1] \
                and gen.current.decoder.time_scale == gen.steering.max_scale:
            return gen, before.time


@pytest.mark.parametrize("arrives_late", [False, True])
def test_a_rest_begun_sparse_gives_way_at_once_when_the_hand_asks_for_more(arrives_late):
    gen, began = resting()
    change = began + 0.5
    if arrives_late:  # generated through the whole rest before the change arrived
        ahead = run(gen, began + 5.0)
        gen.timeline.set(change, Controls(density=0.95))
        first = gen.rollback(change)
        assert first is not None and all(t <= change for t in onsets(m for m in ahead if m[1] < first))
    else:
        gen.timeline.set(change, Controls(density=0.95))
    after = [t for t in onsets(run(gen, began + 5.0)) if t > change]
    assert after and after[0] < change + 0.5  # not the 3.5 s the rest had left at the sparse stretch


def test_a_rest_rolled_back_into_plays_what_knowing_the_change_would():
    planned, began = resting()
    planned.timeline.set(began + 0.5, Controls(density=0.95))
    planned.timeline.set(began + 0.9, Controls(density=0.3))
    expected = run(planned, began + 8.0)
    live, _ = resting()
    ahead = run(live, began + 3.0)
    live.timeline.set(began + 0.5, Controls(density=0.95))
    first = live.rollback(began + 0.5)
    ahead = [m for m in ahead if m[1] < first] + run(live, began + 3.0)
    live.timeline.set(began + 0.9, Controls(density=0.3))
    second = live.rollback(began + 0.9)
    assert [m for m in ahead if m[1] < second] + run(live, began + 8.0) == expected
    assert len(expected) > 30


def test_a_take_recorded_before_rests_were_retimed_holds_its_rest_as_it_was_played():
    gen, began = resting(version=2)
    gen.timeline.set(began + 0.5, Controls(density=0.95))
    assert [t for t in onsets(run(gen, began + 5.0)) if t > began][0] == pytest.approx(began + 4.0, abs=0.13)
