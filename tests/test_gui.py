"""The control panel, driven through its real widgets (pytest-qt, offscreen) against a real JACK
server: play, panic, record, a vanished port, presets, a bad checkpoint, booth mode, the screenshot."""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from PyQt6.QtCore import QPoint, Qt  # noqa: E402

from conftest import START_MS, ClockBand, Receiver, livegen_cmd, shared_data, wait_playing  # noqa: E402
from livegen import paths, presets  # noqa: E402
from livegen.gui.app import BoothMode  # noqa: E402
from livegen.sensors.learn import EmgSettings  # noqa: E402
from livegen.sensors.learn.live import settle_seconds  # noqa: E402

LEFT = Qt.MouseButton.LeftButton


def wait_stopped(qtbot, window):
    qtbot.waitUntil(lambda: window.takes.engine is None and not window.takes.busy, timeout=START_MS)


def note_pairs(messages):
    return [(m.type if m.type == "note_off" or m.velocity else "note_off", m.note)
            for m in messages if m.type in ("note_on", "note_off")]


def test_play_sends_notes_to_the_port_shows_them_and_stop_ends_them(make_window, receiver, qtbot):
    window = make_window(receiver.name)
    qtbot.mouseClick(window.transport.play, LEFT)
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: len(receiver.notes()) >= 10, timeout=START_MS)
    qtbot.waitUntil(lambda: len(window.roll.notes) >= 5, timeout=5000)  # the piano roll shows what was sent
    assert window.transport.play.isChecked() and "playing on" in window.transport.status.text()
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)
    qtbot.wait(300)
    assert receiver.hanging() == 0 and not window.transport.play.isChecked()
    received = {m.note for m in receiver.notes() if m.type == "note_on" and m.velocity}
    assert {pitch for _, _, pitch, _ in window.roll.notes} <= received


def test_space_plays_and_stops_and_escape_panics(make_window, receiver, qtbot):
    window = make_window(receiver.name)
    with qtbot.waitActive(window):
        window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: len(receiver.notes()) >= 4, timeout=START_MS)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: any(m.type == "control_change" and m.control == 123 for _, m in receiver.messages),
                    timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_stopped(qtbot, window)


def test_panic_ends_every_sounding_note_at_once(make_window, receiver, qtbot):
    window = make_window(receiver.name)
    qtbot.mouseClick(window.transport.play, LEFT)
    qtbot.waitUntil(lambda: len(receiver.notes()) >= 20, timeout=START_MS)
    qtbot.mouseClick(window.transport.panic, LEFT)

    def all_notes_off_index():
        return next((i for i, (_, m) in enumerate(list(receiver.messages))
                     if m.type == "control_change" and m.control == 123), None)

    qtbot.waitUntil(lambda: all_notes_off_index() is not None, timeout=5000)
    before = list(receiver.messages)[:all_notes_off_index()]
    sounding = {}
    for _, m in before:
        if m.type in ("note_on", "note_off"):
            key = (m.channel, m.note)
            sounding[key] = sounding.get(key, 0) + (1 if m.type == "note_on" and m.velocity else -1)
    assert all(v <= 0 for v in sounding.values()), "notes still sounding when all-notes-off came"
    assert window.takes.engine.running  # panic silences, the take goes on
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)


def test_record_writes_a_valid_midi_file_with_what_the_port_received(make_window, receiver, qtbot, tmp_path):
    window = make_window(receiver.name)
    take = window.transport.take.text()
    qtbot.mouseClick(window.transport.record, LEFT)
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: window.transport.elapsed.text() != "0:00", timeout=START_MS)
    assert window.transport.record.isChecked() and window.recording == take
    qtbot.waitUntil(lambda: len(receiver.notes()) >= 10, timeout=START_MS)
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)
    qtbot.wait(300)
    assert Path(take).parent == paths.takes_dir()  # the default folder, not the working directory
    recorded = note_pairs(mido.MidiFile(take))
    assert len(recorded) >= 10 and recorded == note_pairs(receiver.notes())
    assert window.transport.take.text() != take  # the next take will not overwrite this one


def test_a_vanished_port_shows_an_error_and_reconnect_plays_again(make_window, jack_server, qtbot):
    gone = Receiver("lg-vanishing")
    qtbot.wait(300)
    window = make_window(gone.name)
    qtbot.mouseClick(window.transport.play, LEFT)
    qtbot.waitUntil(lambda: len(gone.notes()) >= 4, timeout=START_MS)
    gone.close()
    qtbot.waitUntil(lambda: window.banner.isVisible() and "is gone" in window.banner.text.text(), timeout=10_000)
    assert window.banner.action.isVisible() and window.takes.engine.running  # alive, still playing
    back = Receiver("lg-vanishing")
    qtbot.wait(300)
    try:
        qtbot.mouseClick(window.banner.action, LEFT)
        qtbot.waitUntil(lambda: len(back.notes()) >= 4, timeout=START_MS)
        assert not window.banner.isVisible()
        qtbot.mouseClick(window.transport.stop, LEFT)
        wait_stopped(qtbot, window)
    finally:
        back.close()


def test_the_preset_dialogs_open_in_the_users_presets_folder(make_window, qtbot, monkeypatch):
    from PyQt6.QtWidgets import QFileDialog, QPushButton

    asked = []
    for kind, name in (("load", "getOpenFileName"), ("save", "getSaveFileName")):
        monkeypatch.setattr(QFileDialog, name, lambda parent, title, folder, kinds, kind=kind:
                            asked.append((kind, folder)) or ("", ""))
    window = make_window()
    buttons = {b.text(): b for b in window.preset_panel.findChildren(QPushButton)}
    qtbot.mouseClick(buttons["Load…"], LEFT)  # no preset of the user's yet: the shipped ones
    qtbot.mouseClick(buttons["Save…"], LEFT)
    qtbot.mouseClick(buttons["Load…"], LEFT)
    mine = str(paths.presets_dir())
    assert asked == [("load", str(presets.SHIPPED_PRESETS)), ("save", mine), ("load", mine)]
    assert paths.presets_dir().is_dir()


