"""The control mixer: a change a script hands over ahead of its time governs from its time, and a
change made now by another source neither carries it early nor erases it."""
from hypothesis import given, settings
from hypothesis import strategies as st

from livegen.engine.live_generator import ControlTimeline
from livegen.engine.mixer import ControlMixer
from livegen.music.conditioning import Controls


class Engine:
    """What the engine does with what the mixer sends: its timeline (a change overrides later ones)."""

    def __init__(self, clock, initial: Controls):
        self.clock, self.timeline = clock, ControlTimeline(initial)

    def set_controls(self, controls: Controls, t: float | None) -> None:
        self.timeline.set(self.clock[0] if t is None else t, controls)


def test_a_hand_moving_now_neither_carries_a_scripts_future_change_nor_erases_it():
    clock = [0.0]
    start = Controls(pitch=0.5, density=0.5)
    mixer, engine = ControlMixer(start, lambda: clock[0]), Engine(clock, start)
    mixer.change(engine.set_controls, 1.0, z=(1.0,) * 8)  # the script, a second ahead
    clock[0] = 0.5
    mixer.change(engine.set_controls, None, pitch=0.9)  # the hand, now
    assert mixer.current() == Controls(pitch=0.9, density=0.5)
    assert engine.timeline.at(0.6) == Controls(pitch=0.9, density=0.5)
    assert engine.timeline.at(1.0) == Controls(pitch=0.9, density=0.5, z=(1.0,) * 8)
    clock[0] = 1.1
    assert mixer.current().z == (1.0,) * 8


changes = st.lists(st.tuples(st.floats(0.0, 0.3), st.one_of(st.none(), st.floats(0.01, 1.5)),
                             st.sampled_from(["pitch", "density"]), st.floats(0.0, 1.0)), max_size=30)


@given(changes)
@settings(max_examples=300, deadline=None)
def test_the_engine_hears_every_change_from_its_own_time_in_order(ops):
    clock = [0.0]
    start = Controls()
    mixer, engine = ControlMixer(start, lambda: clock[0]), Engine(clock, start)
    made = []  # (time it governs from, order, field, value)
    for order, (advance, ahead, field, value) in enumerate(ops):
        clock[0] += advance
        t = None if ahead is None else clock[0] + ahead
        mixer.change(engine.set_controls, t, **{field: value})
        made.append((clock[0] if t is None else t, order, field, value))
    for probe in sorted({m[0] for m in made} | {0.0}):
        expected = start
        for t, _, field, value in sorted(made):
            if t <= probe:
                expected = Controls(**{**expected.__dict__, field: value})
        assert engine.timeline.at(probe) == expected
