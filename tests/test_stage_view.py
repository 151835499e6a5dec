"""The stage view, driven through the real window (pytest-qt, offscreen): the performance view read
at a quarter size, health, Rec inside a take, booth mode on three screens, and musicians' habits."""
import functools
import os
import subprocess

import mido
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from PyQt6.QtCore import QPoint, QRect, Qt  # noqa: E402
from PyQt6.QtGui import QColor, QImage  # noqa: E402

from conftest import START_MS, livegen_cmd, wait_playing  # noqa: E402
from livegen import presets  # noqa: E402
from livegen.gui import theme  # noqa: E402
from livegen.gui.app import BoothMode  # noqa: E402
from livegen.gui.panels import elide_middle  # noqa: E402
from livegen.gui.stage import DROPPED_ADVICE, health  # noqa: E402
from livegen.gui.widgets import LockIcon  # noqa: E402
from livegen.gui.window import in_panel_words  # noqa: E402
from livegen.music.general_midi import PROGRAM_NAMES  # noqa: E402

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def quiet_window(make_window):
    """A panel without the commentary: the stage view's tests do not read it."""
    return functools.partial(make_window, commentary=False)


def ink_height(image: QImage, area: QRect, color: QColor) -> int:
    """Rows of ``area`` holding pixels near ``color``: the rendered glyphs' height."""
    rows = 0
    for y in range(area.top(), area.bottom() + 1):
        if any(_near(image.pixelColor(x, y), color) for x in range(area.left(), area.right() + 1, 2)):
            rows += 1
    return rows


def _near(a: QColor, b: QColor) -> bool:
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) < 60


def test_the_state_word_reads_at_a_quarter_of_a_1080p_screen(quiet_window, qtbot):
    window = quiet_window()
    window.resize(1920, 1080)
    window.show_view("performance")
    qtbot.waitUntil(lambda: window.stage.state.text() == "STOPPED" and window.stage.state.font().pixelSize() > 40)
    qtbot.wait(50)
    image = window.grab().toImage()
    assert (image.width(), image.height()) == (1920, 1080)
    label = window.stage.state
    area = QRect(label.mapTo(window, QPoint(0, 0)), label.size())
    full = ink_height(image, area, theme.MUTED)  # STOPPED: no descenders, so the ink is the cap height
    assert full >= 28
    quarter = image.scaled(960, 540, transformMode=Qt.TransformationMode.SmoothTransformation)
    small = QRect(area.x() // 2, area.y() // 2, area.width() // 2, area.height() // 2)
    assert ink_height(quarter, small, theme.MUTED) >= 14  # still 28 px tall were it shown at 1080p
    for word in ("PLAYING", "NO OUTPUT", "RECORDING"):  # the widest word fits its label
        window.stage.show_state(word)
        assert label.fontMetrics().horizontalAdvance(word) <= label.width()


@pytest.mark.parametrize("size", [(1024, 768), (1280, 720), (1920, 1080)])
def test_a_locked_booth_shows_the_whole_pad_and_panic_on_every_screen(quiet_window, qtbot, size):
    window = quiet_window(booth=True)
    window.set_locked(True, "Ctrl+Shift+U")
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size)
    qtbot.wait(50)
    assert window.view == "performance" and not window.transport.view.isVisible()
    screen = window.rect()
    for widget in (window.stage.pad, window.stage.roll, window.transport.panic, window.stage.state):
        box = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
        assert widget.isVisible() and screen.contains(box), (widget, box)
    assert window.stage.pad.width() >= 0.4 * size[0] and window.stage.pad.height() >= 0.5 * size[1]
    window.next_view()  # F2 does nothing for a visitor
    assert window.view == "performance"