def test_preset_save_then_load_round_trips_every_control(make_window, qtbot, tmp_path, monkeypatch):
    script = tmp_path / "gesture.jsonl"
    script.write_text('{"t": 0.0, "pitch": 0.3}\n')
    window = make_window()
    window.output.channel.setValue(5)
    window.output.set_program(10)
    window.output.soundfont.setText("/fonts/Stage Piano.sf2")
    window.output.set_ports(["Drum machine"])  # as the port list would offer it
    window.output.clock_out.setCurrentIndex(window.output.clock_out.findData("Drum machine"))
    window.model.temperature.setValue(0.8)
    window.model.lookahead.setValue(0.5)
    window.model.seed.setValue(42)
    window.harmony.key.setCurrentText("A minor")
    window.harmony.sliders.sliders[1].setValue(40)  # a custom touch: C# into A minor
    pad = window.gesture.pad
    qtbot.mouseClick(pad, LEFT, pos=QPoint(pad.width() // 4, pad.height() // 4))
    choose_script(window, monkeypatch, script)
    window.sensors.setCurrentWidget(window.muscles)
    window.muscles.source.setEditText("bled112")
    window.muscles.theme.setCurrentText("C")
    bars = window.muscles.z
    qtbot.waitUntil(lambda: bars.width() > 100 and bars.height() > 40)
    qtbot.mousePress(bars, LEFT, pos=QPoint(int(5.5 * bars.width() / 8), 4))  # z5 near +1
    window.commentary.every.setValue(4)
    window.commentary.lcgan.setChecked(False)
    window.commentary.setChecked(False)
    saved = window.preset()
    window.save_preset(str(tmp_path / "mine.toml"))
    assert window.preset_panel.name.text() == "mine"
    assert saved.controls.pitch == pytest.approx(0.75, abs=0.02)
    assert saved.controls.density == pytest.approx(0.25, abs=0.02)
    assert saved.gui.histogram[1] == 0.4 and saved.output.channel == 5
    assert (saved.output.soundfont, saved.output.clock_out, saved.model.seed) == ("/fonts/Stage Piano.sf2",
                                                                                 "Drum machine", 42)
    assert saved.gui.gesture_source == f"script:{script}" and saved.emg.source == "bled112"
    assert saved.gui.dcrnn_theme == "C" and saved.gui.dcrnn_z[5] > 0.8 and saved.gui.dcrnn_z.count(0.0) == 7
    assert (saved.gui.commentary, saved.gui.comment_every, saved.gui.comment_lcgan) == (False, 4, False)

    other = make_window()
    other.load_preset(str(tmp_path / "mine.toml"))
    assert other.preset() == saved == presets.load(str(tmp_path / "mine.toml"))
    assert other.harmony.key.currentText().startswith("Custom") and other.harmony.sliders.sliders[1].value() == 40
    assert other.output.channel.value() == 5 and other.hub.controls.histogram[1] == 0.4
    assert other.output.soundfont.text() == "/fonts/Stage Piano.sf2" and other.output.clock_port() == "Drum machine"
    assert other.model.seed.value() == 42 and other.muscles.source.currentText() == "bled112"
    assert other.gesture.source.currentText() == "Script: gesture.jsonl" and other.script_path == str(script)
    assert other.muscles.theme.currentText() == "C" and other.hub.controls.theme == "C"
    assert other.hub.controls.z == tuple(saved.gui.dcrnn_z)
    assert not other.commentary.isChecked() and not other.commentary.now.isEnabled()
    assert other.commentary.every.value() == 4 and not other.commentary.lcgan.isChecked()


@pytest.mark.parametrize("source,error", [("camera", "Camera:"), ("script:no-such.jsonl", "Control script:")])
def test_a_preset_whose_gesture_source_cannot_open_is_one_line_on_the_panel(make_window, tmp_path, source, error):
    window = make_window()
    (tmp_path / "stage.toml").write_text(f'[gui]\ngesture_source = "{source}"\n'
                                         f'[camera]\nsource = "{tmp_path / "no-such-clip.avi"}"\n')
    window.load_preset(str(tmp_path / "stage.toml"))
    assert window.banner.isVisible() and window.banner.text.text().startswith(error)
    assert "\n" not in window.banner.text.text() and window.preset_panel.name.text() == "stage"
    assert window.gesture.source.currentData() == "pad" and window.source is None and window.script_path is None


def test_a_corrupt_checkpoint_shows_an_error_and_the_panel_lives_on(make_window, qtbot, tmp_path):
    window = make_window()
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    window.choose_checkpoint(str(bad))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=START_MS)
    assert "not a readable safetensors" in window.banner.text.text()
    assert window.model.model.currentData() == "charrnn"
    shipped = [window.model.model.itemData(i) for i in range(window.model.model.count())]
    assert shipped == ["charrnn", "dcrnn", "expressive"]  # the broken one is gone, the shipped ones stay
    window.model.forget("expressive")
    assert window.model.model.findData("expressive") == 2


def test_a_bad_preset_file_shows_an_error(make_window, tmp_path):
    window = make_window()
    (tmp_path / "typo.toml").write_text("[engine]\nlookahed = 0.2\n")
    window.load_preset(str(tmp_path / "typo.toml"))
    assert window.banner.isVisible() and "engine.lookahed is unknown" in window.banner.text.text()


def test_booth_mode_locks_plays_and_returns_to_the_reset_preset_when_idle(make_window, qtbot):
    window = make_window(booth=True, idle_reset=1.5)
    booth = BoothMode(window, window.base_preset.gui)
    booth.begin()
    wait_playing(qtbot, window)
    assert window.locked and not window.transport.stop.isEnabled() and not window.columns["left"].isEnabled()
    assert window.transport.panic.isEnabled() and window.gesture.pad.isEnabled()  # visitors play; panic stays
    first = window.takes.engine
    window.harmony.key.setCurrentText("D minor")  # as if someone had changed it before locking
    qtbot.waitUntil(lambda: window.harmony.key.currentText().startswith("Free"), timeout=10_000)
    qtbot.waitUntil(lambda: window.takes.engine is not None and window.takes.engine is not first, timeout=START_MS)
    window.set_locked(False)
    assert window.transport.stop.isEnabled()


def test_importing_the_cli_does_not_load_qt():
    code = "import sys, livegen.cli; livegen.cli.build_parser(); print(any('PyQt6' in m for m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "False", run.stderr


def test_screenshot_runs_the_panel_and_saves_a_picture(tmp_path):
    from PyQt6.QtGui import QImage

    out = tmp_path / "panel.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", JACK_DEFAULT_SERVER="livegen-no-such-server")
    run = subprocess.run(livegen_cmd("gui", "--screenshot", str(out)), capture_output=True, text=True,
                         timeout=90, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    image = QImage(str(out))
    assert image.width() >= 1000 and image.height() >= 600


def test_without_a_display_the_panel_says_so_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    run = subprocess.run(livegen_cmd("gui"), capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert run.returncode == 2 and "no display here" in run.stderr and "Traceback" not in run.stderr


def test_the_camera_view_shows_the_tracked_hand_and_steers_the_music(make_window, qtbot, tmp_path):
    import cv2

    from livegen.bench.camera import bench_scene

    clip = tmp_path / "hand.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for frame in bench_scene(320, 240, count=90):  # a hand with a green marker moving across a room
        writer.write(frame)
    writer.release()
    window = make_window()
    window.base_preset.camera.source, window.base_preset.camera.tracker = str(clip), "color"
    window.gesture.source.setCurrentIndex(window.gesture.source.findData("camera"))
    qtbot.waitUntil(lambda: window.gesture.camera.hand is not None, timeout=10_000)
    assert window.gesture.view.currentWidget() is window.gesture.camera
    assert window.gesture.camera_light.state == "connected"
    qtbot.waitUntil(lambda: window.gesture.hand_light.state == "connected", timeout=5000)  # the hand, tracked
    assert window.stage.hand._text.text() == "tracked" and window.stage.camera_light.state == "connected"
    qtbot.waitUntil(lambda: window.hub.controls.density != 0.8, timeout=5000)  # the hand moved the controls
    qtbot.waitUntil(lambda: window.gesture.camera_light.state == "lost", timeout=10_000)  # the clip ended


def test_a_camera_that_cannot_open_is_an_error_and_the_pad_stays(make_window, tmp_path):
    window = make_window()
    window.base_preset.camera.source = str(tmp_path / "no-such-clip.avi")
    window.gesture.source.setCurrentIndex(window.gesture.source.findData("camera"))
    assert window.banner.isVisible() and window.banner.text.text().startswith("Camera:")
    assert window.gesture.source.currentData() == "pad" and window.source is None


def test_the_dcrnn_and_its_tempo_are_chosen_in_the_panel_and_saved(qtbot, tmp_path):
    from livegen import presets
    from livegen.gui.panels import ModelPanel

    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.show_preset(presets.Preset())
    panel.select("dcrnn")
    panel.tempo.setValue(96)
    preset = presets.Preset()
    panel.fill(preset)
    assert preset.model.model == "dcrnn" and preset.engine.bpm == 96.0
    presets.save(preset, tmp_path / "p.toml")
    assert presets.load(str(tmp_path / "p.toml")).engine.bpm == 96.0


def test_the_z_bars_play_the_dcrnn_and_the_hand_never_overwrites_them(make_window, qtbot):
    window = make_window()
    window.model.select("dcrnn")
    assert window.sensors.currentWidget() is window.muscles  # the DCRNN is played through z
    bars = window.muscles.z
    qtbot.waitUntil(lambda: bars.width() > 100 and bars.height() > 40)
    slot = bars.width() / 8
    qtbot.mousePress(bars, LEFT, pos=QPoint(int(2.5 * slot), 4))  # the top of bar 2: z2 near +1
    z = window.hub.controls.z
    assert z is not None and z[2] > 0.8 and all(v == 0 for i, v in enumerate(z) if i != 2)
    window.muscles.theme.setCurrentText("C")
    window.gesture.pitch.setValue(20)  # the hand moves: pitch changes, z and theme stay
    controls = window.hub.controls
    assert controls.pitch == 0.2 and controls.z == z and controls.theme == "C"
    window._tick()
    assert window.muscles.z.values[2] == z[2]


def test_the_armband_plays_z_shows_its_levels_and_calibrates_from_the_panel(make_window, qtbot, monkeypatch):
    from livegen.gui import window as window_module
    from livegen.sensors.emg.processing import Calibration, profile_path

    monkeypatch.setattr(window_module, "CAPTURE_SECONDS", 0.5)
    recording = shared_data("emg", "myo-readings", "12345-1", "7.txt")  # rest and fist, alternating
    window = make_window()
    window.muscles.source.setEditText(f"replay:{recording},loop")
    qtbot.mouseClick(window.muscles.connect, LEFT)
    assert window.armband is not None, window.banner.text.text()
    qtbot.waitUntil(lambda: window.muscles.light.state == "connected" and max(window.muscles.levels.values) > 0,
                    timeout=10_000)
    qtbot.waitUntil(lambda: window.hub.controls.z is not None, timeout=10_000)
    assert not window.muscles.z.editable and not window.muscles.source.isEnabled()
    for button in (window.muscles.rest, window.muscles.max):
        qtbot.waitUntil(button.isEnabled, timeout=5_000)
        qtbot.mouseClick(button, LEFT)
        assert not button.isEnabled()  # recording this phase
    qtbot.waitUntil(lambda: profile_path("default").exists(), timeout=10_000)
    assert window.armband.calibrated and len(Calibration.load(profile_path("default")).rest) == 8
    qtbot.mouseClick(window.muscles.connect, LEFT)  # disconnect: the mouse plays z again
    assert window.armband is None and window.muscles.z.editable and window.muscles.light.state == "off"


def test_a_wrong_armband_port_is_an_error_on_the_panel(make_window, qtbot):
    window = make_window()
    window.muscles.source.setEditText("serial:/dev/no-such-port,115200,csv")
    qtbot.mouseClick(window.muscles.connect, LEFT)
    assert window.armband is None and window.banner.isVisible()
    assert window.banner.text.text().startswith("Armband:")


def test_the_built_in_synth_is_an_output_the_panel_offers_and_plays(make_window, jack_server, qtbot):
    window = make_window()
    window.output.api.setCurrentText("fluidsynth")
    window._check_ports()
    qtbot.waitUntil(lambda: window.output.port.findText("fluidsynth") >= 0, timeout=10_000)
    window.play()
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: window.readout.sent > 5, timeout=START_MS)
    assert window.takes.engine.output.api == "fluidsynth" and not window.banner.isVisible()
    window.stop()
    wait_stopped(qtbot, window)


def test_a_recorded_take_is_listed_and_replays_note_for_note(make_window, receiver, qtbot, tmp_path):
    window = make_window(receiver.name)
    take = window.transport.take.text()
    qtbot.mouseClick(window.transport.record, LEFT)
    wait_playing(qtbot, window)
    for pitch in (20, 80, 40, 90):  # the hand moves while recording
        qtbot.wait(400)
        window.gesture.pitch.setValue(pitch)
    qtbot.waitUntil(lambda: len(receiver.notes()) >= 10, timeout=START_MS)
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)
    receiver.settle()
    recorded = note_pairs(mido.MidiFile(take))
    window.list_takes()
    assert window.takes_panel.list.count() == 1
    listed = window.takes_panel.list.item(0).data(Qt.ItemDataRole.UserRole)
    assert listed.midi.resolve() == Path(take).resolve() and listed.ended and listed.duration > 1
    receiver.messages.clear()
    window.gesture.pitch.setValue(5)  # the panel's controls do not steer a replay
    qtbot.mouseClick(window.takes_panel.replay, LEFT)
    wait_playing(qtbot, window)
    wait_stopped(qtbot, window)  # it stops by itself at the take's end
    receiver.settle()
    assert note_pairs(receiver.notes()) == recorded and receiver.hanging() == 0


