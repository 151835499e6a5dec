"""Loading music: MIDI folders (recursively), and kern / ABC / MusicXML through music21."""
import pytest

from conftest import shared_data
from livegen.errors import UserError
from livegen.music.corpus import load_corpus, read_midi
from songs import write_song

ABC = """X:1
T:Test tune
M:4/4
L:1/8
Q:1/4=120
K:G
GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|
"""

KERN = """**kern
*M4/4
4c
4e
4g
2cc
*-
"""


def test_pop909_midi_merges_tracks_and_skips_nothing():
    folder = shared_data("music", "pop909", "001")
    corpus = load_corpus(folder)
    assert len(corpus.pieces) == 1 and corpus.note_count > 500
    notes = corpus.pieces[0][1]
    assert all(n.end > n.start for n in notes) and notes == sorted(notes)


def test_nottingham_abc_through_music21():
    path = shared_data("music", "nottingham", "ABC_cleaned", "ashover.abc")
    corpus = load_corpus(path)
    assert len(corpus.pieces) > 10  # one file holds many tunes


def test_abc_kern_and_musicxml_files(tmp_path):
    import music21

    (tmp_path / "tune.abc").write_text(ABC)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "chorale.krn").write_text(KERN)
    stream = music21.stream.Stream([music21.note.Note(p, quarterLength=1) for p in ("C4", "D4", "E4", "F4",
                                                                                    "G4", "A4", "B4", "C5")])
    stream.write("musicxml", fp=str(tmp_path / "scale.musicxml"))
    corpus = load_corpus(tmp_path, min_notes=4)
    names = sorted(n.split("/")[-1] for n, _ in corpus.pieces)
    assert names == ["chorale.krn#0", "scale.musicxml#0", "tune.abc#0"]
    abc = dict((n.split("/")[-1], notes) for n, notes in corpus.pieces)["tune.abc#0"]
    assert len(abc) == 27 and abc[0].pitch == 67  # G above middle C
    assert abc[1].start == pytest.approx(0.25)  # eighth notes at 120 bpm


def test_broken_files_are_skipped_and_counted(tmp_path):
    write_song(tmp_path / "good.mid", 2)
    (tmp_path / "broken.mid").write_bytes(b"MThd garbage")
    (tmp_path / "broken.abc").write_bytes(b"\x00\x01\x02")
    corpus = load_corpus(tmp_path)
    assert len(corpus.pieces) == 1
    assert sum(corpus.skipped.values()) == 2


def test_a_folder_without_music_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not music")
    with pytest.raises(UserError, match="no usable music"):
        load_corpus(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_corpus(tmp_path / "missing")


def test_drums_are_left_out(tmp_path):
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track += [mido.Message("note_on", note=36, velocity=100, channel=9), mido.Message("note_on", note=60,
              velocity=100, channel=0), mido.Message("note_off", note=36, channel=9, time=240),
              mido.Message("note_off", note=60, channel=0, time=0)]
    mid.save(tmp_path / "d.mid")
    assert [n.pitch for n in read_midi(tmp_path / "d.mid")] == [60]
