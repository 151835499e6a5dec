"""Beat time: a Char-RNN whose TIME_SHIFT steps are 1/12 beat of the piece's beat grid hears one
rhythm at any tempo, and plays it back at the take's tempo."""
import subprocess

import mido
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import livegen_cmd
from livegen.engine.charrnn_live import CharRNNGenerator, Steering, Structure
from livegen.models.charrnn import CharRNNConfig
from livegen.models.nets.charrnn import CharRNN
from livegen.music import events
from livegen.music.conditioning import Controls
from livegen.music.corpus import beat_grid, read_midi
from livegen.music.events import Note
from livegen.music.phrase import phrase_tokens
from livegen.music.tempo import TempoMap
from livegen.train.data import window_tokens
from songs import write_songs


def sixteenths(bpm: float, pattern=(0, 1, 2, 4, 6, 7, 10, 12, 14, 15, 18, 20)) -> tuple[list[Note], np.ndarray]:
    """A little melody on 16ths at ``bpm``, slightly off the grid as a player is, and its beat times."""
    beat = 60.0 / bpm
    rng = np.random.default_rng(3)
    notes = []
    for i, k in enumerate(pattern):
        start = k * beat / 4 + rng.uniform(-0.008, 0.008) * beat
        notes.append(Note(max(start, 0.0), start + beat / 4 * 0.9, 60 + (i * 5) % 12, 80))
    return notes, np.arange(0, 16) * beat


@settings(max_examples=25, deadline=None)
@given(st.floats(60, 180), st.floats(60, 180))
def test_one_rhythm_is_written_the_same_at_any_tempo(bpm_a, bpm_b):
    a = window_tokens(*sixteenths(bpm_a)[:1], 0, 200, None, None, beats=sixteenths(bpm_a)[1])[0]
    b = window_tokens(*sixteenths(bpm_b)[:1], 0, 200, None, None, beats=sixteenths(bpm_b)[1])[0]
    assert list(a) == list(b)
    shifts = [events.decode(int(t))[1] for t in a if events.decode(int(t))[0] == "TIME_SHIFT"]
    assert set(shifts) <= {1, 2, 3, 6}  # 16ths are 3 steps; a note ends 1/10 of a 16th early
    in_seconds = window_tokens(sixteenths(bpm_a)[0], 0, 200, None, None)[0]
    assert sorted(set(shifts)) != sorted({events.decode(int(t))[1] for t in in_seconds
                                         if events.decode(int(t))[0] == "TIME_SHIFT"})


def test_beat_time_follows_the_beats_and_goes_on_past_them():
    beats = np.array([0.0, 0.6, 1.2, 1.5, 1.8])  # 100 bpm, then 200
    moved = events.to_beat_time([Note(0.3, 1.35, 60, 80), Note(2.1, 2.4, 62, 80)], beats)
    assert moved[0] == pytest.approx(Note(0.25, 1.25, 60, 80))
    assert moved[1].start == pytest.approx(2.5) and moved[1].end == pytest.approx(3.0)


def test_the_beat_grid_of_a_midi_file_follows_its_tempo_changes(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60)))
    for beat in range(8):
        if beat == 4:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120)))
        track.append(mido.Message("note_on", note=60 + beat, velocity=80))
        track.append(mido.Message("note_off", note=60 + beat, time=240))
        track.append(mido.Message("note_on", note=60, velocity=0, time=240))
    mid.tracks.append(track)
    path = tmp_path / "two-tempos.mid"
    mid.save(path)
    beats, downbeats = beat_grid(str(path), read_midi(path))
    assert beats[:7] == pytest.approx([0, 1, 2, 3, 4, 4.5, 5])
    assert list(downbeats[:2]) == [0, 4]
    starts = [n.start for n in events.to_beat_time(read_midi(path), beats)]
    assert starts == pytest.approx([0.5 * b for b in range(8)])  # every note on its beat, in beat time