def test_the_commentary_panel_writes_about_the_take_and_saves_beside_it(make_window, receiver, qtbot, tmp_path):
    window = make_window(receiver.name)
    window.commentary.every.setValue(0)  # only on request
    take = window.transport.take.text()
    qtbot.mouseClick(window.transport.record, LEFT)
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: window.readout.sent > 20, timeout=START_MS)
    qtbot.mouseClick(window.commentary.now, LEFT)
    first = window.commentary.sentence.text()
    qtbot.waitUntil(lambda: window.commentary.sentence.text() != first, timeout=60_000)
    assert len(window.commentary.sentence.text().split()) >= 5 and window.commentary.attributes.text()
    history = Path(take.replace(".mid", ".commentary.jsonl"))
    qtbot.waitUntil(history.exists, timeout=5_000)
    assert window.commentary.sentence.text() in history.read_text()
    window.stop()
    wait_stopped(qtbot, window)


def tick(qtbot, box) -> None:
    """Click a check box on its box (a box stretched across a column is not hit in its middle)."""
    qtbot.mouseClick(box, LEFT, pos=QPoint(10, box.height() // 2))


def test_the_lcgan_box_chooses_how_the_commentary_samples_and_off_stops_it(make_window, receiver, qtbot):
    window = make_window(receiver.name)
    window.commentary.every.setValue(0)  # only on request
    assert window.commentary.lcgan.isChecked()  # the default preset's choice
    tick(qtbot, window.commentary.lcgan)
    assert not window.commentary.lcgan.isChecked()
    qtbot.mouseClick(window.transport.play, LEFT)
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: window.readout.sent > 20, timeout=START_MS)

    def comment_now():
        """The Comment the real worker (shipped model) writes when "Comment now" is clicked."""
        written = len(window.commentator.history) if window.commentator is not None else 0
        qtbot.mouseClick(window.commentary.now, LEFT)
        qtbot.waitUntil(lambda: window.commentator is not None and len(window.commentator.history) > written,
                        timeout=60_000)
        return window.commentator.history[-1]

    assert comment_now().steered is False  # sampled from the prior
    tick(qtbot, window.commentary.lcgan)
    steered = comment_now()
    assert steered.steered is True and steered.to_json()["lcgan"] is True
    qtbot.waitUntil(lambda: window.commentary.sentence.text() == steered.text, timeout=5000)
    window.commentary.setChecked(False)
    assert not window.commentary.now.isEnabled() and window.commentary.sentence.text().startswith("Commentary off")
    window._tick()
    assert window.commentator.interval >= 86_400  # off: the worker writes nothing more
    window.stop()
    wait_stopped(qtbot, window)


def test_the_clock_out_port_chosen_in_the_panel_gets_start_ticks_at_the_tempo_and_stop(make_window, receiver,
                                                                                      qtbot):
    import rtmidi

    start, tick, stop = 0xFA, 0xF8, 0xFC
    received = []  # (arrival time, status byte)
    clock_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="test-lg-clock")
    clock_in.ignore_types(sysex=True, timing=False, active_sense=True)  # keep the clock (mido's inputs drop it)
    clock_in.set_callback(lambda event, _=None: received.append((time.monotonic(), event[0][0])))
    clock_in.open_virtual_port("lg-clock")
    try:
        window = make_window(receiver.name)
        window.model.tempo.setValue(150)
        ports = window.output.clock_out

        def listed():
            return next((i for i in range(ports.count()) if "lg-clock" in (ports.itemData(i) or "")), None)

        qtbot.waitUntil(lambda: listed() is not None, timeout=10_000)
        ports.setCurrentIndex(listed())
        qtbot.mouseClick(window.transport.play, LEFT)
        wait_playing(qtbot, window)
        qtbot.waitUntil(lambda: sum(status == tick for _, status in received) >= 4 * 24, timeout=10_000)
        assert window.takes.engine.clock_out[0] == "jack" and received[0][1] == start
        ticks = [t for t, status in received if status == tick][24:]  # from the second beat: settled
        assert (ticks[-1] - ticks[0]) / ((len(ticks) - 1) / 24) == pytest.approx(60 / 150, rel=0.05)
        qtbot.mouseClick(window.transport.stop, LEFT)
        wait_stopped(qtbot, window)
        qtbot.waitUntil(lambda: received[-1][1] == stop, timeout=5000)
    finally:
        clock_in.close_port()
        clock_in.delete()


