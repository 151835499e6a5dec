"""The main window: transport on top (Panic always there), then one of its views: the full
panel (setup on the left, the music in the middle, the gesture and harmony on the right) or the
performance view (livegen.gui.stage), read from the stage. F2 or the view button switches;
booth mode shows the performance view only. A new view is one ``add_view`` call in ``_build``.

The engine runs outside the Qt thread (generator thread + clock process); this window only
submits takes to ``Takes`` and drains the engine's ring buffers on a QTimer at ``PANEL_HZ``.
Panels stack in ``self.columns`` and models in the Model panel's list, so a sensor or a model
brings its own (EMG levels on the right, the commentary in the middle) without reshaping the window.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import (QApplication, QFrame, QHBoxLayout, QLabel, QMainWindow, QPushButton, QSizePolicy,
                             QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from livegen import paths, presets
from livegen.commentary.commentator import Commentator
from livegen.commentary.worker import CommentaryWorker, history_path_for
from livegen.errors import UserError
from livegen.faults import Faults, guarded
from livegen.midi.ports import NullOutput
from livegen.gui.learn import Learning
from livegen.gui.panels import (Column, CommentaryPanel, ConditioningPanel, GesturePanel, HarmonyPanel, ModelPanel,
                                MusclesPanel, NumbersPanel, OscPanel, OutputPanel, PresetPanel, RespondPanel,
                                TakesPanel)
from livegen.gui.workers import OscLink, PanelPerformance, PlayedNotes, PortWatch, TakeWorker
from livegen.gui import theme
from livegen.gui.midi_learn import BindingsPanel, MidiLearn
from livegen.gui.stage import PerformanceView, health
from livegen.gui.widgets import LockIcon, PianoRoll
from livegen.music.conditioning import Controls
from livegen.sensors.camera import CameraControls
from livegen.sensors.emg import open_device
from livegen.sensors.emg.source import EmgControls
from livegen.sensors.script import parse_script
from livegen.sessions import list_sessions
from livegen.take.controls import ControlHub
from livegen.take.spec import TakeSpec
from livegen.vision.capture import open_frame_source
from livegen.vision.mapping import HandMapper, MappingSettings
from livegen.vision.trackers import make_tracker

PANEL_HZ = 30  # display refresh: smooth to the eye; above 60 (a screen's rate) would only cost the Qt thread
PORT_CHECK_MS = 1000  # re-list MIDI outputs to notice a vanished port
NUMBERS_EVERY = 8  # ticks between updates of the engine numbers (readable, not flickering)
CAPTURE_SECONDS = 3.0  # of a relaxed arm, then of the strongest contraction, to calibrate the armband
MIN_SIZE = (1024, 600)  # the smallest screen laid out for (a booth's 1024x768, a 1280x720 projector)
ACTIVITY_HOLD = 0.12  # s the MIDI-out light stays lit after a message: visible at 30 Hz, still a blink
# command-line advice in messages the take layer shares with `livegen perform`, said as panel actions
PANEL_WORDS = (("use --no-port to only record", "choose Output → API fluidsynth (the built-in synth) to hear it"),
               ("or use --api auto / --no-port", "or choose Output → API auto"),
               ("choose another with --port", "choose another in Output → Port"),
               ("give --record FILE or start a MIDI system", "press Rec or start a MIDI system"),
               ("and no --record", "and no recording"), ("--record", "Rec"), ("--port", "Output → Port"),
               ("--api", "Output → API"), ("--soundfont", "Output → SoundFont"),
               ("--channel", "Output → Channel"),
               ("--program", "Output → Instrument"), ("--temperature", "Model → Temperature"),
               ("--lookahead", "Model → Lookahead"), ("--bpm", "Model → Tempo"), ("--seed", "Model → Seed"))


def in_panel_words(text: str) -> str:
    """A message that names command-line flags, naming the panel's controls instead."""
    for flag, action in PANEL_WORDS:
        text = text.replace(flag, action)
    return text


def go_full_screen(window: QWidget) -> None:
    """Frameless and as large as its screen: with no window manager to honour "full screen"
    (a booth's bare X server), the geometry does it."""
    screen = window.screen() or QApplication.primaryScreen()
    window.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)
    window.setGeometry(screen.geometry())
    window.showFullScreen()


class TransportBar(QFrame):
    """Play, Stop, Panic, Record with the take's file name and elapsed time, and the status."""

    def __init__(self):
        super().__init__()
        self.setObjectName("transportBar")
        self.play, self.stop = self._button("▶  Play", "play", True), self._button("■  Stop", "stop")
        self.panic, self.record = self._button("Panic", "panic"), self._button("●  Rec", "record", True)
        self.view = self._button("Stage view", "view")
        self.play.setToolTip("Space: play / stop")
        self.panic.setToolTip("Esc: all notes off")
        self.record.setToolTip("R: record from now on to the file named here (the music goes on); R again stops")
        self.view.setToolTip("F2: the performance view (big, for the stage) or the full panel")
        self.take = QLabel()
        self.take.setObjectName("value")
        self.elapsed = QLabel("0:00")
        self.elapsed.setObjectName("big")
        self.status = QLabel("stopped")
        self.status.setObjectName("muted")
        self.lock_icon = LockIcon()
        self.lock_icon.hide()
        self.lock = QLabel()
        self.lock.setObjectName("locked")
        self.info = QWidget()
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # cut, never pushing
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        for button in (self.play, self.stop, self.panic, self.record):
            layout.addWidget(button)
        layout.addSpacing(12)
        info = QVBoxLayout(self.info)
        info.setContentsMargins(0, 0, 0, 0)
        info.addWidget(self.take)
        info.addWidget(self.status)
        layout.addWidget(self.info, 1)
        layout.addWidget(self.lock_icon)
        layout.addWidget(self.lock)
        layout.addWidget(self.view)
        layout.addSpacing(12)
        layout.addWidget(self.elapsed)

    @staticmethod
    def _button(text: str, name: str, checkable: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setProperty("transport", True)
        button.setCheckable(checkable)
        button.setMinimumHeight(44)
        return button

    def show_state(self, playing: bool, recording: bool) -> None:
        for button, on in ((self.play, playing), (self.record, recording)):
            if button.isChecked() != on:
                button.setChecked(on)


class ErrorBanner(QFrame):
    """A visible error (never a crash), with the one click that fixes it where there is one."""

    def __init__(self):
        super().__init__()
        self.setObjectName("banner")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.action = QPushButton("Reconnect")
        close = QPushButton("✕")
        close.setFixedWidth(36)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action)
        layout.addWidget(close)
        self.hide()

    def show_error(self, text: str, action: str | None = None) -> None:
        self.text.setText(in_panel_words(text))
        self.action.setVisible(action is not None)
        if action:
            self.action.setText(action)
        self.show()


