"""``livegen prepare``: music files parsed in worker processes into memory-mapped shards that give
training exactly the pieces, split, tokens and piano-roll windows of the in-memory path. The songs
are written by the test (tests/songs.py), so this runs on a fresh clone too."""
import json
import subprocess

import numpy as np
import pytest

from conftest import livegen_cmd
from livegen.errors import UserError
from livegen.train import shards
from livegen.train.data import TokenWindows, is_held_out, load_corpus, validation_windows
from livegen.train.pieces import MemoryPieces
from songs import write_song, write_songs

ABC = """X:1
T:Two tunes, one file
M:4/4
L:1/8
K:D
DEFG ABcd|edcB AGFE|D2F2 A2d2|
X:2
T:The second
M:3/4
L:1/8
K:G
GAB cde|dcB AGF|G6|
"""


def make_corpus(root):
    """Three songs laid out as POP909's (each in its folder, with beat annotations), two plain MIDI
    files, a two-tune ABC file and a broken MIDI file, in nested folders."""
    write_songs(root / "pop", 3, pop909=True)
    (root / "folk" / "abc").mkdir(parents=True)
    for seed, name in ((11, "reel1.mid"), (12, "reel2.mid")):
        write_song(root / "folk" / name, seed, beats=96)
    (root / "folk" / "abc" / "tunes.abc").write_text(ABC)
    (root / "folk" / "broken.mid").write_bytes(b"not a MIDI file at all")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("shards") / "s"
    lines = []
    summary = shards.prepare(str(root), str(out), workers=2, shard_files=3, log=lines.append, progress=False)
    return root, out, summary, lines


def test_broken_file_is_counted_with_its_reason_and_the_rest_is_prepared(prepared):
    root, out, summary, lines = prepared
    assert summary["files"] == 7 and summary["files_parsed"] == 7
    assert summary["skipped"] == {"OSError: unreadable .mid file": 1}
    assert summary["pieces"] == 3 + 2 + 2  # the ABC file holds two tunes
    assert len(summary["shards"]) == 3  # 3 files a shard
    assert any(line.startswith("skipped 1: 1 x OSError: unreadable .mid file") for line in lines)
    broken = [f for s in summary["shards"] for f in json.loads((out / f"{s}.json").read_text())["files"]
              if f["path"].endswith("broken.mid")]
    assert broken[0]["pieces"] == [] and "error" in broken[0]
    assert json.loads((out / "index.json").read_text())["pieces"] == summary["pieces"]


def test_shards_hold_the_in_memory_corpus_exactly(prepared):
    root, out, _, _ = prepared
    memory = MemoryPieces([load_corpus(root)])
    mapped = shards.ShardPieces(out)
    assert len(mapped) == len(memory) == 7
    for i in range(len(memory)):
        assert mapped.name(i) == memory.name(i)
        assert np.array_equal(mapped.notes(i), memory.notes(i))
        assert isinstance(mapped.notes(i), np.memmap)  # read from disk on use, not loaded
        assert bool(mapped.held_out[i]) == is_held_out(memory.name(i))
    pop = [i for i in range(len(memory)) if "/pop/" in memory.name(i)]
    assert len(pop) == 3
    for i in pop:  # the beat annotations travel with the notes
        beats, downbeats = mapped.beats(i)
        expected_beats, expected_downbeats = memory.beats(i)
        assert np.array_equal(beats, expected_beats) and np.array_equal(downbeats, expected_downbeats)
        assert len(beats) > 100


def test_training_windows_from_shards_are_the_in_memory_tokens(prepared):
    root, out, _, _ = prepared
    memory = MemoryPieces([load_corpus(root)])
    mapped = shards.ShardPieces(out)
    a, b = TokenWindows(memory, 128, seed=3), TokenWindows(mapped, 128, seed=3)
    assert a.order.total == b.order.total > 20
    toks_a, cond_a = a.batch(range(40))
    toks_b, cond_b = b.batch(range(40))
    assert np.array_equal(toks_a, toks_b) and np.array_equal(cond_a, cond_b)
    assert (toks_a[:, 0] >= 0).all() and toks_a.max() < 388
    val_a, val_b = validation_windows(memory, 64), validation_windows(mapped, 64)
    assert np.array_equal(val_a[0], val_b[0])


