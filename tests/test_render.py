"""The built-in synth: rendering takes offline, and playing live through JACK audio."""
import os
import shutil
import subprocess
import sys
import time
import wave

import mido
import numpy as np
import pytest

from conftest import livegen_cmd, shared_data
from livegen.errors import UserError
from livegen.midi import fluidsynth as fs

pytestmark = pytest.mark.skipif(not os.path.isfile(fs.DEFAULT_SOUNDFONT),
                                reason="apt-get install libfluidsynth3 fluid-soundfont-gm (.ci/run does)")


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
        return x.astype(np.float64), w.getframerate()


def rms(x):
    return float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0


def test_render_a_pop909_song_is_audible_the_right_length_and_starts_with_its_first_note(tmp_path):
    song = shared_data("music", "pop909", "805", "805.mid")
    out = tmp_path / "805.wav"
    run = subprocess.run(livegen_cmd("render", str(song), str(out), "--rate", "22050"), capture_output=True,
                         text=True, timeout=200)
    assert run.returncode == 0, run.stderr
    x, rate = read_wav(out)
    midi = mido.MidiFile(song)
    assert rate == 22050
    assert midi.length <= len(x) / rate <= midi.length + fs.TAIL_MAX + 0.1
    assert rms(x) > 300
    t, first_on = 0.0, None
    for msg in midi:
        t += msg.time
        if msg.type == "note_on" and msg.velocity and first_on is None:
            first_on = t
    before = x[: int((first_on - 0.05) * rate)]
    after = x[int(first_on * rate): int((first_on + 0.5) * rate)]
    assert rms(before) < 5 and rms(after) > 100  # silence until the first note, sound right after it
    assert not (tmp_path / "805.wav.part").exists()


def test_render_of_a_short_take_rings_out_then_stops(tmp_path):
    midi = mido.MidiFile()
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track += [mido.Message("program_change", program=0), mido.Message("note_on", note=60, velocity=100),
              mido.Message("note_off", note=60, time=midi.ticks_per_beat)]  # half a second at 120 bpm
    take = tmp_path / "c.mid"
    midi.save(take)
    result = fs.render(str(take), str(tmp_path / "c.wav"), rate=16000)
    x, _ = read_wav(tmp_path / "c.wav")
    assert 0.5 + fs.TAIL_SILENCE <= result["seconds"] <= 0.5 + fs.TAIL_MAX + 0.05
    assert rms(x[: 8000]) > 300 and result["peak"] > 1000
    assert rms(x[-int(fs.TAIL_SILENCE * 16000) // 2:]) < 10  # the tail ends once the release has died away


@pytest.mark.parametrize("case", ["not-midi", "missing-midi", "bad-soundfont", "missing-soundfont"])
def test_render_bad_input_is_one_line(tmp_path, case):
    song = tmp_path / "ok.mid"
    mido.MidiFile(tracks=[mido.MidiTrack([mido.Message("note_on", note=60)])]).save(song)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"RIFF....nope" * 20)
    args = {"not-midi": [str(junk), str(tmp_path / "o.wav")],
            "missing-midi": [str(tmp_path / "none.mid"), str(tmp_path / "o.wav")],
            "bad-soundfont": [str(song), str(tmp_path / "o.wav"), "--soundfont", str(junk)],
            "missing-soundfont": [str(song), str(tmp_path / "o.wav"), "--soundfont", str(tmp_path / "x.sf2")]}[case]
    run = subprocess.run(livegen_cmd("render", *args), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("livegen: error:") and ("SoundFont" in line or "MIDI" in line)
    assert not (tmp_path / "o.wav").exists()


def test_a_missing_fluidsynth_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # what `import fluidsynth` does without pyfluidsynth
    with pytest.raises(UserError, match=r"^the built-in synth needs pyfluidsynth: pip install 'livegen\[synth\]'$"):
        fs.new_synth()
    # pyfluidsynth there, the system's libfluidsynth not: its import raises this
    (tmp_path / "fluidsynth.py").write_text('raise ImportError("Couldn\'t find the FluidSynth library.")\n')
    monkeypatch.delitem(sys.modules, "fluidsynth")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match=r"^the built-in synth cannot load pyfluidsynth \(Couldn't find the "
                                        r"FluidSynth library.\): apt-get install libfluidsynth3 fluid-soundfont-gm$"):
        fs.new_synth()


def test_the_port_sounds_tracks_its_notes_and_ends_them_on_close(jack_server):
    port = fs.FluidSynthOutput()
    try:
        assert port.driver == "jack" and port.name.startswith("fluidsynth")
        for note in (60, 64, 67):
            port.send([0x90, note, 100])
        port.send([0xE0, 0, 0x40])  # pitch bend centre: other channel messages pass too
        deadline = time.monotonic() + 5
        while port.voices() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert port.voices() > 0 and port.sounding == {(0, 60), (0, 64), (0, 67)}
        port.send([0xF8])  # a MIDI clock tick: a synth has nothing to do with it
        with pytest.raises(ValueError):
            port.send([0xF0, 1, 2])
    finally:
        port.close()
    assert port.sounding == set() and port.closed


@pytest.mark.skipif(shutil.which("jack_rec") is None, reason="jack_rec (jackd2's example clients) is not here")
def test_perform_on_the_builtin_synth_is_heard_on_jack(jack_server, tmp_path):
    take = tmp_path / "take.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--api", "fluidsynth", "--duration", "8", "--density", "0.9",
                                        "--record", str(take), "--seed", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while "livegen-synth:left" not in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.2)
        time.sleep(1.0)
        subprocess.run(["jack_rec", "-f", str(tmp_path / "heard.wav"), "-d", "2", "-b", "16",
                        "livegen-synth:left", "livegen-synth:right"], capture_output=True, timeout=30, check=True)
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "performing on fluidsynth (FluidR3_GM.sf2, jack)" in err
    heard, _ = read_wav(tmp_path / "heard.wav")
    assert rms(heard) > 100
    notes = [m for m in mido.MidiFile(take) if m.type == "note_on" and m.velocity]
    assert len(notes) >= 10


def test_perform_builtin_synth_with_a_bad_soundfont_is_one_line(tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_text("not a soundfont")
    run = subprocess.run(livegen_cmd("perform", "--api", "fluidsynth", "--soundfont", str(bad), "--duration", "1"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert "is not a SoundFont" in line
