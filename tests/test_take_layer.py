"""The take layer: the command line and the panel make and play a take the same way."""
from __future__ import annotations

import json
import subprocess

import mido
import pytest

from conftest import livegen_cmd
from livegen import presets
from livegen.errors import UserError
from livegen.take.spec import TakeSpec

pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

PRESET = """
[model]
model = "dcrnn"
seed = 11
temperature = 0.9

[output]
api = "jack"
port = "{port}"

[engine]
bpm = 132.0
external_z = [0, 2, 5]

[controls]
pitch = 0.35
density = 0.7
key = "D minor"

[gui]
commentary = false

[[layers]]
model = "charrnn"
channel = 3
program = 33
"""
SCRIPT = [{"t": 0.0, "z": [0.5, -0.5, 0.2, 0.0, 0.0, 0.9, 0.0, 0.0]},
          {"t": 0.8, "pitch": 0.7, "z": [-0.8, 0.1, 0.6, 0.0, 0.0, -0.4, 0.0, 0.0]},
          {"t": 1.6, "density": 0.3, "theme": "B"},
          {"t": 2.4, "pitch": 0.2, "z": [0.9, 0.9, -0.9, 0.0, 0.0, 0.3, 0.0, 0.0]}]
COMPARED = 3.5  # s of each take compared (the panel's take is stopped by hand, later)


def played(path, until: float = COMPARED) -> list[tuple]:
    """Every channel message of a recorded take before ``until`` s: (ms, channel, type, data)."""
    out, now = [], 0.0
    midi = mido.MidiFile(path)
    for message in mido.merge_tracks(midi.tracks):
        now += mido.tick2second(message.time, midi.ticks_per_beat, 500_000)
        if not message.is_meta and hasattr(message, "channel") and now < until:
            out.append((round(now * 1000), message.channel, message.type, message.bytes()[1:]))
    return sorted(out)


def test_the_command_line_and_the_panel_play_the_same_take_note_for_note(tmp_path, receiver, qtbot, monkeypatch):
    from livegen.gui.app import application
    from livegen.gui.window import MainWindow

    preset_path = tmp_path / "stage.toml"
    preset_path.write_text(PRESET.format(port=receiver.name))
    script = tmp_path / "moves.jsonl"
    script.write_text("".join(json.dumps(row) + "\n" for row in SCRIPT))
    cli_take, panel_take = tmp_path / "cli.mid", tmp_path / "panel.mid"
    run = subprocess.run(livegen_cmd("perform", "--preset", str(preset_path), "--controls", f"script:{script}",
                                     "--record", str(cli_take), "--duration", "4"),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr

    monkeypatch.chdir(tmp_path)
    application()
    preset = presets.load(str(preset_path))
    preset.gui.gesture_source = f"script:{script}"
    window = MainWindow(preset)
    qtbot.addWidget(window)
    window.show()
    try:
        window.play(record=str(panel_take))
        qtbot.waitUntil(lambda: window.takes.engine is not None and window.takes.engine.now() > 4.5, timeout=60_000)
        window.stop()
        qtbot.waitUntil(lambda: window.takes.engine is None and not window.takes.busy, timeout=30_000)
    finally:
        window.close()

    cli_notes, panel_notes = played(cli_take), played(panel_take)
    assert len([m for m in cli_notes if m[2] == "note_on"]) >= 10
    assert {m[1] for m in cli_notes} == {0, 2}  # the DCRNN on channel 1, the Char-RNN layer on 3
    assert panel_notes == cli_notes
    for take in (cli_take, panel_take):  # the preset's external_z reached the DCRNN in both
        header = json.loads(take.with_suffix(".jsonl").read_text().splitlines()[0])
        assert header["seed"] == 11 and header["bpm"] == 132.0 and header["layers"][0]["program"] == 33


def test_a_preset_override_is_checked_by_name():
    preset = presets.Preset()
    assert TakeSpec.from_preset(preset, {"bpm": 90, "seed": 3}).settings.bpm == 90.0
    with pytest.raises(UserError, match="unknown take setting 'tempo'"):
        TakeSpec.from_preset(preset, {"tempo": 90})
    with pytest.raises(UserError, match="--seed must be int"):
        TakeSpec.from_preset(preset, {"seed": "3"})
    with pytest.raises(UserError, match="--bpm must be in"):
        TakeSpec.from_preset(preset, {"bpm": float("nan")})
    with pytest.raises(UserError, match="--clock-in and --link"):
        TakeSpec.from_preset(preset, {"clock_in": "x", "link": True})


def test_takes_after_the_first_are_numbered():
    spec = TakeSpec.from_preset(presets.Preset(), {"record": "takes/set.mid"})
    assert spec.numbered(1).record == "takes/set.mid" and spec.numbered(3).record == "takes/set-3.mid"


def test_a_followed_tempo_never_carries_a_scripts_change_before_its_time():
    """A script hands its change over early; a tempo change made before that time merges over
    what is in force then, and the script's change is sent again after it, with the new tempo."""
    from types import SimpleNamespace

    from livegen.music.conditioning import Controls
    from livegen.take.controls import ControlHub

    sent: list[tuple[float | None, Controls]] = []
    hub = ControlHub(Controls(pitch=0.5))
    hub.attach(SimpleNamespace(running=True, now=lambda: 1.0, set_controls=lambda c, t=None: sent.append((t, c))))
    hub.script()(Controls(pitch=0.9), 3.0)  # due at 3 s, handed over at 1 s
    hub.tempo(140.0, 1.5)
    assert sent[-2] == (1.5, Controls(pitch=0.5, bpm=140.0))
    assert sent[-1] == (3.0, Controls(pitch=0.9, bpm=140.0))
