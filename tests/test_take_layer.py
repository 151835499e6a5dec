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


def test_rec_pressed_mid_take_records_from_then_on_the_same_clock_without_a_gap(tmp_path, receiver):
    """Rec inside a playing take: the same engine plays on (its time never goes back, its model is
    not started again), the port hears no gap, and the file and its session start at the press."""
    import time

    from livegen.sessions import read_take
    from livegen.take.runner import TakeRunner

    preset = presets.Preset()
    preset.output.api, preset.output.port = "jack", receiver.name
    preset.controls.density = 0.9
    runner = TakeRunner(log=lambda text: None)
    take = tmp_path / "later" / "mid.mid"
    try:
        engine = runner.start_take(TakeSpec.from_preset(preset, {"seed": 4}))
        deadline = time.monotonic() + 30
        while engine.now() < 1.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        generator, tokens = engine.generators[0], engine.stats.tokens
        runner.start_recording(str(take))
        pressed = engine.record_from
        assert 1.5 <= pressed < 3.0 and engine.record == str(take)
        while engine.now() < pressed + 2.5:
            time.sleep(0.05)
        assert runner.stop_recording() == str(take)
        stopped = engine.now()
        assert runner.engine is engine and engine.running and engine.record is None
        assert engine.generators[0] is generator and engine.stats.tokens > tokens  # the model went on
        time.sleep(0.5)
        assert engine.now() > stopped  # the clock went on after Rec was released, too
    finally:
        runner.close()
    receiver.settle()
    heard = [(at - engine.start_time, m.note) for at, m in receiver.messages if m.type == "note_on" and m.velocity]
    arrivals = [t for t, _ in heard]
    # no gap and no change at the press: the port heard, around it, the notes the same take plays unrecorded
    unrecorded = tmp_path / "unrecorded.mid"
    reference = TakeRunner(log=lambda text: None)
    try:
        plain = reference.start_take(TakeSpec.from_preset(preset, {"seed": 4, "no_port": True,
                                                                   "record": str(unrecorded)}))
        while plain.running and plain.now() < pressed + 1.5:
            time.sleep(0.05)
    finally:
        reference.close()
    expected = [(ms / 1000, data[0]) for ms, _, kind, data in played(unrecorded, pressed + 1.5)
                if kind == "note_on" and data[1] and pressed - 0.8 <= ms / 1000 <= pressed + 0.8]
    assert len(expected) >= 4
    assert all(any(n == note and abs(t - at) < 0.03 for t, n in heard) for at, note in expected), expected

    midi = mido.MidiFile(take)
    starts, now, sounding = [], 0.0, set()
    for message in mido.merge_tracks(midi.tracks):
        now += mido.tick2second(message.time, midi.ticks_per_beat, 500_000)
        if message.type == "note_on" and message.velocity:
            starts.append(now)
            sounding.add(message.note)
        elif message.type in ("note_on", "note_off"):
            assert message.note in sounding  # no note-off for a note begun before the press
            sounding.discard(message.note)
    assert not sounding and len(starts) >= 5
    first_heard = min(t for t in arrivals if t >= pressed) - pressed
    assert abs(starts[0] - first_heard) < 0.03  # time 0 is the press: the file begins with the next note heard
    assert 2.0 <= midi.length <= stopped - pressed + 0.2
    while_recording = [t - pressed for t in arrivals if pressed + 0.1 <= t <= stopped - 0.1]
    assert len(starts) >= len(while_recording) >= len(starts) - 4  # what the port heard while recording

    recorded = read_take(take)
    assert recorded.header["from"] == pytest.approx(pressed, abs=0.01)
    assert recorded.ended and recorded.duration == pytest.approx(stopped - pressed, abs=0.1)
    replayed = tmp_path / "replayed.mid"
    replay = TakeRunner(log=lambda text: None)
    try:
        engine = replay.start_take(TakeSpec.from_preset(presets.Preset(), {
            **recorded.replay_overrides(), "no_port": True, "record": str(replayed)}))
        while engine.running and engine.now() < recorded.duration + 0.3:
            time.sleep(0.05)
    finally:
        replay.close()
    again = mido.MidiFile(replayed)
    assert sum(m.type == "note_on" and m.velocity > 0 for m in again) >= 5  # its controls play a take again
