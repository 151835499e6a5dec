"""Musical structure: the bench's figures, and the pulse, key, motifs and clean notes the engine
gives the Char-RNN and the DCRNN (rendered takes, offline, as a live take plays them)."""
import json
import subprocess
import sys

import mido
import numpy as np
import pytest

from conftest import ROOT, livegen_cmd, shared_data
from livegen.bench.music import midi_notes, music_stats, render
from livegen.engine.charrnn_live import CharRNNGenerator, Structure
from livegen.engine.dcrnn_live import DCRNNGenerator
from livegen.models import checkpoint
from livegen.music.conditioning import Controls, key_histogram

MUSICSTATS = ROOT.parent / "shared" / "acceptance" / "lib" / "musicstats.py"


@pytest.fixture(scope="module")
def charrnn():
    return checkpoint.load_model("charrnn")


@pytest.fixture(scope="module")
def dcrnn():
    return checkpoint.load_model("dcrnn")


def write_midi(path, notes, bpm=120):
    """(start s, end s, pitch) -> a one-track MIDI file at ``bpm`` (480 ticks per beat)."""
    events = sorted([(s, 1, p) for s, e, p in notes] + [(e, 0, p) for s, e, p in notes])
    track, now = mido.MidiTrack(), 0
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    for t, on, p in events:
        tick = round(t * bpm / 60 * 480)
        track.append(mido.Message("note_on" if on else "note_off", note=p, velocity=80 if on else 0, time=tick - now))
        now = tick
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(path)


# an 8-note C-major figure on the 16ths of 120 bpm, played twice; then a stutter (E struck at its
# own note-off), a held note of 5 s and a grace note of 0.05 s a 32nd off the grid, F# (out of the scale)
FIGURE = [60, 62, 64, 65, 67, 69, 71, 72]
HAND_MADE = ([(i * 0.125, i * 0.125 + 0.11, p) for i, p in enumerate(FIGURE * 2)]
             + [(2.0, 2.5, 64), (2.5, 3.0, 64), (3.0, 8.0, 48), (3.0625, 3.1125, 66)])


def test_the_figures_of_a_hand_made_take(tmp_path):
    path = tmp_path / "made.mid"
    write_midi(path, HAND_MADE)
    notes = midi_notes(path)
    assert len(notes) == 20
    r = music_stats(notes)
    assert r["in_scale"] == pytest.approx(19 / 20)  # all but the F#
    assert r["stutter"] == pytest.approx(1 / 20)  # the second E
    assert r["long"] == pytest.approx(1 / 20) and r["short"] == pytest.approx(1 / 20)
    assert r["rec8"] == pytest.approx(2 / 13, abs=1e-3)  # of 13 8-note patterns, the figure, twice (3 decimals)
    assert r["grid_kappa"] == 1.0  # a grid a little off 120 bpm takes in the grace note too
    assert r["spread"] == pytest.approx(float(np.std([n[2] for n in notes])), abs=0.01)


def test_onsets_at_random_times_sit_on_no_grid():
    rng = np.random.default_rng(0)
    starts = np.sort(rng.uniform(0, 60, 300))
    r = music_stats([(t, t + 0.3, 60) for t in starts])
    assert r["grid_kappa"] < 0.3  # chance-corrected: about 0


@pytest.mark.skipif(not MUSICSTATS.is_file(), reason="the maintainers' musicstats.py is not beside this checkout")
def test_the_figures_agree_with_the_maintainers_on_real_and_made_files(tmp_path):
    made = tmp_path / "made.mid"
    write_midi(made, HAND_MADE)
    files = [made] + [shared_data("music", "pop909", song, f"{song}.mid") for song in ("001", "805")]
    for path in files:
        theirs = json.loads(subprocess.run([sys.executable, str(MUSICSTATS), str(path), "0", "60"],
                                           capture_output=True, text=True, check=True).stdout)
        notes = [n for n in midi_notes(path) if n[0] < 60]
        ours = music_stats(notes)
        assert {k: ours[k] for k in theirs} == pytest.approx(theirs, abs=1e-3), path