def test_locked_controls_look_locked_and_the_padlock_is_drawn(quiet_window, qtbot):
    window = quiet_window()
    window.set_locked(True, "Ctrl+Shift+U")
    assert window.transport.lock_icon.isVisible() and "Ctrl+Shift+U unlocks" in window.transport.lock.text()
    assert not window.transport.record.isEnabled() and window.transport.panic.isEnabled()
    icon = LockIcon(40)
    image = icon.grab().toImage()
    lit = sum(_near(image.pixelColor(x, y), theme.NOTICE) for x in range(40) for y in range(40))
    assert lit > 300  # a padlock, not an empty box
    enabled, disabled = window.transport.panic.grab().toImage(), window.transport.record.grab().toImage()
    centre = disabled.pixelColor(disabled.width() // 2, 4)
    assert centre != enabled.pixelColor(enabled.width() // 2, 4)
    window.set_locked(False)
    assert window.transport.view.isVisible() and not window.transport.lock_icon.isVisible()


def test_engine_numbers_are_judged_against_limits_in_plain_words():
    levels, warnings = health({"timing_p99": 2.0, "latency_p99": 10.0, "cpu": 20.0})
    assert set(levels.values()) == {"ok"} and warnings == []
    levels, warnings = health({"timing_p99": 1600.0, "latency_p99": 60.0, "cpu": None}, dropped=3)
    assert levels["timing_p99"] == "alarm" and levels["latency_p99"] == "notice" and levels["cpu"] == "ok"
    assert warnings[0] == "notes are going out late — close other programs" and DROPPED_ADVICE in warnings


def test_a_late_take_colours_its_numbers_and_says_what_to_do(quiet_window, receiver, qtbot):
    window = quiet_window(receiver.name)
    window.play()
    wait_playing(qtbot, window)
    window.readout.timing.extend([1.6] * 50)  # as a take 1.6 s late would report
    qtbot.waitUntil(lambda: "notes are going out late" in window.stage.warning.text(), timeout=5000)
    assert theme.RECORD.name() in window.numbers.labels["timing_p99"].styleSheet()
    window.stop()


def test_no_output_is_said_when_the_port_is_gone(quiet_window, receiver, qtbot):
    window = quiet_window(receiver.name)
    window.play()
    wait_playing(qtbot, window)
    window.show_view("performance")
    qtbot.waitUntil(lambda: window.stage.state.text() == "PLAYING", timeout=5000)
    qtbot.waitUntil(lambda: window.stage.midi_light.state == "on", timeout=5000)
    receiver.close()
    qtbot.waitUntil(lambda: window.stage.state.text() == "NO OUTPUT", timeout=10_000)
    assert window.stage.midi_light.state == "dead" and "NO OUTPUT" in window.transport.status.text()
    window.stop()


def test_rec_records_inside_the_playing_take_from_the_press(quiet_window, receiver, qtbot):
    window = quiet_window(receiver.name)
    window.play()
    wait_playing(qtbot, window)
    engine = window.takes.engine
    qtbot.waitUntil(lambda: engine.now() > 1.0 and len(receiver.notes()) >= 4, timeout=START_MS)
    take = window.transport.take.text()
    qtbot.mouseClick(window.transport.record, LEFT)
    qtbot.waitUntil(lambda: engine.record == take, timeout=5000)
    pressed = engine.record_from
    window.show_view("performance")
    qtbot.waitUntil(lambda: window.stage.state.text() == "RECORDING", timeout=5000)
    qtbot.waitUntil(lambda: engine.now() > pressed + 2.0, timeout=START_MS)
    qtbot.mouseClick(window.transport.record, LEFT)
    qtbot.waitUntil(lambda: engine.record is None and not window.takes.busy, timeout=5000)
    assert window.takes.engine is engine and engine.running and pressed >= 1.0  # no new take, no restart
    assert window.roll.notes and min(n[0] for n in window.roll.notes) < pressed  # the roll was not cleared
    qtbot.waitUntil(lambda: window.stage.state.text() == "PLAYING", timeout=5000)
    midi = mido.MidiFile(take)
    assert sum(m.type == "note_on" and m.velocity > 0 for m in midi) >= 4 and midi.length < engine.now() - 1.0
    window.stop()


def test_the_booth_preset_and_its_reset_preset_are_found_from_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no presets/ folder here, as after `pip install .`
    booth = presets.load("booth")
    assert booth.gui.booth and presets.find("booth").parent == presets.SHIPPED_PRESETS
    assert presets.find(booth.gui.reset_preset).parent == presets.SHIPPED_PRESETS
    assert {"booth", "default"} <= set(presets.names())


def test_booth_idle_reset_loads_the_shipped_default_without_an_error(quiet_window, qtbot):
    window = quiet_window(booth=True, idle_reset=1.0)
    booth = BoothMode(window, window.base_preset.gui)
    booth.begin()
    wait_playing(qtbot, window)
    first = window.takes.engine
    qtbot.waitUntil(lambda: window.takes.engine is not None and window.takes.engine is not first, timeout=START_MS)
    assert not window.banner.isVisible() or "not found" not in window.banner.text.text()
    assert window.isFullScreen() and window.windowFlags() & Qt.WindowType.FramelessWindowHint
    assert window.geometry() == window.screen().geometry() and window.view == "performance"
    window.set_locked(False)
    window.stop()


def test_instruments_are_named_and_sound_changes_reach_the_playing_take(quiet_window, receiver, qtbot):
    assert len(PROGRAM_NAMES) == 128 and PROGRAM_NAMES[0] == "Acoustic Grand Piano"
    assert PROGRAM_NAMES[127] == "Gunshot" and PROGRAM_NAMES[40] == "Violin"
    window = quiet_window(receiver.name)
    assert window.output.program.itemText(41) == "41 Violin"
    window.play()
    wait_playing(qtbot, window)
    window.output.set_program(40)
    window.output.volume.setValue(90)
    qtbot.waitUntil(lambda: any(m.type == "program_change" and m.program == 40 for _, m in receiver.messages)
                    and any(m.type == "control_change" and m.control == 7 and m.value == 90
                            for _, m in receiver.messages), timeout=5000)
    saved = window.preset()
    assert saved.output.program == 40 and saved.output.volume == 90
    window.stop()


def test_keys_switch_views_full_screen_presets_undo_and_quit(quiet_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(presets, "names", lambda: ["alpha", "default", "zeta"])
    (tmp_path / "presets").mkdir()
    for name, bpm in (("alpha", 90.0), ("zeta", 150.0)):
        preset = presets.Preset()
        preset.engine.bpm = bpm
        presets.save(preset, tmp_path / "presets" / f"{name}.toml")
    window = quiet_window()
    with qtbot.waitActive(window):
        window.activateWindow()
    assert window.view == "full"
    qtbot.keyClick(window, Qt.Key.Key_F2)
    assert window.view == "performance"
    qtbot.keyClick(window, Qt.Key.Key_F2)
    assert window.view == "full"
    qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert window.preset_name == "zeta" and window.model.tempo.value() == 150
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert window.preset_name == "default"
    window.model.tempo.setValue(133)
    window._show_unsaved()
    assert window.preset_panel.name.text() == "default *"
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert window.preset_name == "alpha" and window.model.tempo.value() == 90
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the change of preset undone
    assert window.preset_name == "default" and window.model.tempo.value() == 133
    assert window.preset_panel.name.text() == "default *"  # the edit comes back, still unsaved
    qtbot.keyClick(window, Qt.Key.Key_F11)
    qtbot.waitUntil(window.isFullScreen, timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_F11)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=2000)
    window.set_locked(True)
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert window.isVisible()  # a booth's visitor cannot quit
    window.set_locked(False)
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)


def test_banners_name_panel_actions_and_port_names_are_cut_in_the_middle(quiet_window):
    said = in_panel_words("no MIDI system here (no ALSA sequencer, no JACK server) to open 'x' on: start one, "
                          "or use --no-port to only record")
    assert "--" not in said and "Output → API fluidsynth" in said
    window = quiet_window()
    window.banner.show_error("the jack MIDI system is not running here: start it, or use --api auto / --no-port")
    assert "--" not in window.banner.text.text()
    long = "Scarlett 18i20 USB:Scarlett 18i20 USB MIDI 1 128:0 Stage 3 MIDI"
    cut = elide_middle(long)
    assert len(cut) == 30 and cut.startswith("Scarlett") and cut.endswith("Stage 3 MIDI")
    window.output.set_ports([long])
    index = window.output.port.findData(long)
    assert window.output.port.itemText(index) == cut
    assert window.output.port.itemData(index, Qt.ItemDataRole.ToolTipRole) == long


@pytest.mark.parametrize("preset,size,view", [("booth", "1024x768", "performance"), ("default", "1280x720", "full")])
def test_the_screenshot_command_renders_a_view_at_a_size(tmp_path, preset, size, view):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", JACK_DEFAULT_SERVER="livegen-no-such-server",
               LIVEGEN_HOME=str(tmp_path / "home"))
    run = subprocess.run(livegen_cmd("gui", "--preset", preset, "--screenshot", str(out), "--size", size,
                                     "--view", view), capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    image = QImage(str(out))
    assert f"{image.width()}x{image.height()}" == size


def test_a_bad_screenshot_size_is_one_line(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run(livegen_cmd("gui", "--screenshot", str(tmp_path / "x.png"), "--size", "big"),
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert run.returncode == 2 and "is not WIDTHxHEIGHT" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.png").exists()