def test_a_players_phrase_primes_a_beat_model_in_its_own_steps():
    notes, _ = sixteenths(90.0)
    tempo = TempoMap(90.0)
    steps = [events.decode(t)[1] for t in phrase_tokens(notes, 100, tempo) if events.decode(t)[0] == "TIME_SHIFT"]
    assert 3 in steps and max(steps) <= 6
    clock = [events.decode(t)[1] for t in phrase_tokens(notes, 100) if events.decode(t)[0] == "TIME_SHIFT"]
    assert max(clock) > 6  # in 10 ms steps a 16th at 90 bpm is about 17


@pytest.fixture(scope="module")
def beat_model():
    torch.manual_seed(0)
    return CharRNN(CharRNNConfig(embed_dim=16, hidden=32, time_unit="beats")).eval().live()


def until(gen: CharRNNGenerator, seconds: float) -> list:
    """The messages of generating up to ``seconds``."""
    out = []
    while gen.time < seconds:
        out += gen.step()
    return out


def plain(model, bpm: float) -> CharRNNGenerator:
    """Only the model's own tokens: no steering, no grid, no rule in seconds."""
    structure = Structure(timing="free", min_note=0.0, restrike_gap=0.0, hold_soft=1e9, hold_limit=1e9, recall=0.0)
    return CharRNNGenerator(model, Controls(), seed=2, steering=Steering(enabled=False), bpm=bpm,
                            structure=structure, max_note_seconds=1e9, max_polyphony=128)


def test_a_beat_model_plays_its_notes_at_the_takes_tempo(beat_model):
    a, b = until(plain(beat_model, 60.0), 60.0), until(plain(beat_model, 120.0), 30.0)
    assert len(a) > 20 and [m for _, _, m in a] == [m for _, _, m in b]
    assert [t for t, _, _ in a] == pytest.approx([2 * t for t, _, _ in b])


def test_a_clock_time_model_ignores_the_tempo():
    torch.manual_seed(0)
    model = CharRNN(CharRNNConfig(embed_dim=16, hidden=32)).eval().live()
    a = [m for _ in range(200) for m in plain(model, 60.0).step()]
    b = [m for _ in range(200) for m in plain(model, 120.0).step()]
    assert a == b