def test_grid_timing_puts_every_onset_on_the_beats_16ths_and_free_timing_does_not(charrnn):
    for bpm in (120.0, 93.0):
        gen = CharRNNGenerator(charrnn, Controls(density=0.7), seed=3, bpm=bpm)
        onsets = np.array([n[0] for n in render(gen, 12.0)])
        late = onsets - np.floor(onsets * bpm / 60 * 4 + 1e-6) * 60 / bpm / 4
        assert len(onsets) > 40 and np.all(late <= 0.01 + 1e-9) and np.mean(late < 1e-6) > 0.8
    free = CharRNNGenerator(charrnn, Controls(density=0.7), seed=3, structure=Structure(timing="free"))
    onsets = np.array([n[0] for n in render(free, 12.0)]) * 8
    assert np.mean(np.abs(onsets - np.round(onsets)) > 0.05) > 0.3


def test_a_one_minute_char_rnn_take_keeps_a_key_a_pulse_ideas_and_clean_notes(charrnn):
    r = music_stats(render(CharRNNGenerator(charrnn, Controls(), seed=1), 60.0))
    assert r["notes"] > 150
    assert r["in_scale"] >= 0.95 and r["grid_kappa"] >= 0.85 and 0.05 <= r["rec8"] <= 0.25
    assert r["stutter"] <= 0.03 and r["long"] <= 0.005 and r["short"] <= 0.04 and r["spread"] >= 8


def test_the_register_moves_the_music_without_squeezing_it(charrnn):
    low, high = (render(CharRNNGenerator(charrnn, Controls(pitch=p), seed=2), 30.0) for p in (0.1, 0.9))
    assert np.mean([n[2] for n in high]) - np.mean([n[2] for n in low]) > 20
    assert music_stats(low)["spread"] >= 8 and music_stats(high)["spread"] >= 8


def test_the_key_the_performer_gives_stays_after_they_let_go(charrnn):
    gen = CharRNNGenerator(charrnn, Controls(histogram=tuple(key_histogram("F# major"))), seed=4)
    gen.timeline.set(5.0, Controls())
    notes = [n for n in render(gen, 30.0) if n[0] >= 5.0]
    scale = {(6 + step) % 12 for step in (0, 2, 4, 5, 7, 9, 11)}
    assert np.mean([n[2] % 12 in scale for n in notes]) >= 0.95


def test_a_rollback_through_latched_keys_and_recalled_phrases_plays_what_knowing_the_change_would(charrnn):
    def messages(gen, until):
        out = []
        while gen.time < until:
            out += gen.step()
        return out

    change = Controls(pitch=0.7, density=0.6)
    planned = CharRNNGenerator(charrnn, Controls(), seed=1)
    planned.timeline.set(21.0, change)
    expected = messages(planned, 30.0)
    live = CharRNNGenerator(charrnn, Controls(), seed=1)
    ahead = messages(live, 22.0)
    assert live.current.key is not None and live.current.motif.bank  # a key latched, phrases remembered
    live.timeline.set(21.0, change)
    first = live.rollback(21.0)
    assert [m for m in ahead if m[1] < first] + messages(live, 30.0) == expected


def test_the_dcrnn_at_a_fixed_z_varies_its_segments_and_releases_a_key_before_striking_it_again(dcrnn):
    r = music_stats(render(DCRNNGenerator(dcrnn, Controls(), seed=1), 40.0))
    assert r["notes"] > 200 and r["rec8"] <= 0.5 and r["stutter"] <= 0.04 and r["grid_kappa"] >= 0.95


def test_bench_music_prints_the_table_and_json(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    write_midi(real / "made.mid", HAND_MADE)
    run = subprocess.run(livegen_cmd("bench", "--parts", "music", "--seconds", "8", "--seeds", "1",
                                     "--real-data", str(real), "--json"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout)["music"]
    assert r["real"]["takes"] == 1 and r["real"]["in_scale"] == pytest.approx(0.95)
    for part in ("charrnn", "charrnn_keyed", "dcrnn_fixed_z", "dcrnn_z_moving"):
        assert {"in_scale", "grid_kappa", "rec8", "stutter", "long", "short", "spread"} <= set(r[part])
    assert set(r["charrnn_spread_by_register"]) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
    text = subprocess.run(livegen_cmd("bench", "--parts", "music", "--seconds", "4", "--seeds", "1",
                                      "--real-data", str(real)), capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "16th-grid kappa" in text.stdout and "real" in text.stdout