class EngineReadout:
    """Turns the engine's ring buffers into the numbers the panel shows."""

    def __init__(self):
        self.timing: deque[float] = deque(maxlen=2000)
        self.sent = 0  # messages drained this take
        self._cpu = (time.process_time(), time.monotonic())

    def measure(self, engine) -> dict[str, float | None]:
        """p50/p99 (ms) of the recent latencies and timing errors, CPU (%) of this process; None: none yet."""
        cpu_now = (time.process_time(), time.monotonic())
        cpu = (cpu_now[0] - self._cpu[0]) / max(cpu_now[1] - self._cpu[1], 1e-6) * 100
        self._cpu = cpu_now
        out: dict[str, float | None] = {"cpu": cpu}
        latency = engine.stats.control_to_midi[-200:] if engine is not None else []
        for key, values in (("latency", latency), ("timing", np.abs(self.timing))):
            for part, q in (("p50", 50), ("p99", 99)):
                out[f"{key}_{part}"] = float(np.percentile(values, q)) * 1e3 if len(values) else None
        return out

    def numbers(self, values: dict[str, float | None], engine) -> dict[str, str]:
        """Label texts for ``measure``'s values."""
        out = {"cpu": f"{values['cpu']:.0f} %", "sent": "–" if engine is None else str(self.sent)}
        for key, digits in (("latency", 1), ("timing", 3)):
            for part in ("p50", "p99"):
                value = values[f"{key}_{part}"]
                out[f"{key}_{part}"] = "–" if value is None else f"{value:.{digits}f}"
        return out


