"""The command line: a headless take, reproducibility, and one clear line for every bad input."""
import json
import os
import subprocess

import mido
import pytest

from conftest import livegen_cmd
from songs import write_songs

NO_MIDI = {"JACK_DEFAULT_SERVER": "livegen-no-such-server", "JACK_NO_START_SERVER": "1"}


def livegen(*args, env=None, timeout=120):
    return subprocess.run(livegen_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def one_line_error(run, *fragments):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr + run.stdout
    lines = [line for line in run.stderr.strip().splitlines() if line.startswith("livegen: error")]
    assert len(lines) == 1, run.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def notes(path):
    t, out = 0.0, []
    for m in mido.MidiFile(path):
        t += m.time
        if m.type == "note_on" and m.velocity:
            out.append((round(t, 3), m.note))
    return out


def test_headless_take_without_any_midi_system_says_so_once_and_records(tmp_path):
    take = tmp_path / "take.mid"
    run = livegen("perform", "--duration", "4", "--record", str(take), env=NO_MIDI)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("no MIDI system here") == 1
    played = notes(take)
    assert len(played) >= 8 and len({n for _, n in played}) >= 4  # a flow of notes, not one repeated
    assert max(t for t, _ in played) > 2.0 and mido.MidiFile(take).length > 3.5  # over the whole take


def test_scripted_take_is_reproducible_with_a_seed(tmp_path):
    script = tmp_path / "gesture.jsonl"
    script.write_text('{"t": 0, "pitch": 0.3, "density": 0.7}\n{"t": 1.5, "pitch": 0.8, "key": "D minor"}\n')
    takes = []
    for name in ("a", "b"):
        take = tmp_path / f"{name}.mid"
        run = livegen("perform", "--no-port", "--controls", f"script:{script}", "--duration", "3.5",
                      "--record", str(take), "--seed", "7")
        assert run.returncode == 0, run.stderr
        takes.append(notes(take))
    assert takes[0] == takes[1] and len(takes[0]) > 5


def test_out_of_range_controls_are_clamped_with_one_warning(tmp_path):
    script = tmp_path / "wild.jsonl"
    script.write_text("".join(json.dumps({"t": i * 0.3, "pitch": 1.5 + i, "density": 0.5}) + "\n" for i in range(5)))
    run = livegen("perform", "--no-port", "--controls", f"script:{script}", "--duration", "2")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("pitch") == 1 and "clamped" in run.stderr


def test_wrong_port_without_a_midi_system_is_an_error():
    one_line_error(livegen("perform", "--port", "no-such-port-xyz", "--duration", "2", env=NO_MIDI), "no MIDI system")


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(os.urandom(4000))
    one_line_error(livegen("perform", "--no-port", "--model", str(bad), "--duration", "2"), "not a readable")
    one_line_error(livegen("eval", str(bad), "--data", str(tmp_path)), "not a readable")


def test_missing_checkpoint(tmp_path):
    one_line_error(livegen("perform", "--no-port", "--model", "/nonexistent.safetensors", "--duration", "2"),
                   "does not exist")
    one_line_error(livegen("perform", "--no-port", "--model", str(tmp_path), "--duration", "2"),
                   "is a folder: give the .safetensors file in it")


@pytest.mark.parametrize("content,fragment", [
    (None, "does not exist"),
    ('{"t": 0, "pitch": 0.5}\n{"t": 1, "pitch": oops}\n', "line 2: not JSON"),
    ('{"t": 0, "pich": 0.5}\n', "line 1: unknown key 'pich'"),
    ('{"t": 2}\n{"t": 1}\n', "line 2: t 1 is earlier"),
    ('{"pitch": 0.5}\n', "line 1: needs \"t\""),
    ('{"t": 0, "histogram": [1, 2]}\n', "line 1: histogram must be a list of 12"),
    ('{"t": 0, "key": "H dorian"}\n', "line 1: key 'H dorian'"),
    ('', "has no lines"),
])
def test_malformed_control_scripts_name_the_line(tmp_path, content, fragment):
    script = tmp_path / "s.jsonl"
    if content is not None:
        script.write_text(content)
    one_line_error(livegen("perform", "--no-port", "--controls", f"script:{script}", "--duration", "2"), fragment)


def test_unknown_control_source():
    one_line_error(livegen("perform", "--no-port", "--controls", "telepathy", "--duration", "1"), "unknown control")


def test_data_folder_without_music(tmp_path):
    (tmp_path / "readme.txt").write_text("no music here")
    one_line_error(livegen("train", "charrnn", "--data", str(tmp_path), "--out", str(tmp_path / "m.safetensors"),
                           "--minutes", "1"), "no usable music")
    one_line_error(livegen("eval", "livegen/models/charrnn-pop909.safetensors", "--data", str(tmp_path)),
                   "no usable music")


def test_bad_preset_key(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("[engine]\nlookahed = 0.2\n")
    one_line_error(livegen("perform", "--no-port", "--preset", str(preset), "--duration", "1"), "engine.lookahed")


def test_train_resume_and_eval(tmp_path):
    data = write_songs(tmp_path / "data", 3)
    out = tmp_path / "m.safetensors"
    for expected_step in (2, 4):
        run = livegen("train", "charrnn", "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "4",
                      "--seq-len", "64", timeout=300)
        assert run.returncode == 0, run.stderr
        assert f"done: {expected_step} steps" in run.stderr
    assert (tmp_path / "m.safetensors.opt.safetensors").exists()
    run = livegen("eval", str(out), "--data", str(write_songs(tmp_path / "other", 6, first_seed=20, beats=64)),
                  "--json", "--limit", "5")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert 0 < result["nll_nats_per_event"] < 7 and result["pieces"] == 5
    assert {"nll_unconditioned_nats_per_event", "events", "skipped_files"} <= set(result)


def test_damaged_and_foreign_checkpoints_through_the_command_line(tmp_path):
    shipped = "livegen/models/charrnn-pop909.safetensors"
    truncated = tmp_path / "cut.safetensors"
    with open(shipped, "rb") as whole:
        truncated.write_bytes(whole.read(100_000))
    for args in (("perform", "--no-port", "--duration", "1", "--model", str(truncated)),
                 ("eval", str(truncated), "--data", str(tmp_path))):
        run = livegen(*args)
        assert run.returncode != 0 and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    foreign = tmp_path / "foreign.safetensors"  # a real safetensors file, but not one of ours
    from safetensors.numpy import save_file
    import numpy as np

    save_file({"weight": np.zeros((3, 3), dtype=np.float32)}, str(foreign))
    one_line_error(livegen("perform", "--no-port", "--duration", "1", "--model", str(foreign)), str(foreign))
    data = write_songs(tmp_path / "songs", 1, beats=32)
    one_line_error(livegen("eval", "livegen/models/dcrnn-pop909.safetensors", "--data", str(data), "--limit", "1"),
                   "is a dcrnn", "livegen bench")
    one_line_error(livegen("bench", "--model", "dcrnn", "--json"), "is a dcrnn", "--parts dcrnn")


@pytest.mark.parametrize("flags, fragment", [
    (("--duration", "nan"), "--duration must be a positive"),
    (("--duration", "-3"), "--duration must be a positive"),
    (("--lookahead", "-1"), "--lookahead must be"),
    (("--temperature", "-1"), "--temperature must be"),
    (("--bpm", "1000"), "--bpm must be"),
    (("--channel", "17"), "--channel is 1..16"),
])
def test_out_of_range_flags_are_one_line(flags, fragment):
    one_line_error(livegen("perform", "--no-port", *flags), fragment)


@pytest.mark.parametrize("toml, fragment", [
    ("[engine]\nlookahead = -1.0\n", "engine.lookahead"),
    ("[engine]\nexternal_z = [0, 0, 1]\n", "engine.external_z"),
    ("[model]\ntemperature = 0.0\n", "model.temperature"),
])
def test_out_of_range_preset_values_name_the_key(tmp_path, toml, fragment):
    preset = tmp_path / "p.toml"
    preset.write_text(toml)
    one_line_error(livegen("perform", "--no-port", "--preset", str(preset), "--duration", "1"), fragment)


def test_the_dcrnn_plays_the_z_dims_the_preset_names(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("[engine]\nexternal_z = [8, 9, 10, 11, 12, 13, 14, 15]\n")
    script = tmp_path / "z.jsonl"
    script.write_text('{"t": 0, "z": [1, -1, 1, -1, 1, -1, 1, -1]}\n')
    takes = {}
    for name, extra in (("default", ()), ("upper", ("--preset", str(preset)))):
        take = tmp_path / f"{name}.mid"
        run = livegen("perform", "--no-port", "--model", "dcrnn", "--controls", f"script:{script}", "--duration", "3",
                      "--record", str(take), *extra)
        assert run.returncode == 0, run.stderr
        takes[name] = notes(take)
    assert takes["default"] and takes["upper"] and takes["default"] != takes["upper"]
    preset.write_text("[engine]\nexternal_z = [20]\n")
    one_line_error(livegen("perform", "--no-port", "--model", "dcrnn", "--preset", str(preset), "--duration", "1"),
                   "engine.external_z names dim 20")


def test_panic_with_no_outputs_says_there_is_nothing_to_silence(monkeypatch, capsys):
    from livegen import cli
    from livegen.midi import ports

    monkeypatch.setattr(ports, "resolve_api", lambda api: "jack")
    monkeypatch.setattr(ports, "list_ports", lambda api: {"outputs": [], "inputs": []})
    assert cli.main(["panic"]) == 0
    assert capsys.readouterr().out == "no MIDI outputs on jack: nothing to silence\n"