def test_r_starts_a_recording_and_r_again_stops_it_leaving_a_valid_file(make_window, receiver, qtbot, tmp_path):
    window = make_window(receiver.name)
    with qtbot.waitActive(window):
        window.activateWindow()
    take = window.transport.take.text()
    qtbot.keyClick(window, Qt.Key.Key_R)
    wait_playing(qtbot, window)
    first = window.takes.engine
    assert window.recording == take and first.record == take
    qtbot.waitUntil(lambda: window.transport.record.isChecked() and len(receiver.notes()) >= 10, timeout=START_MS)
    qtbot.keyClick(window, Qt.Key.Key_R)
    assert window.recording is None and window.transport.take.text() != take  # the next take gets a new name
    qtbot.waitUntil(lambda: first.record is None and not window.takes.busy, timeout=5000)
    assert window.takes.engine is first and first.running  # the music goes on in the same take, unrecorded
    qtbot.waitUntil(lambda: not window.transport.record.isChecked(), timeout=5000)
    recorded = note_pairs(mido.MidiFile(take))
    assert len(recorded) >= 10 and sum(kind == "note_on" for kind, _ in recorded) == sum(
        kind == "note_off" for kind, _ in recorded)  # a closed take: every note ended
    window.stop()
    wait_stopped(qtbot, window)


def test_booth_mode_plays_on_through_a_dead_clock_and_restarts_an_engine_that_failed(make_window, receiver, qtbot):
    import os
    import signal

    from livegen.engine.engine import MAX_CLOCK_RESTARTS

    window = make_window(receiver.name, booth=True, idle_reset=0.0)
    booth = BoothMode(window, window.base_preset.gui)
    booth.begin()
    wait_playing(qtbot, window)
    first = window.takes.engine
    qtbot.waitUntil(lambda: len(receiver.notes()) >= 4, timeout=START_MS)
    os.kill(first._proc.pid, signal.SIGKILL)  # the clock process dies, as under kill -9
    qtbot.waitUntil(lambda: first.stats.clock_restarts == 1, timeout=10_000)
    before = len(receiver.notes())
    qtbot.waitUntil(lambda: len(receiver.notes()) >= before + 10, timeout=START_MS)  # a new clock plays on
    assert window.takes.engine is first and first.running
    for kill in range(MAX_CLOCK_RESTARTS):  # a clock that keeps dying fails the take
        qtbot.waitUntil(lambda: first.stats.clock_restarts == kill + 1 and first._proc.is_alive(), timeout=10_000)
        os.kill(first._proc.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: first.failed is not None, timeout=10_000)
    qtbot.waitUntil(lambda: window.banner.isVisible() and "engine stopped" in window.banner.text.text(),
                    timeout=5000)
    receiver.settle()
    assert receiver.hanging() == 0
    before = len(receiver.notes())
    qtbot.waitUntil(lambda: window.takes.engine is not None and window.takes.engine is not first
                    and window.takes.engine.running, timeout=START_MS)
    qtbot.waitUntil(lambda: len(receiver.notes()) >= before + 10, timeout=START_MS)  # it plays again
    assert not window.banner.isVisible() and window.locked
    window.set_locked(False)
    window.stop()
    wait_stopped(qtbot, window)


def play_a_take(qtbot, window, count: int):
    """Play a take from the panel's Play button: (its engine, its first ``count`` messages sent)."""
    qtbot.mouseClick(window.transport.play, LEFT)
    wait_playing(qtbot, window)
    engine = window.takes.engine
    qtbot.waitUntil(lambda: len(window.played.sent_messages) >= count, timeout=START_MS)
    messages = [(round(t, 6), list(message)) for t, message in list(window.played.sent_messages)[:count]]
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)
    return engine, messages


def test_the_seed_and_steering_chosen_in_the_panel_start_the_engine_and_the_seed_repeats_the_take(
        make_window, receiver, qtbot):
    window = make_window(receiver.name)
    window.model.seed.setValue(7)
    assert window.model.steering.isChecked()
    qtbot.mouseClick(window.model.steering, LEFT)
    assert not window.model.steering.isChecked()
    engine, first = play_a_take(qtbot, window, 40)
    assert engine.settings.seed == 7 and engine.settings.steering is False
    assert play_a_take(qtbot, window, 40)[1] == first  # same seed, same (still) hand: the same notes
    window.model.seed.setValue(8)
    engine, other = play_a_take(qtbot, window, 40)
    assert engine.settings.seed == 8 and other != first