class MainWindow(QMainWindow):
    osc_pressed = pyqtSignal(str)  # "play", "stop" or "panic" from OSC's thread, handled on the Qt thread
    osc_preset = pyqtSignal(object)  # a preset OSC's /preset read, applied on the Qt thread

    def __init__(self, preset: presets.Preset, preset_name: str = "default"):
        super().__init__()
        self.setWindowTitle("livegen")
        self.base_preset = preset  # keeps the sections the panel does not show ([camera], engine limits)
        self.hub = ControlHub(Controls(preset.controls.pitch, preset.controls.density))
        self.takes = TakeWorker(self.hub)
        self.ports = PortWatch()
        self.readout = EngineReadout()
        self.source = None  # a running control source other than the pad (the camera)
        self.script_path: str | None = None  # the control script chosen as the gesture source
        self.armband = None  # a running EmgControls
        self.played = PlayedNotes(self.takes)  # what the commentary listens to
        self.osc_ignored: deque[str] = deque(maxlen=20)  # what OSC logged (bad messages), newest last
        self.osc = OscLink(PanelPerformance(self.hub, self.osc_pressed.emit, self.osc_preset.emit), self.takes,
                           self.osc_ignored.append)
        self._osc_settings = (0, "", "")  # what OSC was last configured with
        self.commentator = None  # the CommentaryWorker, started with the first take
        self.comment_writer = None  # its Commentator: the panel switches its LC-GAN on and off
        self._commentary_loading: threading.Thread | None = None
        self._commentary_failed: str | None = None  # why the commentary model did not load
        self.commentary_faults = Faults("loading the commentary", "the music plays on without it; if it repeats, "
                                        "report this line", self._commentary_cannot_load)
        self._comment_to: str | None | bool = False  # where the next take's history goes (False: no change)
        self._comment_requested = False
        self._comment_error: str | None = None
        self.armband_spec = ""
        self._captured: dict = {}  # calibration phase -> envelopes
        self.recording: str | None = None
        self.last_take: str | None = None  # the file the last recording went to
        self.locked = False
        self.preset_name = preset_name
        self._saved_preset: presets.Preset | None = None  # the panel as last loaded or saved (for the * mark)
        self._undo: tuple | None = None  # (panel, name, as saved) before the last preset change
        self._last_sent = 0.0  # monotonic time the last MIDI message was drained (the MIDI-out light)
        self._beat: tuple[object, float, float] | None = None  # (engine, its time, beats since it began)
        self._output_gone = False  # the take's port vanished: it plays into nothing
        self._armband_samples = (0, 0.0)  # (samples seen, when they last rose): is the armband sending?
        self._loading: str | None = None  # a checkpoint being loaded in the background
        self._ticks = 0
        self._build()
        self.apply_preset(preset, preset_name)
        self._shortcuts()
        self.timer = QTimer(self, interval=1000 // PANEL_HZ, timeout=self._tick)
        self.timer.start()
        self.port_timer = QTimer(self, interval=PORT_CHECK_MS, timeout=self._check_ports)
        self.port_timer.start()
        self._check_ports()
        self.list_takes()

    # --- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        self.transport, self.banner = TransportBar(), ErrorBanner()
        self.output, self.model, self.preset_panel = OutputPanel(), ModelPanel(), PresetPanel()
        self.gesture, self.harmony = GesturePanel(), HarmonyPanel()
        self.roll, self.conditioning, self.numbers = PianoRoll(), ConditioningPanel(), NumbersPanel()
        self.columns = {"left": Column(320), "centre": Column(), "right": Column(350)}
        self.takes_panel = TakesPanel()
        self.osc_panel = OscPanel()
        for panel in (self.preset_panel, self.output, self.model):
            self.columns["left"].add(panel)
        self.columns["left"].add_stretch()
        notes = QFrame()
        notes_layout = QVBoxLayout(notes)
        notes_layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("NOTES SENT")
        title.setObjectName("muted")
        notes_layout.addWidget(title)
        notes_layout.addWidget(self.roll, 1)
        self.columns["centre"].add(notes, 1)
        self.commentary = CommentaryPanel()
        self.columns["centre"].add(self.commentary)
        readouts = QWidget()
        row = QHBoxLayout(readouts)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.conditioning, 1)
        row.addWidget(self.numbers, 1)
        self.columns["centre"].add(readouts)
        self.muscles = MusclesPanel()
        hand = QWidget()
        hand_layout = QVBoxLayout(hand)
        hand_layout.setContentsMargins(0, 0, 0, 0)
        hand_layout.addWidget(self.gesture, 3)
        hand_layout.addWidget(self.harmony, 2)
        self.sensors = QTabWidget()
        self.sensors.addTab(hand, "Hand && keys")
        self.sensors.addTab(self.muscles, "Muscles")
        self.sensors.addTab(self.takes_panel, "Takes")
        remote = QWidget()
        remote_layout = QVBoxLayout(remote)
        remote_layout.setContentsMargins(0, 0, 0, 0)
        remote_layout.addWidget(self.osc_panel)
        remote_layout.addStretch(1)
        self.sensors.addTab(remote, "OSC")
        self.learn = Learning(self)
        self.sensors.addTab(self.learn, "Learn")
        self.bindings_panel = BindingsPanel()
        self.respond = RespondPanel()
        midi = QWidget()
        midi_layout = QVBoxLayout(midi)
        midi_layout.setContentsMargins(0, 0, 0, 0)
        midi_layout.addWidget(self.respond)
        midi_layout.addWidget(self.bindings_panel, 1)
        self.sensors.addTab(midi, "MIDI")
        self.columns["right"].add(self.sensors, 1)
        full = QWidget()
        body = QHBoxLayout(full)
        body.setContentsMargins(12, 4, 12, 12)
        body.setSpacing(12)
        for name in ("left", "centre", "right"):
            body.addWidget(self.columns[name], 1 if name == "centre" else 0)
        self.views = QStackedWidget()
        self.view_names: list[str] = []
        self.add_view("full", full)
        self.stage = self.add_view("performance", PerformanceView())
        central = QWidget()
        central.setObjectName("central")
        central.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click on the background gives Space back
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.transport)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(12, 6, 12, 0)
        banner_row.addWidget(self.banner)
        layout.addLayout(banner_row)
        layout.addWidget(self.views, 1)
        self.setCentralWidget(central)
        for button in self.findChildren(QPushButton):  # a focused button would swallow Space on stage
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setMinimumSize(*MIN_SIZE)

        self.transport.play.clicked.connect(lambda: self.play())
        self.transport.stop.clicked.connect(lambda: self.stop())
        self.transport.panic.clicked.connect(lambda: self.panic())
        self.transport.record.clicked.connect(lambda: self.toggle_record())
        self.transport.view.clicked.connect(lambda: self.next_view())
        self.stage.pad.moved.connect(self._hand_moved)
        self.learn.panel.pad.moved.connect(self._hand_moved)
        self.banner.action.clicked.connect(lambda: self.reconnect())
        self.output.refresh_requested.connect(self._rescan_ports)
        self.output.sound_changed.connect(self._send_sound)
        self.model.checkpoint_chosen.connect(self.choose_checkpoint)
        self.preset_panel.load_requested.connect(self.load_preset)
        self.preset_panel.save_requested.connect(self.save_preset)
        self.gesture.moved.connect(self._hand_moved)
        self.gesture.source_changed.connect(self.use_source)
        self.harmony.changed.connect(lambda: self.hub.set_histogram(self.harmony.histogram()))
        self.muscles.z_moved.connect(lambda z: self.hub.muscles(z=z))
        self.muscles.theme_chosen.connect(lambda name: self.hub.muscles(theme=name, toward=None, mix=0.0))
        self.commentary.requested.connect(self._request_comment)
        self.commentary.toggled.connect(self._commentary_switched)
        self.takes_panel.replay_requested.connect(self.replay)
        self.takes_panel.refresh.clicked.connect(lambda: self.list_takes())
        self.muscles.connect_requested.connect(self.use_armband)
        self.muscles.calibrate_requested.connect(self.calibrate_armband)
        self.model.model.currentIndexChanged.connect(self._show_model_sensors)
        self.osc_panel.changed.connect(self.use_osc)
        self.osc_pressed.connect(self._press_for_osc)
        self.osc_preset.connect(self._apply_osc_preset)
        self.midi_learn = MidiLearn(self, self.bindings_panel)
        for widget, targets in ((self.gesture.pitch, ("pitch",)), (self.gesture.density, ("density",)),
                                (self.gesture.pad, ("pitch", "density")), (self.stage.pad, ("pitch", "density")),
                                (self.muscles.z, ("z",)), (self.transport.play, ("play",)),
                                (self.transport.record, ("record",)), (self.transport.panic, ("panic",))):
            self.midi_learn.attach(widget, *targets)
        self.midi_learn.action.connect(self._midi_action)
        self.takes.runner.on_action = self.midi_learn.action.emit  # from a take's input thread to this one

    def showEvent(self, event):
        super().showEvent(event)
        self.centralWidget().setFocus()  # not a button: a focused button would take Space

    def add_view(self, name: str, widget: QWidget) -> QWidget:
        """Another view of the window, switched to with F2 (in order) or ``show_view(name)``."""
        self.views.addWidget(widget)
        self.view_names.append(name)
        return widget

    @property
    def view(self) -> str:
        return self.view_names[self.views.currentIndex()]

    def show_view(self, name: str) -> None:
        self.views.setCurrentIndex(self.view_names.index(name))
        following = self.view_names[(self.views.currentIndex() + 1) % len(self.view_names)]
        self.transport.view.setText("Stage view" if following == "performance" else f"{following.title()} panel")
        for widget in (self.transport.info, self.transport.elapsed):
            widget.setVisible(name != "performance")  # the stage view says them larger

    def next_view(self) -> None:
        """F2: the next view; a locked booth stays on the performance view."""
        if not self.locked:
            self.show_view(self.view_names[(self.views.currentIndex() + 1) % len(self.view_names)])

    def _shortcuts(self) -> None:
        for key, action in ((Qt.Key.Key_Space, self.toggle_play), (Qt.Key.Key_Escape, self.panic),
                            (Qt.Key.Key_R, self.toggle_record), (Qt.Key.Key_F2, self.next_view),
                            (Qt.Key.Key_F11, self.toggle_full_screen), (Qt.Key.Key_PageDown, self.next_preset),
                            (Qt.Key.Key_PageUp, self.previous_preset)):
            QShortcut(QKeySequence(key), self, action)
        QShortcut(QKeySequence("Ctrl+Q"), self, self.quit)
        QShortcut(QKeySequence("Ctrl+Z"), self, self.undo_preset)

    def toggle_full_screen(self) -> None:
        """F11: full screen and back (locked, a booth stays full screen)."""
        if self.locked:
            return
        if self.isFullScreen():
            self.showNormal()
        else:
            go_full_screen(self)

    def quit(self) -> None:
        """Ctrl+Q: close the panel (a locked booth ignores it: visitors cannot end the show)."""
        if not self.locked:
            self.close()  # the last window: the application ends with it

    # --- transport ------------------------------------------------------------------------------

    def play(self, record: str | None = None) -> None:
        """Start a take (replacing the one playing); ``record`` names the file to record it to."""
        self.recording = record or None
        spec = self._take_spec({"seed": self.model.seed.value(), "record": self.recording,
                                "controls": f"script:{self.script_path}" if self.script_path else None})
        if spec is None:
            return
        self.takes.play(spec)
        self._output_gone = False
        self._comment_to = self.recording  # the history goes beside the take (set when the worker is up)
        self._start_commentary()
        self.played.sent_messages.clear()
        self.roll.clear()
        self.stage.roll.clear()
        self.banner.hide()
        self.readout.timing.clear()
        self.readout.sent = 0

    def replay(self, take) -> None:
        """Play a recorded take again: its control stream, seed, model and settings, on the panel's
        output (not recorded again); the panel's own controls wait until Play."""
        self._finish_recording()
        spec = self._take_spec(take.replay_overrides())
        if spec is None:
            return
        self.takes.play(spec)
        self.roll.clear()
        self.banner.hide()

    def _take_spec(self, overrides: dict) -> TakeSpec | None:
        """The take the panel's preset describes, as ``livegen perform`` would make it, with the
        panel's own output choices; None (said on the banner) when the preset cannot play."""
        overrides = {"soundfont": self.output.soundfont_file(), "clock_out": self.output.clock_port(), **overrides}
        try:
            return TakeSpec.from_preset(self.preset(), overrides, warn=self.banner.show_error)
        except UserError as exc:
            self.banner.show_error(str(exc))
            return None

    def _start_commentary(self) -> None:
        """Start the commentary worker with the first take it is on for; loading the model happens
        on a thread of its own, so the panel never waits for it."""
        if self._commentary_loading is not None or not self.commentary.isChecked():
            return
        interval, bpm = self._comment_interval(self.commentary.every.value()), self.base_preset.engine.bpm
        lcgan = self.commentary.lcgan.isChecked()

        def load() -> None:
            try:
                self.comment_writer = Commentator(use_lcgan=lcgan)
            except Exception as exc:  # whatever broke, the panel shows it and plays on
                self._commentary_failed = f"the commentary model could not be loaded: {exc}"
                return
            worker = CommentaryWorker(self.played, self.comment_writer, bpm=bpm)
            worker.set_interval(interval)
            self.commentator = worker.start()

        self._commentary_loading = threading.Thread(target=guarded(load, self.commentary_faults),
                                                    name="livegen-gui-commentary", daemon=True)
        self._commentary_loading.start()

    def _commentary_cannot_load(self, text: str) -> None:
        self._commentary_failed = text

    def _commentary_switched(self, on: bool) -> None:
        """Switched on during a take: start at once (off: the worker idles, its model stays loaded)."""
        if on and self.takes.engine is not None:
            self._start_commentary()

    def _request_comment(self) -> None:
        self._start_commentary()
        self._comment_requested = True  # passed on once the worker is up

    def _show_commentary(self) -> None:
        """Pass the panel's choices to the worker and show what it wrote (or why it could not)."""
        worker, writer = self.commentator, self.comment_writer
        error = worker.error if worker is not None else self._commentary_failed
        if error and error != self._comment_error:
            self._comment_error = error
            self.banner.show_error(f"Commentary: {error}")
        if worker is None:
            return
        on = self.commentary.isChecked()
        writer.use_lcgan = self.commentary.lcgan.isChecked() and writer.model.lcgan is not None
        interval = self._comment_interval(self.commentary.every.value() if on else 0)
        if worker.interval != interval:
            worker.set_interval(interval)
        if self._comment_to is not False:
            worker.history_path = history_path_for(self._comment_to) if self._comment_to else None
            self._comment_to = False
        if self._comment_requested:
            self._comment_requested = False
            worker.request()
        for comment in worker.drain():
            if on:  # a sentence under way when it was switched off stays unshown
                self.commentary.show_sentence(comment.text, comment.attributes)

    def _comment_interval(self, bars: int) -> float:
        """Seconds between sentences; 0 bars: only when asked (a day is "never" for a booth)."""
        return bars * 4 * 60.0 / self.base_preset.engine.bpm if bars else 86_400.0

    def list_takes(self) -> None:
        folder = paths.takes_dir()
        self.takes_panel.show_takes(list_sessions(folder) if folder.is_dir() else [])

    def stop(self) -> None:
        self._finish_recording()
        self.takes.stop()

    def toggle_play(self) -> None:
        if self.locked:
            return
        self.stop() if self.takes.engine is not None else self.play()

    def toggle_record(self) -> None:
        """Rec: record from now on into the take playing (its clock and model go on, no gap), or
        start a recorded take when none plays; again: close the file, the music playing on."""
        if self.locked:
            self.transport.show_state(self.takes.engine is not None, self.recording is not None)
            return
        engine = self.takes.engine
        playing = engine is not None and engine.running and not self.takes.busy
        if self.recording:
            if playing:
                self.takes.stop_recording()
            self._finish_recording()
            self._comment_to = None
        elif playing:
            self.recording = self.transport.take.text() or self._new_take_name()
            self.takes.start_recording(self.recording)
            self._comment_to = self.recording  # the commentary's history from here goes beside it
        else:
            self.play(record=self.transport.take.text() or self._new_take_name())

    def panic(self) -> None:
        """All notes off now; allowed when locked (it is the safety)."""
        self.takes.panic()

    def _midi_action(self, action: str) -> None:
        """A learned controller's press: the panel's own button or key for it."""
        {"play": self.toggle_play, "panic": self.panic, "record": self.toggle_record,
         "next_preset": self.next_preset, "previous_preset": self.previous_preset}[action]()

    def reconnect(self) -> None:
        self.play(record=self._new_take_name() if self.recording else None)

    # --- OSC -----------------------------------------------------------------------------------

    def use_osc(self) -> None:
        """Run OSC as the OSC panel says (restarted only when that changed, so a booth's preset
        reset keeps the connection)."""
        settings = self.osc_panel.settings()
        if settings != self._osc_settings:
            self._osc_settings = settings
            self.osc_ignored.clear()
            self.osc.configure(*settings)

    def _press_for_osc(self, button: str) -> None:
        """OSC presses the panel's own buttons (so a locked booth stays locked); /play starts a
        take only when none plays, as ``perform --osc`` does, and never restarts one."""
        if button == "play":
            if self.takes.engine is None and not self.takes.busy:
                self.transport.play.click()
        else:
            {"stop": self.transport.stop, "panic": self.transport.panic}[button].click()

    def _apply_osc_preset(self, preset: presets.Preset) -> None:
        """OSC /preset: the preset's pitch, density, key and program now; the rest of the panel stays."""
        self.hub.gesture(Controls(preset.controls.pitch, preset.controls.density))
        self.harmony.show_preset(preset)
        self.hub.set_histogram(self.harmony.histogram())
        if preset.output.program >= 0:
            self.output.set_program(preset.output.program)  # a playing take hears it at once (_send_sound)

    def _send_sound(self) -> None:
        """The instrument or volume chosen while a take plays: sent at once, not at the next Play."""
        engine = self.takes.engine
        if engine is not None and engine.running:
            messages = self.output.sound_messages(engine.settings.channel)
            if messages:
                engine.send_now(messages)

    def _finish_recording(self) -> None:
        """The recording is closed (by Stop, or Rec again): the next one gets a new name."""
        if self.recording:
            self.last_take, self.recording = self.recording, None
            self.transport.take.setText(self._new_take_name())
            QTimer.singleShot(1500, self.list_takes)  # once the take's files are closed

    @staticmethod
    def _new_take_name() -> str:
        return str(paths.takes_dir() / f"take-{datetime.now():%Y%m%d-%H%M%S}.mid")

    # --- model and sources -----------------------------------------------------------------------

    def choose_checkpoint(self, path: str) -> None:
        """Select a checkpoint; it loads in the background and a bad one shows an error."""
        self.model.select(path)
        self._loading = path
        self.takes.preload(path)

    def use_armband(self, spec: str) -> None:
        """Connect the EMG armband (``spec`` as ``livegen emg --source``), or disconnect it."""
        if self.armband is not None:
            self.armband.stop()
            self.armband, self._captured = None, {}
            self.muscles.show_armband(None)
            return
        if spec == "off":
            return

        try:
            device = open_device(spec)
            source = EmgControls.for_device(device, self.base_preset.emg, self.hub.controls)
            source.start(self.hub.armband(), self.hub.clock)
        except (UserError, OSError) as exc:
            self.banner.show_error(f"Armband: {exc}")
            return
        self.armband, self.armband_spec, self._captured = source, spec, {}
        self.muscles.show_armband(device.state)

    def calibrate_armband(self, phase: str) -> None:
        """Keep the envelopes for ``CAPTURE_SECONDS`` of a relaxed arm ("rest") or the strongest
        contraction ("max"); once both are in, the calibration is used and saved to the profile."""
        source = self.armband
        if source is None:
            return
        source.begin_capture()
        self.muscles.calibrating(phase, CAPTURE_SECONDS)

        def done() -> None:
            if source is not self.armband:
                return
            self._captured[phase] = source.end_capture()
            self.muscles.calibrating(None)
            if len(self._captured.get(phase, ())) < 10:
                self.banner.show_error("Armband: no EMG arrived while calibrating: is it streaming?")
                self._captured.pop(phase)
                return
            if {"rest", "max"} <= set(self._captured):
                try:
                    weak = source.calibrate(self._captured["rest"], self._captured["max"], self.armband_spec)
                except (UserError, OSError) as exc:
                    self.banner.show_error(f"Armband: {exc}")
                    return
                if weak:
                    self.banner.show_error(f"Armband: channel(s) {', '.join(map(str, weak))} hardly rose above "
                                           "rest: check the fit, or calibrate max again with a stronger contraction")

        QTimer.singleShot(int(CAPTURE_SECONDS * 1000), done)

    def _show_model_sensors(self) -> None:
        """The DCRNN is played through z: choosing it brings the muscles and noise to the front."""
        self.sensors.setCurrentIndex(1 if self.model.model.currentData() == "dcrnn" else 0)

    def use_source(self, kind: str, script: str | None = None) -> None:
        """Steer from the pad, the camera or a control script (``script``, else one asked for in a
        file dialog); one that cannot open shows why and the pad steers."""
        if self.source is not None:
            self.source.stop()
            self.source = None
        if self.script_path is not None:
            self.script_path = None
            self.gesture.show_script(None)
            self.takes.use_script(None)
        if kind == "camera":
            try:
                self.source = self._open_camera()
            except UserError as exc:
                self.banner.show_error(f"Camera: {exc}")
                self.gesture.source.setCurrentIndex(0)
                return
            self.source.start(self.hub.gesture, self.hub.clock)
        elif kind == "script":
            path = script or self.gesture.ask_script()
            if not path:  # cancelled: the pad steers
                self.gesture.source.setCurrentIndex(0)
                return
            self.use_script(path)
        self.gesture.show_camera(kind == "camera")

    def _hand_moved(self, pitch: float, density: float) -> None:
        """The pad or the sliders: the hand's pitch and density, unless the Learn tab takes the
        pad as its hand (a take recording, a mapping playing from it)."""
        self.learn.pad_moved(pitch, density)
        if not self.learn.hand_from_pad:
            self.hub.gesture(Controls(pitch, density))

    def use_script(self, path: str) -> None:
        """Steer from a control script: the playing take from now (the script's t = 0 is now),
        each take after it from its start; a script that is not valid shows why and the pad stays."""
        try:
            parse_script(path)
        except UserError as exc:
            self.banner.show_error(f"Control script: {exc}")
            self.gesture.source.setCurrentIndex(0)
            return
        self.script_path = path
        self.gesture.show_script(path)
        self.takes.use_script(path)

    def _open_camera(self):
        settings = self.base_preset.camera
        frames = open_frame_source(settings.source, lambda text: None)
        mapper = HandMapper(MappingSettings.from_preset(settings), neutral=(0.5, 0.5))
        return CameraControls(frames, make_tracker(settings.tracker, settings), mapper, self.hub.controls,
                              pace=not frames.live, log=lambda text: None)

    # --- presets -------------------------------------------------------------------------------

    def preset(self) -> presets.Preset:
        """Everything on the panel, as a preset."""
        preset = copy.deepcopy(self.base_preset)
        for panel in self._preset_panels():
            panel.fill(preset)
        controls = self.hub.controls
        preset.controls.pitch = round(controls.pitch, 3)
        preset.controls.density = round(controls.density, 3)
        gesture = self.gesture.source.currentData()
        preset.gui.gesture_source = f"script:{self.script_path}" if self.script_path else gesture
        preset.gui.dcrnn_z = [round(float(v), 3) for v in controls.z] if controls.z else []
        return preset

    def _preset_panels(self) -> tuple:
        return self.output, self.model, self.harmony, self.muscles, self.commentary, self.osc_panel, self.respond

    def apply_preset(self, preset: presets.Preset, name: str = "") -> None:
        self.base_preset = copy.deepcopy(preset)
        for panel in self._preset_panels():
            panel.show_preset(preset)
        self._send_sound()
        self.hub.gesture(Controls(preset.controls.pitch, preset.controls.density))
        self.hub.set_histogram(self.harmony.histogram())
        self.hub.muscles(z=tuple(preset.gui.dcrnn_z) or None, theme=preset.gui.dcrnn_theme, toward=None, mix=0.0)
        kind, _, script = preset.gui.gesture_source.partition(":")
        self.gesture.choose_source(kind)
        self.use_source(kind, script or None)
        self.gesture.show_position(preset.controls.pitch, preset.controls.density)
        self.preset_name = name
        self.learn.show_preset(self.base_preset)
        self.preset_panel.show_name(name or "(unsaved)")
        self.transport.take.setText(self._new_take_name())
        self.use_osc()
        self.midi_learn.show()
        self._saved_preset = self._settings(self.preset())

    def load_preset(self, path: str) -> None:
        """Load a preset (a file or a name); Ctrl+Z brings back the panel as it was before."""
        try:
            preset = presets.load(path)
        except (UserError, OSError) as exc:
            self.banner.show_error(f"Preset: {exc}")
            return
        self._undo = (self.preset(), self.preset_name, self._saved_preset)
        self.apply_preset(preset, Path(path).stem)

    def undo_preset(self) -> None:
        """Ctrl+Z: the panel as it was before the last preset change (again: the change is back)."""
        if self.locked or self._undo is None:
            return
        preset, name, saved = self._undo
        self._undo = (self.preset(), self.preset_name, self._saved_preset)
        self.apply_preset(preset, name)
        self._saved_preset = saved  # edits made before the change are unsaved again
        self._show_unsaved()

    def step_preset(self, step: int) -> None:
        """The next (+1) or previous (-1) preset by name, as ``--preset NAME`` finds them."""
        if self.locked:
            return
        names = presets.names()
        if not names:
            return
        at = names.index(self.preset_name) if self.preset_name in names else -1 if step > 0 else 0
        self.load_preset(names[(at + step) % len(names)])

    def next_preset(self) -> None:
        self.step_preset(1)

    def previous_preset(self) -> None:
        self.step_preset(-1)

    @staticmethod
    def _settings(preset: presets.Preset) -> presets.Preset:
        """A preset's settings, without the gesture of the moment (moving the pad is playing, not editing)."""
        preset.controls.pitch = preset.controls.density = 0.0
        preset.gui.dcrnn_z = []
        return preset

    def _show_unsaved(self) -> None:
        """The preset's name, marked * while the panel differs from it as loaded or saved."""
        unsaved = self._saved_preset is not None and self._settings(self.preset()) != self._saved_preset
        self.preset_panel.show_name(self.preset_name or "(unsaved)", unsaved)

    def save_preset(self, path: str) -> None:
        try:
            presets.save(self.preset(), path)
        except OSError as exc:
            self.banner.show_error(f"Preset: cannot save {path}: {exc.strerror or exc}")
            return
        self.preset_name = Path(path).stem
        self._saved_preset = self._settings(self.preset())
        self.preset_panel.show_name(self.preset_name)

    # --- booth lock ---------------------------------------------------------------------------

    def set_locked(self, locked: bool, unlock_key: str = "") -> None:
        """Lock everything but the gesture and Panic (a booth's visitors play, they do not configure):
        locked, the window shows the performance view only, with a padlock saying how to unlock."""
        self.locked = locked
        for widget in (self.columns["left"], self.harmony, self.gesture.source, self.osc_panel, self.transport.play,
                       self.transport.stop, self.transport.record, self.transport.view):
            widget.setEnabled(not locked)
        self.transport.lock_icon.setVisible(locked)
        self.transport.view.setVisible(not locked)  # visitors see the performance view only
        self.transport.lock.setText(f"Locked · {unlock_key} unlocks" if locked and unlock_key else
                                    "Locked" if locked else "")
        if locked:
            self.show_view("performance")

    # --- the timers ---------------------------------------------------------------------------

    def _tick(self) -> None:
        """Drain the engine's ring buffers and repaint: never waits on the engine."""
        self._ticks += 1
        self._show_errors()
        engine = self.takes.engine
        if engine is not None:
            while engine.sent_messages:
                t, message = engine.sent_messages.popleft()
                self.roll.add(t, message)
                self.stage.roll.add(t, message)
                self.played.sent_messages.append((t, message))
                self.readout.sent += 1
                self._last_sent = time.monotonic()
            while engine.recent_timing:
                self.readout.timing.append(engine.recent_timing.popleft())
            self.roll.now = self.stage.roll.now = engine.now()
            (self.stage.roll if self.view == "performance" else self.roll).update()
            if self.recording and not self.takes.busy and engine.running and engine.record != self.recording:
                self.recording = None  # the file could not be opened (said on the banner): not recording
            if self.takes.replaying and engine.end is not None and engine.now() > engine.end + 0.5:
                self.stop()  # the replayed take is over
            if engine.failed and not self.takes.busy:
                self.banner.show_error(f"The engine stopped: {engine.failed}", "Restart")
        self._show_transport(engine)
        controls = self.hub.controls
        self.gesture.show_position(controls.pitch, controls.density)
        self.stage.pad.show_position(controls.pitch, controls.density)
        self._show_sensors()
        self.conditioning.show_controls(controls)
        self._show_tempo(engine)
        self._show_commentary()
        self.learn.tick()
        self.muscles.z.show_values(controls.z or ())
        if self._ticks % NUMBERS_EVERY == 0:
            values = self.readout.measure(engine)
            playing = engine is not None and engine.running
            levels, warnings = health(values if playing else {}, engine.stats.late_dropped if playing else 0)
            self.numbers.show_numbers(self.readout.numbers(values, engine), levels)
            if playing and self._no_output(engine):
                warnings.insert(0, "no MIDI output plays these notes — choose Output → Port, or API fluidsynth")
            self.stage.show_warnings(warnings, "alarm" in levels.values() or bool(warnings and playing
                                                                                  and self._no_output(engine)))
            server = self.osc.server
            self.osc_panel.show_status(self.osc.status, server.received if server else 0, list(self.osc_ignored))
            self._show_unsaved()

    def _show_tempo(self, engine) -> None:
        """The playing take's tempo (the followed one, with what it follows) and its beat, else the
        one a take starts at."""
        if engine is None or not engine.running:
            self.conditioning.show_tempo(self.model.tempo.value())
            self.stage.show_tempo(self.model.tempo.value(), None)
            self._beat = None
            return
        follow = self.takes.follow
        bpm = engine.controls.bpm or engine.settings.bpm
        now = engine.now()
        if self._beat is None or self._beat[0] is not engine:
            self._beat = (engine, max(0.0, now), 0.0)
        _, last, beats = self._beat
        self._beat = (engine, max(last, now), beats + max(0.0, now - last) * bpm / 60.0)  # follows tempo changes
        self.stage.show_tempo(bpm, self._beat[2] if now >= 0 else None)
        if follow is None:
            self.conditioning.show_tempo(bpm)
        else:
            outside = "Link" if self.takes.beats_for == "link" else "MIDI clock"
            shown = follow.source_bpm if follow.locked and follow.source_bpm else bpm  # the band's, not the bend
            self.conditioning.show_tempo(shown, outside if follow.locked else "waiting", follow.source.name)

    def _show_errors(self) -> None:
        while not self.ports.errors.empty():
            self.banner.show_error(f"MIDI ports: {self.ports.errors.get()}")
        while not self.osc.errors.empty():
            self.banner.show_error(self.osc.errors.get())
            self.osc_panel.setChecked(False)
        while not self.takes.errors.empty():
            message = self.takes.errors.get()
            if self._loading and self._loading in message:
                self.model.forget(self._loading)
                self._loading = None
                self.banner.show_error(f"Model: {message}")
                continue
            if self.takes.engine is None:
                self.recording = None
            self.banner.show_error(message, "Retry")

    def _no_output(self, engine) -> bool:
        """The take plays into nothing: no MIDI system, a port that failed to open, or one that vanished."""
        return (engine.output.api is None or engine.port_error is not None or self._output_gone
                or engine.player_info.get("port") == NullOutput.name)

    def state_word(self, engine) -> str:
        """What the performance view says in large letters."""
        if self.takes.busy:
            return "STARTING"
        if engine is None or not engine.running:
            return "STOPPED"
        if self._no_output(engine):
            return "NO OUTPUT"
        return "RECORDING" if self.recording and engine.record else "PLAYING"

    def _show_transport(self, engine) -> None:
        playing = engine is not None and engine.running
        busy = self.takes.busy
        self.transport.show_state(playing or busy, self.recording is not None and (playing or busy))
        word = self.state_word(engine)
        self.stage.show_state(word)
        lamp = "dead" if word == "NO OUTPUT" else "on" if time.monotonic() - self._last_sent < ACTIVITY_HOLD else "idle"
        self.stage.midi_light.show_activity(lamp if playing else "idle")
        if busy:
            status = "starting…"
        elif word == "NO OUTPUT":
            status = "NO OUTPUT: no MIDI port plays these notes (choose Output → Port, or API fluidsynth)"
        elif playing:
            status = f"playing on {engine.player_info.get('port', NullOutput.name)}"
        else:
            status = "stopped" if engine is None else "stopped: the engine failed"
            if self.last_take:
                status += f" · saved {self.last_take}"
        if self.osc.server is not None:
            status += " · OSC {}:{}".format(*self.osc.server.address)
        self.transport.status.setText(status)
        self.transport.status.setStyleSheet(f"color: {theme.RECORD.name()}; font-weight: 700;"
                                            if word == "NO OUTPUT" else "")
        seconds = max(0.0, engine.now()) if playing else 0.0
        self.transport.elapsed.setText(f"{int(seconds) // 60}:{int(seconds) % 60:02d}")
        self.transport.elapsed.setStyleSheet("color: #ff4d5e;" if self.recording and playing else "")
        self.stage.show_time(seconds, bool(self.recording and playing))

    def _show_sensors(self) -> None:
        """Each device's light (connected or not) apart from what it tracks (a hand in the image,
        muscles sending), on both views."""
        if self.source is not None:
            frame, hand = self.source.latest_frame()
            mirror = self.base_preset.camera.mirror
            self.gesture.camera.show_frame(frame, hand, mirror)
            self.stage.camera.show_frame(frame, hand, mirror)
            device = {"running": ("connected", "connected") if frame is not None else ("reconnecting", "opening"),
                      "lost": ("reconnecting", "reconnecting"), "ended": ("lost", "lost")}[self.source.state]
            tracked = ("connected", "tracked") if hand is not None else ("lost", "lost")
        else:
            device = ("off", "off")
            tracked = ("off", "script" if self.script_path else "mouse")
        for panel in (self.gesture, self.stage):
            panel.camera_light.set_state(*device)
        self.gesture.hand_light.set_state(*tracked)
        self.stage.hand.set_state(*tracked)
        if self.armband is None:
            self.stage.armband.set_state("off", "off")
            return
        view = self.armband.view()
        self.muscles.show_armband(view.state, view.levels, view.calibrated)
        if view.error and view.state == "lost" and not self.banner.isVisible():
            self.banner.show_error(f"Armband: {view.error}")
        samples, since = self._armband_samples
        count, now = int(view.stats.get("samples", 0)), time.monotonic()
        if count != samples:
            self._armband_samples = samples, since = (count, now)
        sending = view.state == "connected" and now - since < 0.5
        self.stage.armband.set_state(*(("connected", "tracked") if sending else
                                       ("reconnecting", "no signal") if view.state == "connected" else
                                       ("lost", view.state)))

    def _check_ports(self) -> None:
        """Slow path (1 Hz): list the outputs off the Qt thread and notice a vanished port."""
        self.ports.refresh(self.output.api.currentText())
        if self.ports.latest is None:
            return
        api, outputs, inputs = self.ports.latest
        self.output.set_ports(outputs)
        self.model.set_clock_sources(inputs)
        self.respond.set_inputs(inputs)
        engine = self.takes.engine
        if (engine is not None and engine.running and engine.output.port and not engine.output.virtual
                and engine.output.api == api and self.ports.listed_at > engine.start_time
                and engine.output.port not in outputs):
            self._output_gone = True
            self.banner.show_error(f"MIDI output {engine.output.port!r} is gone: the music goes on (and into "
                                   "the recording) but does not reach it. Reconnect once it is back.", "Reconnect")

    def _rescan_ports(self) -> None:
        self.ports.refresh(self.output.api.currentText(), rescan=True)

    def closeEvent(self, event):
        self.timer.stop()
        self.port_timer.stop()
        if self.source is not None:
            self.source.stop()
        if self.armband is not None:
            self.armband.stop()
        if self.commentator is not None:
            self.commentator.stop()
        self.osc.shutdown()  # first: OSC must not start a take while the last one stops
        self.midi_learn.stop()
        self.takes.shutdown()
        self.ports.shutdown()
        super().closeEvent(event)
