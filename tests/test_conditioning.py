"""Conditioning from the music's future, and live controls mapped onto the same vector."""
import numpy as np
import pytest

from livegen.music import conditioning as C
from livegen.music.conditioning import Controls


def test_future_conditions_on_hand_made_notes():
    # 8 notes/s of C-major triad tones at pitch 60..67, for 10 s
    onsets = np.arange(0, 10, 0.125)
    pitches = np.array([[60, 64, 67][i % 3] for i in range(len(onsets))])
    cond = C.future_conditions(np.array([0.0, 9.99]), onsets, pitches)
    first = cond[0]
    assert first[C.DENSITY].argmax() == C.density_bin(8.0) == 4
    hist = first[C.HISTOGRAM]
    assert hist.sum() == pytest.approx(1.0) and set(np.flatnonzero(hist)) == {0, 4, 7}
    assert first[C.REGISTER].argmax() == C.register_bin(np.mean([60, 64, 67]))
    assert first[C.OFF_FLAG] == 0
    last = cond[1]  # nothing after it: density bin 0, no histogram, no register
    assert last[C.DENSITY].argmax() == 0 and last[C.HISTOGRAM].sum() == 0 and last[C.REGISTER].sum() == 0


def test_density_bins_follow_performance_rnn_edges():
    assert [C.density_bin(r) for r in (0.5, 1, 3, 7, 15, 31, 63, 100)] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_controls_map_monotonically_onto_register_and_density():
    regs = [Controls(pitch=p).vector()[C.REGISTER].argmax() for p in np.linspace(0, 1, 11)]
    dens = [Controls(density=d).vector()[C.DENSITY].argmax() for d in np.linspace(0, 1, 11)]
    assert regs == sorted(regs) and regs[0] < regs[-1]
    assert dens == sorted(dens) and dens[0] < dens[-1]


def test_conditioning_off_sets_only_the_flag():
    v = Controls(conditioning=False).vector()
    assert v[C.OFF_FLAG] == 1 and v.sum() == 1


@pytest.mark.parametrize("key,classes", [("C major", {0, 2, 4, 5, 7, 9, 11}), ("A minor", {9, 11, 0, 2, 4, 5, 7}),
                                         ("F# minor", {6, 8, 9, 11, 1, 2, 4}), ("Bb", {10, 0, 2, 3, 5, 7, 9})])
def test_key_histogram(key, classes):
    h = C.key_histogram(key)
    assert set(np.flatnonzero(h)) == classes and sum(h) == pytest.approx(1)


def test_bad_key_is_refused():
    with pytest.raises(ValueError, match="not like"):
        C.key_histogram("H dorian")