def test_steering_off_is_saved_in_the_preset_and_loaded_back(make_window, qtbot, tmp_path):
    window = make_window()
    qtbot.mouseClick(window.model.steering, LEFT)
    window.save_preset(str(tmp_path / "unsteered.toml"))
    assert presets.load(str(tmp_path / "unsteered.toml")).engine.steering is False
    other = make_window()
    other.load_preset(str(tmp_path / "unsteered.toml"))
    assert not other.model.steering.isChecked()


def test_the_built_in_synth_plays_the_soundfont_chosen_in_the_panel(make_window, jack_server, qtbot, tmp_path,
                                                                    monkeypatch):
    from PyQt6.QtWidgets import QFileDialog

    from livegen.midi.fluidsynth import DEFAULT_SOUNDFONT

    window = make_window()
    assert window.output.soundfont.isHidden()  # only the built-in synth has a SoundFont
    window.output.api.setCurrentText("fluidsynth")
    assert not window.output.soundfont.isHidden() and window.output.virtual.isHidden()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: (DEFAULT_SOUNDFONT, "SoundFonts (*.sf2)"))
    qtbot.mouseClick(window.output.choose_soundfont, LEFT)
    assert window.output.soundfont.text() == DEFAULT_SOUNDFONT
    window.play()
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: window.readout.sent > 5, timeout=START_MS)
    assert window.takes.engine.output.soundfont == DEFAULT_SOUNDFONT and not window.banner.isVisible()
    window.stop()
    wait_stopped(qtbot, window)

    not_a_soundfont = tmp_path / "notes.sf2"
    not_a_soundfont.write_text("these are not samples")
    window.output.soundfont.setText(str(not_a_soundfont))
    qtbot.mouseClick(window.transport.play, LEFT)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=START_MS)
    assert "is not a SoundFont" in window.banner.text.text() and "\n" not in window.banner.text.text()
    wait_stopped(qtbot, window)
    assert not window.transport.play.isChecked()


def choose_script(window, monkeypatch, path) -> None:
    """Pick "Control script…" in the gesture source list and ``path`` in its file dialog."""
    from PyQt6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: (str(path), "Control scripts (*.jsonl)"))
    window.gesture.source.setCurrentIndex(window.gesture.source.findData("script"))


def test_a_control_script_chosen_as_the_gesture_steers_each_take_from_its_start(make_window, receiver, qtbot,
                                                                                tmp_path, monkeypatch):
    import json

    from livegen.music.conditioning import key_histogram

    script = tmp_path / "gesture.jsonl"
    script.write_text("\n".join(json.dumps(row) for row in (
        {"t": 0.0, "pitch": 0.2, "density": 0.3}, {"t": 0.8, "pitch": 0.9, "key": "A minor"},
        {"t": 1.6, "density": 0.7})) + "\n")
    window = make_window(receiver.name)
    choose_script(window, monkeypatch, script)
    assert window.gesture.source.currentText() == "Script: gesture.jsonl" and not window.banner.isVisible()
    take = window.transport.take.text()
    qtbot.mouseClick(window.transport.record, LEFT)
    wait_playing(qtbot, window)
    qtbot.waitUntil(lambda: window.hub.controls.density == 0.7, timeout=10_000)
    controls = window.hub.controls
    assert controls.pitch == 0.9 and controls.histogram == tuple(key_histogram("A minor"))
    qtbot.waitUntil(lambda: window.gesture.pad.pitch == 0.9, timeout=2000)  # the pad shows where it holds the hand
    # a change governs from 5 ms after its time: stop once the last one has played
    qtbot.waitUntil(lambda: window.takes.engine.now() > 1.7, timeout=5000)
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)
    rows = [json.loads(line) for line in Path(take).with_suffix(".jsonl").read_text().splitlines()]
    steered = {(key, row[key]): row["t"] for row in rows for key in ("pitch", "density") if key in row}
    assert steered[("pitch", 0.2)] == 0.0  # the engine heard each line at its time in the take
    assert steered[("pitch", 0.9)] == pytest.approx(0.8, abs=0.05)
    assert steered[("density", 0.7)] == pytest.approx(1.6, abs=0.05)
    window.gesture.source.setCurrentIndex(window.gesture.source.findData("pad"))
    assert window.script_path is None and window.gesture.source.itemText(2) == window.gesture.SCRIPT


def test_a_broken_control_script_is_one_line_on_the_panel_and_the_pad_stays(make_window, tmp_path, monkeypatch):
    script = tmp_path / "typo.jsonl"
    script.write_text('{"t": 0.0, "pitch": 0.5}\n{"t": 1.0, "pich": 0.7}\n')
    window = make_window()
    choose_script(window, monkeypatch, script)
    assert window.banner.isVisible() and "line 2: unknown key 'pich'" in window.banner.text.text()
    assert window.gesture.source.currentData() == "pad" and window.script_path is None


def test_a_control_script_chosen_while_playing_steers_the_take_from_then(make_window, qtbot, tmp_path,
                                                                         monkeypatch):
    script = tmp_path / "late.jsonl"
    script.write_text('{"t": 0.0, "pitch": 0.1}\n{"t": 1.0, "pitch": 0.6}\n')
    window = make_window()
    window.play()
    wait_playing(qtbot, window)
    chosen_at = window.takes.engine.now()
    choose_script(window, monkeypatch, script)
    qtbot.waitUntil(lambda: window.hub.controls.pitch == 0.1, timeout=5000)
    qtbot.waitUntil(lambda: window.hub.controls.pitch == 0.6, timeout=5000)
    assert window.takes.engine.now() - chosen_at >= 1.0  # the script's t = 0 is when it was chosen
    window.stop()
    wait_stopped(qtbot, window)


def test_a_preset_with_a_layer_plays_both_models_and_records_a_track_each(make_window, receiver, qtbot, tmp_path):
    window = make_window(receiver.name)
    layered = window.preset()
    layered.layers = [presets.LayerPreset(model="dcrnn", channel=2, program=33)]
    window.apply_preset(layered, "band")
    take = window.transport.take.text()
    qtbot.mouseClick(window.transport.record, LEFT)
    wait_playing(qtbot, window)
    assert [layer.model.kind for layer in window.takes.engine.layers] == ["charrnn", "dcrnn"]
    qtbot.waitUntil(lambda: {m.channel for m in receiver.notes()} == {0, 1} and len(receiver.notes()) >= 20,
                    timeout=START_MS)
    qtbot.mouseClick(window.transport.stop, LEFT)
    wait_stopped(qtbot, window)
    qtbot.wait(300)
    recorded = mido.MidiFile(take)
    assert recorded.type == 1 and [t.name for t in recorded.tracks] == ["livegen take", "1 charrnn ch1", "2 dcrnn ch2"]
    assert sorted(note_pairs(m for t in recorded.tracks[1:] for m in t)) == sorted(note_pairs(receiver.notes()))
    assert presets.parse(presets.dumps(window.preset())).layers == layered.layers  # saving keeps the layers
    receiver.messages.clear()
    window.apply_preset(presets.Preset(output=window.preset().output), "plain")  # the take brings its own layers
    window.list_takes()
    qtbot.mouseClick(window.takes_panel.replay, LEFT)
    wait_playing(qtbot, window)
    wait_stopped(qtbot, window)
    receiver.settle()
    for channel, track in ((0, recorded.tracks[1]), (1, recorded.tracks[2])):
        assert note_pairs(m for m in receiver.notes() if m.channel == channel) == note_pairs(track)


