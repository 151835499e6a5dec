"""MIDI-learn: a controller's CC, note or pitch bend bound in a preset steers a control or does an
action in a playing take; ``livegen learn-midi`` learns one binding and saves it."""
from __future__ import annotations

import json
import subprocess
import time

import mido
import pytest

from conftest import livegen_cmd
from livegen import presets
from livegen.errors import UserError
from livegen.midi.bindings import check_binding
from livegen.sessions import session_path
from livegen.take.spec import TakeSpec


class Controller:
    """A sending JACK port standing in for a MIDI controller."""

    def __init__(self, name: str):
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        self.port = backend.open_output(name, virtual=True)

    def send(self, **fields):
        self.port.send(mido.Message(**fields))

    def close(self):
        self.port.close()


def jack_input_name(short: str) -> str:
    """The name the MIDI system lists a virtual port under (what a binding saves)."""
    from livegen.midi import ports

    return ports.match_port(short, ports.list_ports("jack")["inputs"], kind="input")


def wait_for(condition, limit=10.0):
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("table, key", [
    ('source = "cc"\ntarget = "density"\nknob = 3', "midi_learn[0].knob is unknown"),
    ('source = "cc"\ntarget = "density"\nnumber = "7"', "midi_learn[0].number must be int"),
    ('source = "cc"\ntarget = "density"\nnumber = 128', "midi_learn[0].number must be 0..127"),
    ('source = "sysex"\ntarget = "density"', "midi_learn[0].source"),
    ('source = "cc"\ntarget = "loudness"', "midi_learn[0].target 'loudness' is not a MIDI-learn target"),
    ('source = "cc"\ntarget = "density"\nchannel = 17', "midi_learn[0].channel must be 1..16"),
    ('source = "cc"\ntarget = "density"\nrange = [0, inf]', "midi_learn[0].range[1] must be a finite number"),
    ('source = "cc"\ntarget = "z2"\nrange = [-2, 1]', "midi_learn[0].range must be [low, high]"),
    ('source = "note"\ntarget = "panic"\nrange = [0, 1]', "midi_learn[0].range is for a control"),
    ('source = "note"', "midi_learn[0].target is missing"),
])
def test_a_bad_binding_in_a_preset_is_one_line_naming_its_key(table, key):
    with pytest.raises(UserError, match=key.replace("[", r"\[").replace("]", r"\]")):
        presets.parse(f"[[midi_learn]]\n{table}\n")


def test_a_cc_spreads_over_its_controls_range_temperature_included():
    from livegen.midi.bindings import Binding

    assert Binding("cc", 1, "temperature").value([0xB0, 1, 0]) == pytest.approx(0.2)
    assert Binding("cc", 1, "temperature").value([0xB0, 1, 127]) == pytest.approx(2.0)
    assert Binding("cc", 1, "density", invert=True).value([0xB0, 1, 127]) == pytest.approx(0.0)
    assert Binding("cc", 1, "z3", range=[0.0, 0.5]).value([0xB0, 1, 127]) == pytest.approx(0.5)


