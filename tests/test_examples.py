"""The example files the README uses (examples/) play as the README says, with nothing clamped."""
import json
import subprocess

import mido
import pytest

from conftest import ROOT, livegen_cmd
from livegen import presets
from livegen.music.conditioning import CONTROL_RANGES
from livegen.music.control_stream import read_stream

EXAMPLES = ROOT / "examples"
NO_MIDI = {"JACK_DEFAULT_SERVER": "livegen-no-such-server", "JACK_NO_START_SERVER": "1"}


def within_ranges(row: dict) -> bool:
    for key, value in row.items():
        if key in CONTROL_RANGES:
            lo, hi = CONTROL_RANGES[key]
            if not all(lo <= v <= hi for v in (value if isinstance(value, list) else [value])):
                return False
    return True


@pytest.mark.parametrize("script, model", [("gesture.jsonl", "charrnn"), ("muscles.jsonl", "dcrnn")])
def test_a_control_script_plays_a_take(script, model, tmp_path, monkeypatch):
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    path = EXAMPLES / script
    _, rows = read_stream(str(path))
    assert rows and all(within_ranges(r) for r in rows), "a value the engine would clamp"
    take = tmp_path / "take.mid"
    run = subprocess.run(livegen_cmd("perform", "--model", model, "--no-port", "--controls",
                                     f"script:examples/{script}", "--duration", "4", "--record", str(take),
                                     "--seed", "7"), capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "clamp" not in run.stderr and "warning" not in run.stderr.lower(), run.stderr
    assert [m for m in mido.MidiFile(take) if m.type == "note_on" and m.velocity]


def test_the_armband_recording_replays_through_the_emg_path():
    run = subprocess.run(livegen_cmd("emg", "--source", "replay:examples/armband.csv", "--json", "--duration", "2.5"),
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)
    assert stats["samples"] >= 400 and stats["parse_errors"] == stats["clamped"] == 0
    assert max(stats["levels"][:4]) > 0.3 and max(stats["levels"][4:]) < 0.1  # 2.5 s in: channels 1-4 tensed


def test_the_booth_preset_is_a_valid_preset_that_returns_to_a_shipped_one(monkeypatch):
    monkeypatch.chdir(ROOT)  # the project's presets/ folder is found by name from the project folder
    booth = presets.load("booth")
    assert booth.gui.booth and booth.gui.idle_reset > 0
    assert presets.find(booth.gui.reset_preset).parent == presets.SHIPPED_PRESETS


def test_every_example_is_in_the_examples_readme_and_used_by_the_main_readme():
    listed = (EXAMPLES / "README.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for path in EXAMPLES.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in listed, path.name
            assert f"examples/{path.name}" in readme, path.name