def test_the_tempo_follows_a_midi_clock_chosen_in_the_panel_and_closing_leaves_its_port(make_window, jack_server,
                                                                                         qtbot):
    from livegen.midi import ports
    from livegen.midi.clock import CLOCK_IN_PORT

    def clock_in_ports():  # JACK names a second client of livegen's at once livegen-01, ...
        return [p for p in ports.list_ports("jack")["outputs"] if re.fullmatch(rf"livegen(-\d+)?:{CLOCK_IN_PORT}", p)]

    band = ClockBand("lg-band", 140.0).start()
    try:
        window = make_window()
        sources = window.model.tempo_source

        def listed():
            return next((sources.itemData(i) for i in range(sources.count())
                         if "lg-band" in (sources.itemData(i) or "")), None)

        qtbot.waitUntil(lambda: listed() is not None, timeout=10_000)
        sources.setCurrentIndex(sources.findData(listed()))
        assert window.preset().engine.tempo_source == listed() and listed().startswith("clock:")
        qtbot.mouseClick(window.transport.play, LEFT)
        wait_playing(qtbot, window)
        engine = window.takes.engine
        qtbot.waitUntil(lambda: abs((engine.controls.bpm or 0) - 140.0) < 2.0, timeout=15_000)
        qtbot.waitUntil(lambda: "(MIDI clock)" in window.conditioning.tempo.text(), timeout=5000)
        assert abs(float(window.conditioning.tempo.text().split()[0]) - 140.0) < 5.0
        assert engine.settings.bpm == 120.0  # the panel's own tempo stays what the preset saves
        follow = window.takes.follow
        qtbot.mouseClick(window.transport.stop, LEFT)
        wait_stopped(qtbot, window)
        assert window.takes.follow is None and not follow._thread.is_alive()
        assert clock_in_ports()  # kept for the next take
        window.close()
        assert not clock_in_ports()
    finally:
        band.close()


def test_a_clock_port_that_cannot_open_is_one_line_and_the_take_plays_at_the_panels_tempo(make_window, jack_server,
                                                                                         qtbot, tmp_path):
    window = make_window()
    (tmp_path / "band.toml").write_text('[engine]\ntempo_source = "clock:no-such-band"\n')
    window.load_preset(str(tmp_path / "band.toml"))
    assert window.model.tempo_source.currentText() == "Clock: no-such-band"  # chosen, though not there (yet)
    window.play()
    qtbot.waitUntil(window.banner.isVisible, timeout=START_MS)
    text = window.banner.text.text()
    assert text.startswith("Tempo:") and "no-such-band" in text and "playing at 120 bpm" in text and "\n" not in text
    assert window.takes.engine is not None and window.takes.engine.running and window.takes.follow is None
    window.stop()
    wait_stopped(qtbot, window)


def start_osc(qtbot, window, port: int, out: str = "") -> None:
    """Tick the OSC panel on ``port`` and wait until it listens."""
    window.osc_panel.port.setValue(port)
    window.osc_panel.out.setText(out)
    window.osc_panel.setChecked(True)
    qtbot.waitUntil(lambda: window.osc.server is not None, timeout=5000)


def test_osc_steers_the_panel_and_its_play_stop_buttons_and_sends_the_state_out(make_window, qtbot):
    import threading

    from pythonosc.udp_client import SimpleUDPClient
    from test_osc import free_port, osc_listener

    got, lock = [], threading.Lock()
    listener = osc_listener(got, lock)
    window = make_window()
    port = free_port()
    start_osc(qtbot, window, port, "127.0.0.1:{}".format(listener.server_address[1]))
    assert window.osc.server.address == ("127.0.0.1", port)  # this machine only, unless opened
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        client.send_message("/livegen/play", 1)
        wait_playing(qtbot, window)
        assert window.transport.play.isChecked() and f"OSC 127.0.0.1:{port}" in window.transport.status.text()
        engine = window.takes.engine
        client.send_message("/livegen/pitch", 0.9)
        client.send_message("/livegen/z/3", -0.5)
        qtbot.waitUntil(lambda: window.gesture.pitch.value() == 90, timeout=5000)  # the panel shows it
        assert engine.controls.pitch == pytest.approx(0.9) and window.hub.controls.pitch == pytest.approx(0.9)
        qtbot.waitUntil(lambda: window.muscles.z.values[3] == -0.5, timeout=5000)
        assert engine.controls.z[3] == -0.5 and engine.controls.density == 0.8  # the rest stays
        client.send_message("/livegen/no-such-thing", 1)
        qtbot.waitUntil(lambda: "not a livegen address" in window.osc_panel.last_ignored.text(), timeout=5000)
        qtbot.waitUntil(lambda: any(a == "/livegen/note" for a, _ in list(got)), timeout=10_000)
        assert ("/livegen/state/playing", (1,)) in got
        client.send_message("/livegen/stop", [])
        wait_stopped(qtbot, window)
        qtbot.waitUntil(lambda: not window.transport.play.isChecked(), timeout=5000)
        client.send_message("/livegen/play", [])
        wait_playing(qtbot, window)
        assert window.takes.engine is not engine and window.takes.engine.controls.pitch == pytest.approx(0.9)
        window.stop()
        wait_stopped(qtbot, window)
    finally:
        client._sock.close()
        listener.shutdown()
        listener.server_close()


def test_a_busy_osc_port_is_one_line_and_unticks_the_box(make_window, qtbot):
    import socket

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        window = make_window()
        window.osc_panel.port.setValue(taken.getsockname()[1])
        window.osc_panel.setChecked(True)
        qtbot.waitUntil(window.banner.isVisible, timeout=5000)
        assert window.banner.text.text().startswith("OSC: cannot listen") and "\n" not in window.banner.text.text()
        assert not window.osc_panel.isChecked() and window.osc.server is None
    finally:
        taken.close()