def test_bindings_are_saved_with_the_preset_and_its_comments_stay(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("# my stage set\n[controls]\ndensity = 0.4  # calm start\n\n"
                    "[[midi_learn]]\nsource = \"bend\"\ntarget = \"pitch\"\ninvert = true\n", encoding="utf-8")
    preset = presets.load(str(path))
    assert [b.describe() for b in preset.midi_learn] == ["pitch bend, any channel -> pitch"]
    assert preset.midi_learn[0].invert
    preset.midi_learn.append(check_binding({"source": "cc", "number": 74, "channel": 2,
                                                    "target": "z3", "range": [-0.5, 0.5]}))
    presets.save(preset, path)
    text = path.read_text(encoding="utf-8")
    assert "# my stage set" in text and "# calm start" in text
    again = presets.load(str(path))
    assert again.midi_learn == preset.midi_learn
    assert TakeSpec.from_preset(again).midi_learn == tuple(preset.midi_learn)


def test_a_learned_controller_steers_its_controls_and_actions_in_a_playing_take(receiver, jack_server, request,
                                                                                tmp_path):
    """The controller's port is not there when the take starts: the take waits for it, opens it
    when it appears, and from then on its CC sets density, its bend pitch, a pad panics and steps
    to the next preset, a CC press picks a theme; each control change is stamped with the
    message's arrival on the take's clock and changes only its own control."""
    from livegen.take.runner import TakeRunner

    short = f"ctl-{request.node.name[:12]}"
    preset = presets.Preset()
    preset.output.api, preset.output.port = "jack", receiver.name
    said = []
    runner = TakeRunner(log=said.append)
    take = tmp_path / "learned.mid"
    controller = None
    try:
        controller = Controller(short)
        time.sleep(0.3)
        name = jack_input_name(short)  # the exact listed name, as learn-midi saves it
        controller.close()
        time.sleep(0.5)
        preset.midi_learn = [check_binding(t) for t in (
            {"source": "cc", "number": 74, "target": "density", "port": name, "range": [0.2, 0.8]},
            {"source": "bend", "target": "pitch", "port": name, "channel": 2},
            {"source": "note", "number": 36, "target": "panic", "port": name},
            {"source": "note", "number": 38, "target": "next_preset", "port": name},
            {"source": "cc", "number": 20, "target": "theme:B", "port": name})]
        engine = runner.start_take(TakeSpec.from_preset(preset, {"seed": 2, "record": str(take)}))
        assert any("is not here: waiting for it" in line for line in said)
        controller = Controller(short)  # the controller comes back: the watcher opens it within a second
        assert wait_for(lambda: runner.inputs.ports.get(name) is not None, 5.0), said
        learned, before = runner.inputs.learned, runner.hub.controls
        controller.send(type="control_change", control=74, value=127, channel=0)
        assert wait_for(lambda: runner.hub.controls.density == pytest.approx(0.8))
        at, t, target = learned.applied[-1]
        assert target == "density" and t == pytest.approx(at - engine.start_time, abs=1e-9)
        assert engine.controls.density == pytest.approx(0.8) and engine.controls.pitch == before.pitch
        stamped = t
        controller.send(type="control_change", control=74, value=0, channel=5)  # any channel
        assert wait_for(lambda: runner.hub.controls.density == pytest.approx(0.2))

        controller.send(type="pitchwheel", pitch=8191, channel=0)  # channel 1: not the bound channel 2
        controller.send(type="pitchwheel", pitch=8191, channel=1)
        assert wait_for(lambda: runner.hub.controls.pitch == pytest.approx(1.0))
        assert runner.hub.controls.density == pytest.approx(0.2)

        controller.send(type="control_change", control=20, value=100, channel=0)
        assert wait_for(lambda: runner.hub.controls.theme == "B")

        controller.send(type="note_on", note=36, velocity=90, channel=0)
        assert wait_for(lambda: any(m.type == "control_change" and m.control == 123 for _, m in receiver.messages))
        names = presets.names()
        controller.send(type="note_on", note=38, velocity=90, channel=0)
        assert wait_for(lambda: runner.current_preset is not None)
        assert runner.current_preset == names[(names.index("default") + 1) % len(names)]
        # the controller's notes are its own: never heard as a player's (no player track was asked for)
        assert engine.running and not engine.failed
    finally:
        runner.close()
        if controller is not None:
            controller.close()
    # the session holds the change at the message's arrival, so a replay applies it at the same point of the music
    rows = [json.loads(line) for line in session_path(take).read_text(encoding="utf-8").splitlines()[1:]]
    at = next(i for i, r in enumerate(rows) if r.get("density") == pytest.approx(0.8))
    earlier = max((r["t"] for r in rows[:at]), default=0.0)  # the format's times never go back
    assert rows[at]["t"] == pytest.approx(max(stamped, earlier), abs=1e-5)


def learn(*args, timeout=30):
    return subprocess.run(livegen_cmd("learn-midi", "--api", "jack", *args), capture_output=True, text=True,
                          timeout=timeout)


def test_learn_midi_saves_the_first_moved_control_into_a_preset(jack_server, tmp_path, request):
    short = f"knob-{request.node.name[:12]}"
    controller = Controller(short)
    out = tmp_path / "set.toml"
    out.write_text("# my knobs\n[controls]\npitch = 0.6  # high\n", encoding="utf-8")
    try:
        time.sleep(0.3)
        listed = jack_input_name(short)
        with subprocess.Popen(livegen_cmd("learn-midi", "--api", "jack", "--midi-in", short, "--target", "z2",
                                          "--out", str(out), "--timeout", "20"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            first = proc.stdout.readline()
            controller.send(type="note_on", note=60, velocity=0, channel=2)  # a released key is not a move
            controller.send(type="control_change", control=21, value=64, channel=2)
            said = first + proc.stdout.read()
            status = proc.wait(10)
    finally:
        controller.close()
    assert "move a control on" in first and status == 0, said
    assert "learned: CC 21, channel 3" in said and "-> z2" in said
    text = out.read_text(encoding="utf-8")
    assert "# my knobs" in text and "# high" in text
    binding, = presets.load(str(out)).midi_learn
    assert (binding.source, binding.number, binding.channel, binding.target) == ("cc", 21, 3, "z2")
    assert binding.port == listed  # the exact name: the take waits for this port when it is away


@pytest.mark.parametrize("args, error", [
    (("--midi-in", "no-such-knobs", "--target", "density"), "no MIDI input matches 'no-such-knobs'"),
    (("--midi-in", "x", "--target", "loudness"), "--target 'loudness' is not a MIDI-learn target"),
    (("--midi-in", "{port}", "--target", "panic", "--timeout", "0.5"), "no control moved on"),
])
def test_learn_midi_errors_are_one_line(jack_server, request, args, error):
    short = f"idle-{request.node.name[-10:]}"
    controller = Controller(short)
    try:
        time.sleep(0.3)
        done = learn(*(a.replace("{port}", short) for a in args))
    finally:
        controller.close()
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("livegen: error")]
    assert len(lines) == 1 and error in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_panel_learns_a_control_by_right_click_shows_it_saves_it_and_plays_it(qtbot, receiver, jack_server,
                                                                                 tmp_path, request):
    """Right-click density → MIDI learn → move a knob: bound, in the tooltip and the list, saved
    with the preset, and in the next take the knob moves density; a pad learned on Rec records."""
    pytest.importorskip("pytestqt")
    from PyQt6.QtCore import QPoint
    from PyQt6.QtWidgets import QMenu

    from livegen.gui.app import application
    from livegen.gui.window import MainWindow

    def learn_on(widget, label):
        widget.customContextMenuRequested.emit(QPoint(4, 4))
        menu = widget.findChildren(QMenu)[-1]
        action, = [a for a in menu.actions() if a.text() == label]
        action.trigger()
        menu.close()

    controller = Controller(f"pad-{request.node.name[:12]}")
    application()
    preset = presets.Preset()
    preset.output.api, preset.output.port = "jack", receiver.name
    window = MainWindow(preset)
    qtbot.addWidget(window)
    window.show()
    try:
        time.sleep(0.3)
        learn_on(window.gesture.density, "MIDI learn density")
        assert window.midi_learn.listening and "Move a control" in window.bindings_panel.status.text()
        controller.send(type="note_on", note=50, velocity=0, channel=0)  # a release is not a move
        controller.send(type="control_change", control=30, value=10, channel=3)
        qtbot.waitUntil(lambda: len(window.base_preset.midi_learn) == 1, timeout=5000)
        binding, = window.base_preset.midi_learn
        assert (binding.source, binding.number, binding.channel, binding.target) == ("cc", 30, 4, "density")
        assert not window.midi_learn.listening  # learning ends with the first move
        assert "CC 30, channel 4" in window.gesture.density.toolTip()
        assert window.bindings_panel.list.count() == 1

        learn_on(window.transport.record, "MIDI learn record")
        controller.send(type="note_on", note=40, velocity=100, channel=9)
        qtbot.waitUntil(lambda: len(window.base_preset.midi_learn) == 2, timeout=5000)

        saved = tmp_path / "with-knobs.toml"
        window.save_preset(str(saved))
        assert presets.load(str(saved)).midi_learn == window.base_preset.midi_learn

        window.play()
        qtbot.waitUntil(lambda: window.takes.engine is not None and window.takes.engine.now() > 0, timeout=30_000)
        qtbot.waitUntil(lambda: window.takes.runner.inputs is not None
                        and all(window.takes.runner.inputs.ports.values()), timeout=5000)
        controller.send(type="control_change", control=30, value=127, channel=3)
        qtbot.waitUntil(lambda: window.hub.controls.density == pytest.approx(1.0), timeout=5000)
        controller.send(type="note_on", note=40, velocity=100, channel=9)
        qtbot.waitUntil(lambda: window.recording is not None, timeout=5000)

        window.bindings_panel.list.setCurrentRow(0)
        window.bindings_panel.delete.click()
        assert [b.target for b in window.base_preset.midi_learn] == ["record"]
        assert "MIDI:" not in window.gesture.density.toolTip()
    finally:
        window.close()
        controller.close()


def test_learn_midi_into_a_shipped_preset_writes_the_users_copy(jack_server, request, livegen_home):
    """``--preset default`` never writes into the package: the user's copy is made from the shipped
    preset, comments and all, and holds the binding."""
    from livegen import paths

    short = f"pedal-{request.node.name[-10:]}"
    controller = Controller(short)
    shipped = presets.DEFAULT.read_text(encoding="utf-8")
    try:
        time.sleep(0.3)
        with subprocess.Popen(livegen_cmd("learn-midi", "--api", "jack", "--midi-in", short, "--target", "record",
                                          "--preset", "default", "--timeout", "20"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            first = proc.stdout.readline()
            controller.send(type="control_change", control=64, value=127, channel=0)
            said = first + proc.stdout.read()
            status = proc.wait(10)
    finally:
        controller.close()
    assert status == 0, said
    assert presets.DEFAULT.read_text(encoding="utf-8") == shipped
    mine = paths.presets_dir() / "default.toml"
    text = mine.read_text(encoding="utf-8")
    assert shipped.splitlines()[0] in text  # the shipped preset's opening comment
    binding, = presets.load(str(mine)).midi_learn
    assert (binding.source, binding.number, binding.target) == ("cc", 64, "record")
