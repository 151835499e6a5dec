"""Commentary that tells the truth: the claim checker, readings heard from hand-made notes (pace
from onsets, never the stated tempo), the shown sentences on contrasting takes, the eval and
bench figures."""
import json
import subprocess

import mido
import pytest

from conftest import livegen_cmd
from livegen.commentary import attributes, truth
from livegen.commentary.attributes import Reading
from livegen.commentary.commentator import Commentator, load_model
from livegen.music.events import Note
from songs import write_songs

A_MINOR = [57, 59, 60, 62, 64, 65, 68, 69, 57, 64, 57]  # harmonic minor, tonic weighted
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72, 60, 67, 60]


def line(pitches, every, velocity=80, repeats=4, shift=0):
    """One note at a time, ``every`` seconds apart, each 90 % of that long."""
    ps = pitches * repeats
    return [Note(i * every, i * every + 0.9 * every, p + shift, velocity) for i, p in enumerate(ps)]


def chords(every, velocity=80, shift=0, count=40):
    """C major and A minor triads in turn, ``every`` seconds apart."""
    notes = []
    for i in range(count):
        for p in ((60, 64, 67), (57, 60, 64))[i % 2]:
            notes.append(Note(i * every, i * every + 0.9 * every, p + shift, velocity))
    return notes


def heard(notes):
    return attributes.hear(attributes.measure(notes))


def sure(notes) -> dict[str, str]:
    return {name: r.value for name, r in heard(notes).items() if r.sure}


SLOW_SOFT_LOW_MAJOR = truth.Heard({"pace": Reading("slow", 0.95), "dynamics": Reading("soft", 1.0),
                                   "register": Reading("low", 0.9), "mode": Reading("major", 0.8),
                                   "texture": Reading("chords", 1.0), "density": Reading("moderate", 0.6)})


# --- the checker -----------------------------------------------------------------------------------

def test_true_claims_are_what_was_heard_surely():
    false, true = truth.judge("A slow and gentle piano piece with deep chords in a major key.", SLOW_SOFT_LOW_MAJOR)
    assert not false
    assert {(c.about, c.value) for c in true} == {("pace", "slow"), ("dynamics", "soft"), ("register", "low"),
                                                  ("texture", "chords"), ("mode", "major"), ("instrument", "piano")}
    assert truth.informative(true) == 5.5


@pytest.mark.parametrize("sentence, wrong", [
    ("The tempo is fast and the drums are loud.", {"pace:fast", "instrument:drums", "dynamics:loud"}),
    ("A female singer sings the lyrics over a cello.", {"instrument:singer", "instrument:strings"}),
    ("There are no vocals, only an acoustic guitar.", {"instrument:singer", "instrument:guitar"}),
    ("The high pitched melody is in a minor key.", {"register:high", "mode:minor"}),
    ("A busy, intricate melody.", {"density:busy"}),  # density heard moderate and unsure
    ("An energetic rock song with a crowd cheering.", {"pace:fast", "instrument:drums",
                                                       "instrument:sounds that are not notes"}),
    ("The recording is of poor audio quality with reverb.", {"instrument:recording"}),
])
def test_false_claims_are_caught(sentence, wrong):
    false, _ = truth.judge(sentence, SLOW_SOFT_LOW_MAJOR)
    assert {f"{c.about}:{c.value}" for c in false} == wrong


def test_an_unsure_reading_makes_its_claim_false_and_uncheckable_words_claim_nothing():
    unsure = truth.Heard({"pace": Reading("slow", 0.6)})
    (claim,) = truth.claims("It is slow.", unsure)
    assert not claim.true and "unsure" in claim.why
    assert truth.claims("The song is emotional and inspiring.", SLOW_SOFT_LOW_MAJOR) == []
    assert truth.judge("A choir of voices.", truth.Heard({}, programs=(52,)))[0] == []  # Choir Aahs
    assert truth.judge("The drums keep time.", truth.Heard({}, drums=True))[0] == []


# --- readings from hand-made notes -----------------------------------------------------------------

def test_pace_is_heard_from_onsets_slow_vs_fast():
    assert sure(line(C_MAJOR, 1.0))["pace"] == "slow"
    assert sure(line(C_MAJOR, 0.15))["pace"] == "fast"
    assert sure(line(C_MAJOR, 0.32))["pace"] == "medium"
    assert sure(chords(1.0))["pace"] == "slow"  # a chord is one event, however many notes
    assert "pace" not in sure(line(C_MAJOR, 1 / 3.8))  # on the edge between medium and fast: said nowhere


def test_loud_vs_soft_and_low_vs_high():
    assert sure(line(C_MAJOR, 0.5, velocity=40))["dynamics"] == "soft"
    assert sure(line(C_MAJOR, 0.5, velocity=115))["dynamics"] == "loud"
    assert sure(line(C_MAJOR, 0.5, shift=-15))["register"] == "low"
    assert sure(line(C_MAJOR, 0.5, shift=12))["register"] == "high"