def test_a_beat_model_trains_from_a_clock_time_one_evaluates_and_will_not_resume_in_seconds(tmp_path):
    from livegen.errors import UserError
    from livegen.models import checkpoint
    from livegen.train.charrnn import evaluate, train

    data = write_songs(tmp_path / "data", 3)
    first, beats = tmp_path / "seconds.safetensors", tmp_path / "beats.safetensors"
    torch.manual_seed(1)
    checkpoint.save(first, CharRNN(CharRNNConfig()))
    run = subprocess.run(livegen_cmd("train", "charrnn", "--out", str(beats), "--time", "beats", "--init", str(first),
                                     "--data", str(data), "--steps", "1", "--batch", "4", "--seq-len", "64"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "time unit seconds -> beats" in run.stderr
    assert checkpoint.read_metadata(beats)["config"]["time_unit"] == "beats"
    start, _ = checkpoint.load(first)
    trained, _ = checkpoint.load(beats)
    assert any(not torch.equal(p, q) for p, q in zip(start.state_dict().values(), trained.state_dict().values()))
    result = evaluate(str(beats), str(data), threads=1)
    assert result["time_unit"] == "beats" and 0 < result["nll_nats_per_event"] < 7
    assert 0 < result["notes"] < result["events"] and result["nll_nats_per_note"] > result["nll_nats_per_event"]
    with pytest.raises(UserError, match="counts time in beats, not seconds"):
        train(str(data), str(beats), minutes=1, max_steps=1, batch=4, seq_len=64, progress=False, log=lambda _: None,
              config_overrides={"time_unit": "seconds"})


@pytest.mark.parametrize("unit", sorted(events.TIME_UNITS))
def test_each_tokens_time_is_the_time_of_its_event_in_either_unit(unit):
    step = events.TIME_UNITS[unit]
    notes = [Note(0.0, 10 * step, 60, 80), Note(25 * step, 31 * step, 64, 80), Note(25 * step, 40 * step, 67, 80)]
    tokens, times = events.notes_to_tokens(notes, step)
    at = {events.decode(int(t)): s for t, s in zip(tokens, times) if events.decode(int(t))[0] != "TIME_SHIFT"}
    assert at[("NOTE_ON", 64)] == pytest.approx(25 * step) and at[("NOTE_OFF", 67)] == pytest.approx(40 * step)
    back = events.tokens_to_notes(tokens, step)
    assert [n.pitch for n in back] == [60, 64, 67]
    assert [t for n in back for t in (n.start, n.end)] == pytest.approx([t for n in notes for t in (n.start, n.end)])


def test_a_beat_model_hears_a_tempo_change_in_free_timing_and_rolls_back_to_it(beat_model):
    planned = plain(beat_model, 120.0)
    planned.timeline.set(2.0, Controls(bpm=60.0))
    expected = until(planned, 8.0)
    live = plain(beat_model, 120.0)
    assert live.hears(Controls(), Controls(bpm=60.0))  # the engine rolls back for it
    torch.manual_seed(0)
    clock_time = CharRNN(CharRNNConfig(embed_dim=16, hidden=32)).eval().live()
    assert not plain(clock_time, 120.0).hears(Controls(), Controls(bpm=60.0))
    ahead = until(live, 4.0)
    live.timeline.set(2.0, Controls(bpm=60.0))
    first = live.rollback(2.0)
    assert first is not None
    assert [m for m in ahead if m[1] < first] + until(live, 8.0) == expected
    steady = plain(beat_model, 120.0)
    until(steady, 8.0)
    assert planned.current.drawn < 0.8 * steady.current.drawn  # at half the tempo, fewer tokens fill 8 s


class AlwaysRests:
    """A beat-time model that only ever asks for its longest rest (100 steps, 8 1/3 beats)."""

    kind = name = "charrnn"
    config = CharRNNConfig(embed_dim=16, hidden=32, time_unit="beats")

    def initial_state(self, cond):
        return np.zeros(1), np.zeros(1)

    def condition(self, cond):
        return 0.0, 0.0

    def step(self, token, conditioned, state):
        logits = np.full(events.VOCAB_SIZE, -1e9)
        logits[events.encode("TIME_SHIFT", events.MAX_SHIFT_STEPS)] = 0.0
        return logits, state


def rest(gen: CharRNNGenerator) -> None:
    """Step until the rest the next token begins is over."""
    gen.step()
    while gen.current.rest is not None:
        gen.step()


def test_a_beat_models_one_rest_lasts_at_most_two_beats():
    gen = plain(AlwaysRests(), 120.0)
    rest(gen)
    assert gen.time == pytest.approx(1.0)  # 2 beats at 120 bpm, not 8 1/3 (4.2 s; 16.7 s stretched 4x)


@pytest.mark.parametrize("arrives_late", [False, True])
def test_what_is_left_of_a_rest_lasts_as_long_as_a_tempo_change_made_in_it_says(arrives_late):
    gen = plain(AlwaysRests(), 120.0)
    if arrives_late:  # the whole rest was made at 120 bpm before the change arrived
        rest(gen)
        gen.timeline.set(0.45, Controls(bpm=60.0))
        assert gen.rollback(0.45) is not None and gen.current.rest is not None and 0.45 <= gen.time < 0.55
    else:
        gen.timeline.set(0.45, Controls(bpm=60.0))
    rest(gen)
    assert gen.time == pytest.approx(1.5)  # its steps to 0.5 s at 120 bpm (one beat), the other beat at 60