def test_the_tempo_source_and_osc_are_saved_in_the_preset_and_loaded_back(make_window, qtbot, tmp_path):
    from test_osc import free_port

    port = free_port()
    window = make_window()
    window.model.tempo_source.setCurrentIndex(window.model.tempo_source.findData("link"))  # chosen, never played
    window.osc_panel.network.setChecked(True)
    start_osc(qtbot, window, port, "127.0.0.1:9001")
    assert window.osc.server.address == ("0.0.0.0", port)
    saved = window.preset()
    assert (saved.engine.tempo_source, saved.gui.osc_port, saved.gui.osc_host, saved.gui.osc_out) == (
        "link", port, "0.0.0.0", "127.0.0.1:9001")
    window.save_preset(str(tmp_path / "remote.toml"))
    window.osc_panel.setChecked(False)  # frees the port for the other panel
    qtbot.waitUntil(lambda: window.osc.server is None, timeout=5000)
    other = make_window()
    other.load_preset(str(tmp_path / "remote.toml"))
    assert other.preset() == saved and other.model.tempo_source.currentText() == "Link"
    qtbot.waitUntil(lambda: other.osc.server is not None, timeout=5000)  # the preset turned OSC on
    assert other.osc_panel.network.isChecked() and other.osc.server.address == ("0.0.0.0", port)
    other.model.tempo_source.setCurrentIndex(other.model.tempo_source.findData("player"))
    assert other.preset().engine.tempo_source == "player" and "MIDI in" in other.model.tempo_source.toolTip()


# --- the Learn tab -----------------------------------------------------------------------------

def learn_tab(window, monkeypatch, inputs: int):
    """The window's Learn tab shown, with ``inputs`` (0: armband, 1: hand) chosen and short takes."""
    from livegen.gui import learn

    monkeypatch.setattr(learn, "RECORD_SECONDS", 0.6)
    window.sensors.setCurrentWidget(window.learn)
    window.learn.panel.inputs.setCurrentIndex(inputs)
    return window.learn.panel


def record_take(qtbot, panel, values: dict) -> None:
    """Set the outputs by hand, press Record, wait for the take to end."""
    for name, row in panel.rows.items():
        row.box.setChecked(name in values)
        if name in values:
            row.set_current(values[name])
    before = panel.takes.count()
    qtbot.mouseClick(panel.record, LEFT)
    assert not panel.record.isEnabled()  # recording
    qtbot.waitUntil(lambda: panel.record.isEnabled(), timeout=5_000)
    assert panel.takes.count() == before + 1


def click_pad(qtbot, pad, x: float, y: float) -> None:
    """The pad clicked at (x, y), 0..1 left to right and bottom to top."""
    qtbot.mouseClick(pad, LEFT, pos=QPoint(int(x * pad.width()), int((1 - y) * pad.height())))


def test_the_learn_tab_records_trains_and_plays_a_mapping_of_the_pad_into_the_take(make_window, receiver, qtbot,
                                                                                   monkeypatch):
    window = make_window(receiver.name)
    panel = learn_tab(window, monkeypatch, 1)
    qtbot.waitUntil(lambda: panel.pad.isVisible() and panel.pad.width() > 50)
    click_pad(qtbot, panel.pad, 0.1, 0.1)
    record_take(qtbot, panel, {"pitch": 0.2, "z3": -0.5})
    assert window.hub.controls.pitch == pytest.approx(0.2)  # an output set by hand is heard while teaching
    click_pad(qtbot, panel.pad, 0.9, 0.9)
    record_take(qtbot, panel, {"pitch": 0.8, "z3": 0.5})
    counts = window.learn.recorder.counts()
    assert list(counts) == [1, 2] and min(counts.values()) >= 5  # many samples per take, the pad held still
    assert panel.takes.item(0).text().startswith("1: ")
    qtbot.mouseClick(panel.train, LEFT)
    qtbot.waitUntil(lambda: panel.trained.text().startswith("trained in"), timeout=10_000)
    assert "pitch rmse" in panel.trained.text() and not window.banner.isVisible()
    qtbot.mouseClick(window.transport.play, LEFT)
    wait_playing(qtbot, window)
    qtbot.mouseClick(panel.play, LEFT)
    assert panel.play.isChecked() and "no restart" in panel.playing.text()
    engine = window.takes.engine
    for (x, y), pitch, z in (((0.15, 0.1), 0.2, -0.5), ((0.85, 0.95), 0.8, 0.5)):
        click_pad(qtbot, panel.pad, x, y)
        qtbot.waitUntil(lambda: abs(engine.controls.pitch - pitch) < 0.1 and abs(engine.controls.z[2] - z) < 0.15,
                        timeout=10_000)  # the running take follows the mapping: no restart
    assert engine is window.takes.engine
    qtbot.mouseClick(panel.play, LEFT)  # off: the pad is the hand again
    click_pad(qtbot, panel.pad, 0.5, 0.3)
    assert window.hub.controls.pitch == pytest.approx(0.3, abs=0.02)

    panel.name.setText("taught")
    qtbot.mouseClick(panel.save, LEFT)
    saved = paths.presets_dir() / "taught.toml"
    assert presets.load(str(saved)).learn.mapping == str(paths.presets_dir() / "mappings" / "taught.toml")
    window.stop()
    wait_stopped(qtbot, window)
    again = make_window()
    again.load_preset(str(saved))
    assert not again.banner.isVisible() and again.learn.recorder.counts() == counts
    grid = np.array([[x, y] for x in np.linspace(0, 1, 7) for y in np.linspace(0, 1, 7)])
    before, after = window.learn.mapping.predict(grid), again.learn.mapping.predict(grid)
    assert before.keys() == after.keys() == {"pitch", "z3"}
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-9)
    assert again.learn.panel.inputs.currentIndex() == 1


def test_the_learn_tab_records_osc_values_trains_and_plays_them_with_temperature(make_window, receiver, qtbot,
                                                                               monkeypatch):
    from pythonosc.udp_client import SimpleUDPClient
    from test_osc import free_port

    window = make_window(receiver.name)
    start_osc(qtbot, window, free_port())
    panel = learn_tab(window, monkeypatch, 2)
    assert panel.addresses.isVisible() and not panel.pad.isVisible()
    panel.rows["pitch"].box.setChecked(True)
    qtbot.mouseClick(panel.record, LEFT)  # no address typed yet: one line, nothing records
    assert "type the OSC addresses" in window.banner.text.text() and panel.record.isEnabled()
    panel.addresses.setText("/fader/1")
    client = SimpleUDPClient(*window.osc.server.address)
    fader, stop = [0.0], threading.Event()

    def another_tool():  # a controller sending its fader at 100 Hz, as TouchOSC does
        while not stop.wait(0.01):
            client.send_message("/fader/1", fader[0])

    sender = threading.Thread(target=another_tool, daemon=True)
    sender.start()
    try:
        record_take(qtbot, panel, {"pitch": 0.2, "temperature": 0.5})
        fader[0] = 1.0
        time.sleep(0.1)
        record_take(qtbot, panel, {"pitch": 0.8, "temperature": 1.5})
        counts = window.learn.recorder.counts()
        assert window.learn.recorder.inputs == ["osc:/fader/1"] and min(counts.values()) >= 20
        qtbot.mouseClick(panel.train, LEFT)
        qtbot.waitUntil(lambda: panel.trained.text().startswith("trained in"), timeout=10_000)
        qtbot.mouseClick(window.transport.play, LEFT)
        wait_playing(qtbot, window)
        qtbot.mouseClick(panel.play, LEFT)
        assert panel.play.isChecked() and window.osc.server.learned is not None
        engine = window.takes.engine
        for value, pitch, temperature in ((0.0, 0.2, 0.5), (1.0, 0.8, 1.5)):
            fader[0] = value
            qtbot.waitUntil(lambda: abs(engine.controls.pitch - pitch) < 0.1
                            and abs((engine.controls.temperature or 0) - temperature) < 0.15, timeout=10_000)
        qtbot.mouseClick(panel.play, LEFT)  # off: the addresses are the listener's no more
        assert window.osc.server.learned is None
    finally:
        stop.set()
        sender.join()
        client.close()
    assert panel.rows["temperature"].value.minimum() == pytest.approx(0.2)