def test_major_vs_minor_and_chords_vs_a_single_line():
    assert sure(line(C_MAJOR, 0.5))["mode"] == "major"
    assert sure(line(A_MINOR, 0.5))["mode"] == "minor"
    assert sure(line(C_MAJOR, 0.5))["texture"] == "line"
    assert sure(chords(0.5))["texture"] == "chords"


def test_few_notes_are_heard_unsure():
    assert not sure(line(C_MAJOR[:4], 1.0, repeats=1))


def test_the_stated_tempo_is_not_heard(tmp_path):
    """A file that states 120 bpm but plays a note a second reads slow; its labels say so."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000))
    for i, p in enumerate(C_MAJOR * 3):
        track.append(mido.Message("note_on", note=p, velocity=70, time=0 if i == 0 else 480))
        track.append(mido.Message("note_off", note=p, velocity=0, time=480))
    path = tmp_path / "slow.mid"
    mid.save(path)
    notes, programs, drums = attributes.read_midi_file(str(path))
    f = attributes.measure(notes)
    assert attributes.hear(f)["pace"].value == "slow" and "slow tempo" in attributes.describe(f, programs, drums)


# --- what is shown ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    return load_model()


def test_shown_sentences_claim_nothing_false_on_contrasting_takes(model):
    takes = {"slow soft low minor": line(A_MINOR, 0.9, velocity=40, shift=-12),
             "fast loud high major": line(C_MAJOR, 0.15, velocity=115, repeats=12, shift=12),
             "slow soft chords": chords(1.0, velocity=45, shift=-10),
             "organ and drums": line(C_MAJOR, 0.3)}
    commentator = Commentator(model, seed=3)
    informative = 0
    for name, notes in takes.items():
        programs, drums = ((19,), True) if name == "organ and drums" else ((0,), False)
        h = truth.Heard(heard(notes), programs, drums)
        for k in range(4):
            c = commentator.comment(notes, notes[-1].end - k, programs, drums)
            assert c.written, name
            false, true = truth.judge(c.text, h)
            assert not false and all(claim.true for claim in c.claims), (name, c.text, false)
            informative += truth.informative(true) >= 1
    assert informative >= 13  # of 16: most say something true beyond the instrument


def test_constrained_decoding_never_draws_a_one_word_false_claim(model):
    """Without the check after, the words themselves: no "fast", "loud", "cello" or "vocals" drawn."""
    c = Commentator(model, seed=5)
    for _ in range(6):
        text, written = c.write(["slow tempo", "soft", "piano"], SLOW_SOFT_LOW_MAJOR)
        assert written
        words = set(text.lower().replace(",", " ").replace(".", " ").split())
        assert not words & {"fast", "loud", "cello", "vocals", "singer", "drums", "guitar", "minor"}


# --- the figures -------------------------------------------------------------------------------------

def test_eval_reports_false_and_true_claim_rates_on_held_out_midi(tmp_path):
    from captions import write_captions
    from livegen.models import checkpoint

    captions = write_captions(tmp_path / "captions.csv", count=30)
    songs = write_songs(tmp_path / "songs", 2)
    r = subprocess.run(livegen_cmd("eval", str(checkpoint.DEFAULT_COMMENTARY), "--data", str(captions), "--midi",
                                   str(songs), "--json"), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)["truth"]
    assert t["files"] == 2 and t["sentences"] == 2 * len(truth.TAKES) * 4
    assert set(t["by_take"]) == {"as played", "slow soft low", "fast loud high"}
    assert t["false_claim_rate"] == 0.0 and t["true_claim_rate"] >= 0.8 and t["distinct_2"] >= 0.4
    assert isinstance(t["ms_per_sentence"], float) and 0 < t["written_rate"] <= 1
    for example in t["examples"]:
        assert not example["false"] and example["text"]
    bad = subprocess.run(livegen_cmd("eval", str(checkpoint.DEFAULT_COMMENTARY), "--data", str(captions), "--midi",
                                     str(tmp_path / "none")), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no MIDI files" in bad.stderr.strip().splitlines()[-1]


def test_bench_reports_the_ms_of_a_shown_sentence_on_one_core():
    from livegen.bench.commentary import TARGET_MS, commentary_bench

    r = commentary_bench()  # no POP909 folder: generated scales
    assert r["target_ms"] == TARGET_MS == 150.0 and r["takes"] == "generated scales"
    assert r["sentences"] == 12 and r["written_by_model"] == 12
    for key in ("ms_per_sentence", "cpu_ms_per_sentence"):
        assert 0 < r[key]["p50"] <= r[key]["p95"] <= r[key]["max"]