def test_dcrnn_windows_from_shards_are_slices_of_the_whole_piece_roll(prepared):
    from livegen.models.dcrnn import DCRNNConfig
    from livegen.music.events import Note
    from livegen.music.roll import to_roll
    from livegen.train.dcrnn import RollWindows

    _, out, _, _ = prepared
    mapped = shards.ShardPieces(out)
    c = DCRNNConfig()
    windows = RollWindows(mapped, c, seed=0)
    checked = 0
    for piece in range(len(mapped)):
        if windows.order.first[piece + 1] == windows.order.first[piece]:
            continue  # held out
        notes = [Note(*row) for row in mapped.notes(piece).tolist()]
        beats, downbeats = mapped.beats(piece)
        roll = to_roll(notes, beats, downbeats, c.low_pitch, c.pitches, c.steps_per_beat)
        starts = windows._starts(piece)
        for k in sorted({0, len(starts) // 2, len(starts) - 1}):
            w = windows.window(piece, k)
            s = int(starts[k])
            assert np.array_equal(w[0], roll.sounding[s:s + windows.steps])
            assert np.array_equal(w[1], roll.onset[s:s + windows.steps])
            checked += 1
    assert checked >= 12


def test_preparing_again_is_incremental_and_resumes_an_unfinished_run(prepared, tmp_path):
    root, out, first, _ = prepared
    again = shards.prepare(str(root), str(out), workers=1, shard_files=3, log=lambda _: None, progress=False)
    assert again["files_parsed"] == 0 and again["files_already_prepared"] == 7
    assert again["shards"] == first["shards"]
    index = np.load(out / "index.npy")

    # a run killed mid-shard leaves arrays without a manifest: that shard is parsed again, the rest kept
    last = first["shards"][-1]
    files_in_last = len(json.loads((out / f"{last}.json").read_text())["files"])
    (out / f"{last}.json").unlink()
    resumed = shards.prepare(str(root), str(out), workers=1, shard_files=3, log=lambda _: None, progress=False)
    assert resumed["files_parsed"] == files_in_last
    assert np.array_equal(np.load(out / "index.npy")[["note_count", "held_out"]], index[["note_count", "held_out"]])

    # a new file is parsed on its own; the existing shards stay
    write_song(root / "pop" / "004.mid", 4)
    try:
        grown = shards.prepare(str(root), str(out), workers=1, shard_files=3, log=lambda _: None, progress=False)
    finally:
        (root / "pop" / "004.mid").unlink()
    assert grown["files_parsed"] == 1 and grown["pieces"] == first["pieces"] + 1


def test_bad_prepare_arguments_are_one_line_errors(tmp_path):
    def run(*args):
        return subprocess.run(livegen_cmd("prepare", *args), capture_output=True, text=True, timeout=60)

    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "README.md").write_text("# not music")
    for args, fragment in ((("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "s")), "does not exist"),
                           (("--data", str(tmp_path / "README.md"), "--out", str(tmp_path / "s")),
                            "README.md is not a music file"),
                           (("--data", str(empty), "--out", str(tmp_path / "s")), "no .mid"),
                           (("--data", str(empty), "--out", str(tmp_path / "s"), "--workers", "0"), "--workers")):
        result = run(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("livegen: error")]
        assert len(errors) == 1 and fragment in errors[0], result.stderr
    (tmp_path / "x.mid").write_bytes(b"junk")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds other files"):
        shards.prepare(str(tmp_path / "x.mid"), str(tmp_path / "other"), progress=False)
    with pytest.raises(UserError, match="inside the data folder"):
        shards.prepare(str(tmp_path), str(tmp_path / "shards"), progress=False)


def test_a_damaged_prepared_folder_is_a_clear_error(prepared, tmp_path):
    _, out, _, _ = prepared
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "index.json").write_text(json.dumps({"format": shards.FORMAT}))
    with pytest.raises(UserError, match="not a complete prepared corpus"):
        shards.ShardPieces(damaged)


def test_a_music_file_holding_no_tune_is_counted_as_skipped(tmp_path):
    from livegen.train.shards import _parse

    empty = tmp_path / "header-only.abc"
    empty.write_text("X:1\nT:nothing yet\nK:C\n")
    pieces, skipped, error = _parse(empty)
    assert pieces == [] and error is None and skipped == {"no tune in the .abc file": 1}