def steady_emg(path: Path, label: int, seconds: float = 4.0) -> Path:
    """A recording of one gesture held throughout (tests/emg_sessions' pattern for ``label``)."""
    from emg_sessions import RATE, gesture_pattern

    rng = np.random.default_rng(label)
    samples = np.clip(np.round(rng.normal(size=(int(seconds * RATE), 8)) * gesture_pattern(label)), -128, 127)
    path.write_text("\n".join(",".join(str(int(v)) for v in row) + f",{label}" for row in samples))
    return path


def connect_armband(qtbot, window, recording: Path) -> None:
    if window.armband is not None:
        qtbot.mouseClick(window.muscles.connect, LEFT)  # disconnect the last one
    window.muscles.source.setEditText(f"replay:{recording},loop")
    qtbot.mouseClick(window.muscles.connect, LEFT)
    assert window.armband is not None, window.banner.text.text()
    qtbot.waitUntil(lambda: max(window.muscles.levels.values) > 0, timeout=10_000)
    settled = settle_seconds(EmgSettings()) * window.armband.device.nominal_rate_hz  # the gesture held a moment
    qtbot.waitUntil(lambda: window.armband.counts()["samples"] >= settled, timeout=10_000)


def test_the_learn_tab_teaches_the_armband_two_themes_and_plays_them_through_a_reconnection(
        make_window, qtbot, monkeypatch, tmp_path):
    window = make_window()
    first, second = steady_emg(tmp_path / "one.csv", 1), steady_emg(tmp_path / "five.csv", 5)
    panel = learn_tab(window, monkeypatch, 0)
    connect_armband(qtbot, window, first)
    record_take(qtbot, panel, {"theme": "B"})
    connect_armband(qtbot, window, second)
    record_take(qtbot, panel, {"theme": "F"})
    assert min(window.learn.recorder.counts().values()) >= 30  # the armband's 200 Hz, recorded in its thread
    qtbot.mouseClick(panel.train, LEFT)
    qtbot.waitUntil(lambda: panel.trained.text().startswith("trained in"), timeout=10_000)
    assert "theme 100 % right" in panel.trained.text()
    qtbot.mouseClick(panel.play, LEFT)
    qtbot.waitUntil(lambda: window.hub.controls.theme == "F", timeout=5_000)
    assert window.armband.learned is not None
    connect_armband(qtbot, window, first)  # a new armband: the mapping plays it too
    qtbot.waitUntil(lambda: window.hub.controls.theme == "B", timeout=5_000)
    qtbot.mouseClick(panel.play, LEFT)
    assert window.armband.learned is None  # off: the armband plays z again


def one_banner_line(window, starts: str) -> None:
    text = window.banner.text.text()
    assert window.banner.isVisible() and text.startswith(f"Learn: {starts}") and "\n" not in text, text
    window.banner.hide()


def test_bad_input_in_the_learn_tab_is_one_line_on_the_banner(make_window, qtbot, monkeypatch, tmp_path):
    window = make_window()
    panel = learn_tab(window, monkeypatch, 1)
    qtbot.mouseClick(panel.train, LEFT)
    one_banner_line(window, "no examples yet")
    qtbot.mouseClick(panel.play, LEFT)
    one_banner_line(window, "nothing to play yet")
    assert not panel.play.isChecked()
    qtbot.mouseClick(panel.record, LEFT)  # no output ticked
    one_banner_line(window, "tick an output")
    record_take(qtbot, panel, {"theme": "A"})
    qtbot.mouseClick(panel.train, LEFT)
    qtbot.waitUntil(window.banner.isVisible, timeout=10_000)
    one_banner_line(window, "output theme: the examples hold one class only")
    panel.inputs.setCurrentIndex(0)  # the armband's inputs, the takes are the hand's
    qtbot.mouseClick(panel.train, LEFT)
    one_banner_line(window, "the takes read hand_x, hand_y but the inputs chosen are emg1")
    qtbot.mouseClick(panel.record, LEFT)
    one_banner_line(window, "the takes recorded read hand_x, hand_y")
    panel.takes.setCurrentRow(0)
    qtbot.mouseClick(panel.delete, LEFT)
    assert panel.takes.count() == 0 and window.learn.recorder.inputs[0] == "emg1"
    qtbot.mouseClick(panel.record, LEFT)
    one_banner_line(window, "the inputs are the armband's: connect it")

    corrupt = tmp_path / "corrupt.toml"
    corrupt.write_text("kind = 'livegen-mapping'\ninputs = [\n")
    monkeypatch.setattr("livegen.gui.learn.QFileDialog.getOpenFileName", lambda *a, **k: (str(corrupt), ""))
    qtbot.mouseClick(panel.load, LEFT)
    one_banner_line(window, f"mapping {corrupt} is not valid TOML")
    preset = presets.Preset()
    preset.learn.mapping = str(corrupt)
    presets.save(preset, tmp_path / "broken.toml")
    window.load_preset(str(tmp_path / "broken.toml"))
    one_banner_line(window, f"mapping {corrupt} is not valid TOML")
    assert window.learn.mapping is None and window.preset().learn.mapping == ""


def test_a_take_played_from_the_panel_answers_a_phrase_on_the_midi_in_chosen_there(make_window, receiver, qtbot):
    from test_midi_in import Player, answers_after, pop909_phrase

    phrase = pop909_phrase("101", seconds=4.0)
    player = Player("panel-keys")
    try:
        window = make_window(receiver.name)
        respond = window.respond

        def listed():
            return next((respond.port.itemData(i) for i in range(respond.port.count())
                         if str(respond.port.itemData(i)).endswith("panel-keys")), None)

        qtbot.waitUntil(lambda: listed() is not None, timeout=5000)
        respond.port.setCurrentIndex(respond.port.findData(listed()))
        respond.mode.setCurrentText("answer")
        respond.answer_after.setValue(0.5)
        respond.answer_bars.setValue(2.0)
        saved = window.preset().midi_in
        assert (saved.ports, saved.respond, saved.answer_after, saved.thru) == ([listed()], "answer", 0.5, False)
        window.apply_preset(window.preset())  # the preset shows on the panel as it was chosen there
        assert respond.port.currentData() == listed() and respond.mode.currentText() == "answer"
        qtbot.mouseClick(window.transport.play, LEFT)
        wait_playing(qtbot, window)
        qtbot.wait(1000)
        assert not answers_after(receiver, 0), "livegen plays before the player has played"
        end = player.play(phrase)
        qtbot.wait(2500)
        assert len(answers_after(receiver, end)) >= 4
        qtbot.mouseClick(window.transport.stop, LEFT)
        wait_stopped(qtbot, window)
    finally:
        player.close()
    receiver.settle()
    assert receiver.hanging() == 0
