"""The window's panels, one group box each. A panel shows its part of a preset (``show_preset``)
and writes it back (``fill``), so presets round-trip through the widgets and nothing else."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout,
                             QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                             QSizePolicy, QSlider, QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from livegen import paths, presets
from livegen.gui.widgets import PITCH_CLASS_NAMES, Bars, CameraView, HistogramSliders, StatusLight, XYPad
from livegen.gui.stage import level_color
from livegen.music.conditioning import CONTROL_RANGES, control_density_to_rate, control_pitch_to_midi, key_histogram
from livegen.music.general_midi import PROGRAM_NAMES, program_name

VIRTUAL = "\0virtual"  # the port list's "create a virtual port" entry
KEYS = [f"{name} {mode}" for mode in ("major", "minor") for name in
        ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]
FREE, CUSTOM = "Free (the model decides)", "Custom (sliders)"


PORT_CHARS = 30  # a port name longer than this is cut in its middle: its start and its number both show


def elide_middle(text: str, limit: int = PORT_CHARS) -> str:
    """``text`` cut in the middle to ``limit`` characters ("Scarlett 2i2…Stage 3 MIDI")."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def note_name(midi: float) -> str:
    n = round(midi)
    return f"{PITCH_CLASS_NAMES[n % 12]}{n // 12 - 1}"


def offer(combo: QComboBox, first: list, entries: list, last: list) -> None:
    """List (text, data) ``entries`` between the fixed ``first`` and ``last`` ones; the chosen
    entry stays chosen, and listed, when it is gone (a port unplugged for a moment)."""
    chosen = combo.currentData()
    if chosen and chosen not in [data for _, data in first + entries + last]:
        entries = entries + [(combo.currentText(), chosen)]
    wanted = first + entries + last
    if [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())] == wanted:
        return
    combo.blockSignals(True)
    combo.clear()
    for text, data in wanted:
        combo.addItem(text, data)
    combo.setCurrentIndex(max(0, combo.findData(chosen or "")))
    for index, (_, data) in enumerate(wanted):
        if data and data != VIRTUAL:
            combo.setItemData(index, data, Qt.ItemDataRole.ToolTipRole)  # the whole name where it is cut
    combo.blockSignals(False)


def choose(combo: QComboBox, data: str, text: str | None = None) -> None:
    """Select ``data``, listing it (as ``text``) where the port list does not have it (yet)."""
    if combo.findData(data) < 0:
        combo.addItem(text or data, data)
    combo.setCurrentIndex(combo.findData(data))


class OutputPanel(QGroupBox):
    """Where the notes go: API, port (or a virtual one), channel, instrument; for the built-in
    synth, the SoundFont it plays (its row takes the virtual name's place, which it has no use for);
    and the port a MIDI clock goes to, so a drum machine or DAW follows the take's tempo."""

    refresh_requested = pyqtSignal()
    sound_changed = pyqtSignal()  # the instrument or the volume: the playing take hears it at once

    def __init__(self):
        super().__init__("Output")
        self.api = QComboBox()
        self.api.addItems(["auto", "alsa", "jack", "fluidsynth"])
        self.api.setItemData(3, "the built-in synth (General MIDI SoundFont): sound without a synth",
                             Qt.ItemDataRole.ToolTipRole)
        self.port = QComboBox()
        self.port.setMinimumContentsLength(14)
        self.port.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.refresh = QPushButton("↻")
        self.refresh.setToolTip("list the MIDI outputs again")
        self.refresh.clicked.connect(self.refresh_requested)
        self.virtual = QLineEdit()
        self.virtual.setPlaceholderText("livegen")
        self.channel = QSpinBox()
        self.channel.setRange(1, 16)
        self.program = QComboBox()
        self.program.addItem("synth's own", -1)
        for number in range(len(PROGRAM_NAMES)):
            self.program.addItem(program_name(number), number)
        self.program.setMaxVisibleItems(16)
        self.program.setMinimumContentsLength(14)
        self.program.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.program.setToolTip("the General MIDI instrument: at the start of a take, and at once while one plays")
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(-1, 127)
        self.volume.setToolTip("channel volume (MIDI CC 7): at the start of a take, and at once while one plays; "
                               "all the way left leaves the synth's own")
        self.volume_text = QLabel()
        self.volume_text.setMinimumWidth(76)
        self.volume.valueChanged.connect(self._show_volume)
        self.program.currentIndexChanged.connect(self.sound_changed)
        self.volume.valueChanged.connect(self.sound_changed)
        self.soundfont = QLineEdit()
        self.soundfont.setPlaceholderText("General MIDI")
        self.soundfont.setToolTip("the built-in synth's SoundFont (.sf2); empty: $LIVEGEN_SOUNDFONT, else "
                                  "the system's General MIDI one. Applies from the next Play")
        self.choose_soundfont = QPushButton("…")
        self.choose_soundfont.setFixedWidth(40)
        self.choose_soundfont.setToolTip("open a SoundFont (.sf2)")
        self.choose_soundfont.clicked.connect(self._ask_soundfont)
        self.clock_out = QComboBox()
        self.clock_out.setMinimumContentsLength(14)
        self.clock_out.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.clock_out.setToolTip("send MIDI clock (start, 24 ticks a beat at the tempo, stop) to this port; "
                                  "applies from the next Play")
        port_row = QHBoxLayout()
        port_row.addWidget(self.port, 1)
        port_row.addWidget(self.refresh)
        self.soundfont_row = QHBoxLayout()
        self.soundfont_row.addWidget(self.soundfont, 1)
        self.soundfont_row.addWidget(self.choose_soundfont)
        self.form = QFormLayout(self)
        self.form.addRow("API", self.api)
        self.form.addRow("Port", port_row)
        self.form.addRow("Virtual name", self.virtual)
        self.form.addRow("SoundFont", self.soundfont_row)
        self.form.addRow("Channel", self.channel)
        self.form.addRow("Instrument", self.program)
        volume_row = QHBoxLayout()
        volume_row.addWidget(self.volume, 1)
        volume_row.addWidget(self.volume_text)
        self.form.addRow("Volume", volume_row)
        self.form.addRow("Clock out", self.clock_out)
        self.port.currentIndexChanged.connect(self._virtual_enabled)
        self.api.currentTextChanged.connect(self._show_api_rows)
        self.set_ports([])
        self._show_api_rows()

    def set_ports(self, outputs: list[str]) -> None:
        """Offer ``outputs`` for the notes and the clock; a chosen port stays chosen (and listed)
        even when it is gone."""
        names = [p for p in outputs if "livegen" not in p.lower()]
        offer(self.port, [("Automatic", "")], [(elide_middle(p), p) for p in names], [("Virtual port", VIRTUAL)])
        offer(self.clock_out, [("Off", "")], [(elide_middle(p), p) for p in names if p != "fluidsynth"], [])
        self._virtual_enabled()

    def _show_volume(self, value: int) -> None:
        self.volume_text.setText("synth's own" if value < 0 else str(value))

    def set_program(self, program: int) -> None:
        self.program.setCurrentIndex(self.program.findData(program))

    def sound_messages(self, channel: int) -> list[list[int]]:
        """The program change and channel volume the panel asks for, for ``channel`` (0..15)."""
        program, volume = self.program.currentData(), self.volume.value()
        return ([[0xC0 | channel, program]] if program >= 0 else []) + (
            [[0xB0 | channel, 7, volume]] if volume >= 0 else [])

    def _virtual_enabled(self) -> None:
        self.virtual.setEnabled(self.port.currentData() == VIRTUAL)

    def _show_api_rows(self) -> None:
        builtin = self.api.currentText() == "fluidsynth"
        self.form.setRowVisible(self.virtual, not builtin)
        self.form.setRowVisible(self.soundfont_row, builtin)

    def _ask_soundfont(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a SoundFont", "", "SoundFonts (*.sf2)")
        if path:
            self.soundfont.setText(path)

    def soundfont_file(self) -> str | None:
        """The SoundFont chosen for the built-in synth, or None for its default."""
        return self.soundfont.text().strip() or None

    def clock_port(self) -> str | None:
        """The port chosen for the MIDI clock, or None for no clock."""
        return self.clock_out.currentData() or None

    def show_preset(self, preset: presets.Preset) -> None:
        out = preset.output
        self.api.setCurrentText(out.api)
        choose(self.port, VIRTUAL if out.virtual else out.port)
        choose(self.clock_out, out.clock_out)
        self.virtual.setText(out.virtual)
        self.soundfont.setText(out.soundfont)
        self.channel.setValue(out.channel)
        self.blockSignals(True)  # a preset's sound reaches a playing take through apply_preset, once
        self.set_program(out.program)
        self.volume.setValue(out.volume)
        self._show_volume(out.volume)
        self.blockSignals(False)

    def fill(self, preset: presets.Preset) -> None:
        out = preset.output
        out.api = self.api.currentText()
        virtual = self.port.currentData() == VIRTUAL
        out.port = "" if virtual else self.port.currentData()
        out.virtual = (self.virtual.text().strip() or "livegen") if virtual else ""
        out.soundfont = self.soundfont_file() or ""
        out.clock_out = self.clock_port() or ""
        out.channel, out.program, out.volume = self.channel.value(), self.program.currentData(), self.volume.value()


class ModelPanel(QGroupBox):
    """Which model improvises, and how: temperature, lookahead, tempo, the seed and the engine's
    steering (all apply from the next Play)."""

    checkpoint_chosen = pyqtSignal(str)
    SHIPPED = 3  # the first entries: the shipped models

    def __init__(self):
        super().__init__("Model")
        self.model = QComboBox()
        self.model.addItem("Char-RNN", "charrnn")
        self.model.setItemData(0, "the shipped Char-RNN, trained on POP909", Qt.ItemDataRole.ToolTipRole)
        self.model.addItem("DCRNN", "dcrnn")
        self.model.setItemData(1, "the shipped DCRNN: the z vector (EMG, script) shapes the rhythm",
                               Qt.ItemDataRole.ToolTipRole)
        self.model.addItem("Char-RNN, expressive", "expressive")
        self.model.setItemData(2, "the shipped Char-RNN in clock time: a player's own timing, 10 ms steps, "
                               "not the beat's (with timing free)", Qt.ItemDataRole.ToolTipRole)
        self.model.setMinimumContentsLength(9)
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.open = QPushButton("…")
        self.open.setFixedWidth(40)
        self.open.setToolTip("open a livegen checkpoint (.safetensors)")
        self.open.clicked.connect(self._ask_checkpoint)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.1, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setToolTip("lower is safer, higher is wilder; applies from the next Play")
        self.lookahead = QDoubleSpinBox()
        self.lookahead.setRange(0.05, 2.0)
        self.lookahead.setSingleStep(0.05)
        self.lookahead.setSuffix(" s")
        self.lookahead.setToolTip("music generated ahead of the clock; applies from the next Play")
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(*CONTROL_RANGES["bpm"])
        self.tempo.setDecimals(0)
        self.tempo.setSuffix(" bpm")
        self.tempo.setToolTip("the DCRNN's 16th-note grid (and the clock out); with a clock in or Link, the "
                              "tempo a take starts at. Applies from the next Play")
        self.tempo.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)  # room for its source beside it
        self.tempo_source = QComboBox()
        self.tempo_source.setMinimumContentsLength(6)
        self.tempo_source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.tempo_source.currentIndexChanged.connect(self._explain_tempo_source)
        self.set_clock_sources([])
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("the same seed and the same gestures play the same notes; applies from the next Play")
        self.steering = QCheckBox("Steering")
        self.steering.setToolTip("the engine nudges the Char-RNN's notes toward the asked pitch, density and key; "
                                 "off: the model's own conditioning only. Applies from the next Play")
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(self.open)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.steering)
        form = QFormLayout(self)
        form.addRow("Model", row)
        form.addRow("Temperature", self.temperature)
        form.addRow("Lookahead", self.lookahead)
        tempo_row = QHBoxLayout()
        tempo_row.addWidget(self.tempo, 1)
        tempo_row.addWidget(self.tempo_source, 1)
        form.addRow("Tempo", tempo_row)
        form.addRow("Seed", seed_row)

    def set_clock_sources(self, inputs: list[str]) -> None:
        """Offer the MIDI inputs (other programs' outputs) a clock may come from."""
        offer(self.tempo_source, [("Internal", "internal")],
              [(f"Clock: {p}", f"clock:{p}") for p in inputs if "livegen" not in p.lower()],
              [("Link", "link"), ("The player", "player")])
        self._explain_tempo_source()

    def _explain_tempo_source(self) -> None:
        """The choice in full where the box is too narrow for it (a long port name)."""
        kind, _, port = (self.tempo_source.currentData() or "internal").partition(":")
        why = {"internal": "the tempo beside it", "link": "the Ableton Link session on the local network "
               "(multicast on every interface)", "clock": f"the MIDI clock that {port} sends",
               "player": "the tempo of what the player plays on the MIDI in (choose its port there)"}[kind]
        self.tempo_source.setToolTip(f"the beat follows {why}; choose this tempo, another program's MIDI clock "
                                     "(its output port), Ableton Link or the player. Applies from the next Play")

    def _ask_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a livegen checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.checkpoint_chosen.emit(path)

    def select(self, model: str) -> None:
        if self.model.findData(model) < 0:
            self.model.addItem(model.rsplit("/", 1)[-1], model)
            self.model.setItemData(self.model.count() - 1, model, Qt.ItemDataRole.ToolTipRole)
        self.model.setCurrentIndex(self.model.findData(model))

    def forget(self, model: str) -> None:
        """Drop a checkpoint that failed to load and go back to the shipped model."""
        index = self.model.findData(model)
        if index >= self.SHIPPED:  # the shipped models stay
            self.model.removeItem(index)
        self.model.setCurrentIndex(0)

    def show_preset(self, preset: presets.Preset) -> None:
        self.select(preset.model.model)
        self.temperature.setValue(preset.model.temperature)
        self.seed.setValue(preset.model.seed)
        self.lookahead.setValue(preset.engine.lookahead)
        self.tempo.setValue(preset.engine.bpm)
        source = preset.engine.tempo_source
        choose(self.tempo_source, source, f"Clock: {source.partition(':')[2]}")
        self.steering.setChecked(preset.engine.steering)

    def fill(self, preset: presets.Preset) -> None:
        preset.model.model = self.model.currentData()
        preset.model.temperature = round(self.temperature.value(), 2)
        preset.model.seed = self.seed.value()
        preset.engine.lookahead = round(self.lookahead.value(), 2)
        preset.engine.bpm = float(round(self.tempo.value()))
        preset.engine.tempo_source = self.tempo_source.currentData()
        preset.engine.steering = self.steering.isChecked()


class PresetPanel(QGroupBox):
    """Load and save everything on the panel as a TOML preset."""

    load_requested = pyqtSignal(str)
    save_requested = pyqtSignal(str)

    def __init__(self):
        super().__init__("Preset")
        self.name = QLabel()
        self.name.setObjectName("big")
        # one row, so the setup column keeps room at 720 px high; a long name is cut, not the buttons
        self.name.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        load, save = QPushButton("Load…"), QPushButton("Save…")
        load.clicked.connect(lambda: self._ask(QFileDialog.getOpenFileName, self.load_requested, saving=False))
        save.clicked.connect(lambda: self._ask(QFileDialog.getSaveFileName, self.save_requested, saving=True))
        layout = QHBoxLayout(self)
        layout.addWidget(self.name, 1)
        layout.addWidget(load)
        layout.addWidget(save)

    def show_name(self, name: str, unsaved: bool = False) -> None:
        """The preset's name, with * while the panel has changes it does not hold."""
        text = f"{name} *" if unsaved else name
        if self.name.text() != text:
            self.name.setText(text)
            self.name.setToolTip(f"{name}: unsaved changes (Save… keeps them; Ctrl+Z undoes a preset change)"
                                 if unsaved else f"{name} (PageUp / PageDown: the previous / next preset)")

    def _ask(self, dialog, signal, saving: bool) -> None:
        """Save in the user's presets folder, where ``--preset NAME`` finds them (never inside the
        installed package); load from there too once it exists, else from the shipped presets."""
        folder = paths.presets_dir()
        if saving:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:  # the dialog still opens; writing elsewhere is the user's choice there
                pass
        elif not folder.is_dir():
            folder = presets.SHIPPED_PRESETS
        path, _ = dialog(self, "Preset", str(folder), "Presets (*.toml)")
        if path:
            signal.emit(path if path.endswith(".toml") else path + ".toml")


class TakesPanel(QGroupBox):
    """The recorded takes (newest first) with their length; Replay plays a take's control stream
    again with its seed and model, so the same notes come back."""

    replay_requested = pyqtSignal(object)  # a livegen.sessions.RecordedTake

    def __init__(self):
        super().__init__("Takes")
        self.list = QListWidget()
        self.list.setMinimumHeight(60)
        self.list.itemDoubleClicked.connect(lambda item: self.replay_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.replay = QPushButton("▶ Replay")
        self.replay.setToolTip("play the selected take again, note for note (double-click does too)")
        self.replay.clicked.connect(self._replay_selected)
        self.refresh = QPushButton("↻")
        self.refresh.setFixedWidth(40)
        buttons = QHBoxLayout()
        buttons.addWidget(self.replay, 1)
        buttons.addWidget(self.refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

    def show_takes(self, takes) -> None:
        selected = self.list.currentItem().text() if self.list.currentItem() else None
        self.list.clear()
        for take in takes:
            minutes, seconds = divmod(int(round(take.duration)), 60)
            item = QListWidgetItem(f"{take.name}   {minutes}:{seconds:02d}" + ("" if take.ended else "  (cut)"))
            item.setData(Qt.ItemDataRole.UserRole, take)
            item.setToolTip(f"{take.controls}\nmodel {take.header.get('model', '?')}, seed {take.seed}")
            self.list.addItem(item)
            if item.text() == selected:
                self.list.setCurrentItem(item)
        self.replay.setEnabled(bool(takes))

    def _replay_selected(self) -> None:
        item = self.list.currentItem() or self.list.item(0)
        if item is not None:
            self.replay_requested.emit(item.data(Qt.ItemDataRole.UserRole))


class GesturePanel(QGroupBox):
    """What steers pitch and density: the mouse on the XY pad, the camera (with its status), or a
    control script (.jsonl, as ``livegen perform --controls script:FILE``), which may steer the
    key and z too; the pad shows where any of them holds the hand."""

    SCRIPT = "Control script…"
    SOURCES = (("Mouse (XY pad)", "pad"), ("Camera", "camera"), (SCRIPT, "script"))
    source_changed = pyqtSignal(str)
    moved = pyqtSignal(float, float)  # pitch, density from the pad or the sliders

    def __init__(self):
        super().__init__("Gesture")
        self.source = QComboBox()
        for text, data in self.SOURCES:
            self.source.addItem(text, data)
        self.source.setMinimumContentsLength(12)  # a long script name is cut, not the row
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.show_script(None)
        self.source.currentIndexChanged.connect(lambda: self.source_changed.emit(self.source.currentData()))
        self.camera_light = StatusLight("Camera")  # the device: connected or not
        self.camera_light.setToolTip("the camera device: connected, reconnecting or lost")
        self.hand_light = StatusLight("Hand")  # what it sees: a hand tracked or not
        self.hand_light.setToolTip("whether a hand is tracked in the image (apart from the camera being connected)")
        self.pad, self.camera = XYPad(), CameraView()
        self.view = QStackedWidget()
        self.view.addWidget(self.pad)
        self.view.addWidget(self.camera)
        self.pitch, self.density = self._slider(), self._slider()
        self.pad.moved.connect(self.moved)
        for slider in (self.pitch, self.density):
            slider.valueChanged.connect(lambda: self.moved.emit(self.pitch.value() / 100, self.density.value() / 100))
        top = QHBoxLayout()
        top.addWidget(self.source, 1)
        top.addWidget(self.camera_light)
        top.addWidget(self.hand_light)
        sliders = QFormLayout()
        sliders.addRow("Pitch", self.pitch)
        sliders.addRow("Density", self.density)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(sliders)

    @staticmethod
    def _slider() -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, 100)
        return slider

    def show_position(self, pitch: float, density: float) -> None:
        """Reflect the current gesture on the pad and sliders without echoing it back."""
        self.pad.show_position(pitch, density)
        for slider, value in ((self.pitch, pitch), (self.density, density)):
            slider.blockSignals(True)
            slider.setValue(round(value * 100))
            slider.blockSignals(False)

    def ask_script(self) -> str:
        """A control script chosen in a file dialog ("" when cancelled)."""
        path, _ = QFileDialog.getOpenFileName(self, "Open a control script", "", "Control scripts (*.jsonl)")
        return path

    def show_script(self, path: str | None) -> None:
        """Name the script steering in the source list (None: none is)."""
        index = self.source.findData("script")
        self.source.setItemText(index, f"Script: {Path(path).name}" if path else self.SCRIPT)
        self.source.setItemData(index, path or "a .jsonl control script: timed pitch, density, key, z (see the README)",
                                Qt.ItemDataRole.ToolTipRole)

    def choose_source(self, kind: str) -> None:
        """Select ``kind`` in the source list without asking for it again (a preset chose it)."""
        self.source.blockSignals(True)
        self.source.setCurrentIndex(self.source.findData(kind))
        self.source.blockSignals(False)

    def show_camera(self, on: bool) -> None:
        self.view.setCurrentWidget(self.camera if on else self.pad)
        self.camera_light.set_state("reconnecting" if on else "off", "opening" if on else "off")
        self.camera_light.setVisible(on)
        self.hand_light.setVisible(on)


class MusclesPanel(QGroupBox):
    """The EMG armband (source, status, 8 levels, calibration) and the z vector it plays.

    Without an armband the z bars are played with the mouse; with one they show what the muscles
    write. The theme is the seeded part of the DCRNN's noise that the 8 played dims sit on."""

    SOURCES = ("myo", "bled112", "serial:/dev/ttyUSB0,115200,csv", "cyton:/dev/ttyUSB0")
    THEMES = tuple("ABCDEFGH")
    connect_requested = pyqtSignal(str)  # a device spec, or "off"
    calibrate_requested = pyqtSignal(str)  # "rest" or "max"
    z_moved = pyqtSignal(tuple)
    theme_chosen = pyqtSignal(str)

    def __init__(self):
        super().__init__("Muscles")
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.addItems(self.SOURCES)
        self.source.setToolTip("myo (BLE), bled112[:PORT], serial:PORT,BAUD,csv, cyton:PORT or replay:FILE")
        self.connect = QPushButton("Connect")
        self.connect.clicked.connect(lambda: self.connect_requested.emit(self.source.currentText().strip() or "off"))
        self.light = StatusLight("Armband")
        self.levels = Bars(8, signed=False, labels=tuple(f"{i + 1}" for i in range(8)))
        self.levels.setToolTip("muscle activity per EMG channel, after calibration")
        self.rest, self.max = QPushButton("Calibrate rest"), QPushButton("Calibrate max")
        self.rest.setToolTip("relax your arm for a few seconds")
        self.max.setToolTip("make your strongest contraction for a few seconds")
        self.rest.clicked.connect(lambda: self.calibrate_requested.emit("rest"))
        self.max.clicked.connect(lambda: self.calibrate_requested.emit("max"))
        self._capturing: str | None = None
        self.z = Bars(8, signed=True, editable=True, labels=tuple(f"z{i}" for i in range(8)))
        self.z.setToolTip("the 8 noise dims the DCRNN plays: drag them, or let the armband write them")
        self.z.changed.connect(self.z_moved)
        self.theme = QComboBox()
        self.theme.addItems(self.THEMES)
        self.theme.setToolTip("the DCRNN's seeded theme under the played dims")
        self.theme.currentTextChanged.connect(self.theme_chosen)
        top = QHBoxLayout()
        top.addWidget(self.source, 1)
        top.addWidget(self.connect)
        calibrate = QHBoxLayout()
        calibrate.addWidget(self.rest)
        calibrate.addWidget(self.max)
        z_title = QHBoxLayout()
        title = QLabel("NOISE z (DCRNN)")
        title.setObjectName("muted")
        z_title.addWidget(title, 1)
        z_title.addWidget(QLabel("Theme"))
        z_title.addWidget(self.theme)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.light)
        layout.addWidget(self.levels, 2)
        layout.addLayout(calibrate)
        layout.addLayout(z_title)
        layout.addWidget(self.z, 3)
        self.show_armband(None)

    def show_armband(self, state: str | None, levels=None, calibrated: bool = False) -> None:
        """``state``: None (no armband), or the device's connecting/connected/lost/reconnecting."""
        light = {None: "off", "connecting": "reconnecting", "stopped": "off", "ended": "lost"}.get(state, state)
        self.light.set_state(light, None if state is None else
                             f"{state} · {'calibrated' if calibrated else 'not calibrated'}")
        self.levels.show_values(levels if levels is not None else [0.0] * 8)
        for widget in (self.rest, self.max):
            widget.setEnabled(state == "connected" and self._capturing is None)
        self.z.editable = state is None  # the armband writes z while it is on
        self.source.setEnabled(state is None)
        self.connect.setText("Connect" if state is None else "Disconnect")

    def show_preset(self, preset: presets.Preset) -> None:
        """The armband's source and the theme; the z values go through the window's controls."""
        self.source.setEditText(preset.emg.source)
        if self.theme.findText(preset.gui.dcrnn_theme) < 0:
            self.theme.addItem(preset.gui.dcrnn_theme)
        self.theme.blockSignals(True)
        self.theme.setCurrentText(preset.gui.dcrnn_theme)
        self.theme.blockSignals(False)

    def fill(self, preset: presets.Preset) -> None:
        preset.emg.source = self.source.currentText().strip() or preset.emg.source
        preset.gui.dcrnn_theme = self.theme.currentText()

    def calibrating(self, phase: str | None, seconds: float = 0.0) -> None:
        """Say what to do while a calibration phase records (None: it ended)."""
        self._capturing = phase
        self.rest.setText(f"Relax… {seconds:g} s" if phase == "rest" else "Calibrate rest")
        self.max.setText(f"Squeeze! {seconds:g} s" if phase == "max" else "Calibrate max")
        for widget in (self.rest, self.max):
            widget.setEnabled(phase is None and self.light.state == "connected")


class CommentaryPanel(QGroupBox):
    """What the commentary model says about the music being played, with the attributes it was
    given (so a viewer sees why it said it) and a button to ask for a sentence now. The title's
    check box turns it on and off; LC-GAN chooses how its sentences are sampled."""

    WAITING = "Press play: a sentence about the music appears here every few bars."
    requested = pyqtSignal()

    def __init__(self):
        super().__init__("Commentary")
        self.setCheckable(True)
        self.setToolTip("untick to stop the commentary (off from the start, its model is never loaded)")
        self.toggled.connect(self._switched)
        self.sentence = QLabel(self.WAITING)
        self.sentence.setWordWrap(True)
        self.sentence.setObjectName("commentary")
        self.attributes = QLabel()
        self.attributes.setObjectName("muted")
        self.attributes.setWordWrap(True)
        self.now = QPushButton("Comment now")
        self.every = QSpinBox()
        self.every.setRange(0, 64)
        self.every.setPrefix("every ")
        self.every.setSuffix(" bars")
        self.every.setSpecialValueText("on request")
        self.every.setToolTip("a new sentence every N bars of the live music (0: only on request)")
        self.now.clicked.connect(self.requested)
        self.lcgan = QCheckBox("LC-GAN")
        self.lcgan.setToolTip("sample through the LC-GAN actor, which steers toward sentences about the music's "
                              "attributes; off: plain samples from the model's prior")
        side = QVBoxLayout()
        side.addWidget(self.now)
        side.addWidget(self.every)
        side.addWidget(self.lcgan)
        side.addStretch()
        text = QVBoxLayout()
        text.addWidget(self.sentence, 1)
        text.addWidget(self.attributes)
        layout = QHBoxLayout(self)
        layout.addLayout(text, 1)
        layout.addLayout(side)

    def show_sentence(self, sentence: str, attributes) -> None:
        self.sentence.setText(sentence)
        self.attributes.setText(" · ".join(attributes))

    def _switched(self, on: bool) -> None:
        """Off must read as off: an old sentence left on screen would look live."""
        self.sentence.setText(self.WAITING if on else "Commentary off: tick the box above to turn it on.")
        self.attributes.clear()

    def show_preset(self, preset: presets.Preset) -> None:
        self.setChecked(preset.gui.commentary)
        self.every.setValue(preset.gui.comment_every)
        self.lcgan.setChecked(preset.gui.comment_lcgan)

    def fill(self, preset: presets.Preset) -> None:
        preset.gui.commentary = self.isChecked()
        preset.gui.comment_every = self.every.value()
        preset.gui.comment_lcgan = self.lcgan.isChecked()


class OscPanel(QGroupBox):
    """OSC control of the panel, as ``perform --osc``: the title's box listens on a UDP port (this
    machine only unless opened to the network), and the live state can go out to HOST:PORT.
    Shows where it listens and the last message it ignored."""

    DEFAULT_PORT = 9000
    LOOPBACK = "127.0.0.1"
    ADDRESSES = ("/livegen/pitch f · /density f · /z f×8 · /z/0..7 f · /play · /stop · /panic · /preset s "
                 "(the README's OSC table)")
    changed = pyqtSignal()

    def __init__(self):
        super().__init__("OSC")
        self.setCheckable(True)
        self.setChecked(False)
        self.setToolTip("tick to take OSC control (TouchOSC, Max, Wekinator, TouchDesigner)")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(self.DEFAULT_PORT)
        self.port.setToolTip("the UDP port OSC messages are sent to")
        self.network = QCheckBox("Open to the network")
        self.network.setToolTip("off: only programs on this machine (127.0.0.1); on: any machine that reaches it")
        self._open_host = "0.0.0.0"  # what "open" listens on: a preset may name one address
        self.out = QLineEdit()
        self.out.setPlaceholderText("off (HOST:PORT)")
        self.out.setToolTip("send the live state (controls, playing, time, notes) as OSC to HOST:PORT")
        self.status = QLabel("off")
        self.status.setObjectName("value")
        self.status.setWordWrap(True)
        self.last_ignored = QLabel()
        self.last_ignored.setObjectName("muted")
        self.last_ignored.setWordWrap(True)
        addresses = QLabel(self.ADDRESSES)
        addresses.setObjectName("muted")
        addresses.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Port", self.port)
        form.addRow("", self.network)
        form.addRow("State out", self.out)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.last_ignored)
        layout.addWidget(addresses)
        self.toggled.connect(self.changed)
        self.network.toggled.connect(self.changed)
        self.port.editingFinished.connect(self.changed)
        self.out.editingFinished.connect(self.changed)

    def settings(self) -> tuple[int, str, str]:
        """(port, host, out) to run OSC with; port 0: off."""
        host = self._open_host if self.network.isChecked() else self.LOOPBACK
        return (self.port.value() if self.isChecked() else 0), host, self.out.text().strip()

    def show_status(self, status: str, received: int, ignored: list[str]) -> None:
        self.status.setText(status if status == "off" else f"{status} · {received} received")
        self.last_ignored.setText(ignored[-1] if ignored else "")
        self.last_ignored.setToolTip("\n".join(ignored))

    def show_preset(self, preset: presets.Preset) -> None:
        gui = preset.gui
        self.blockSignals(True)  # the window starts OSC once, from the whole preset
        self.network.blockSignals(True)
        self.setChecked(gui.osc_port > 0)
        if gui.osc_port:
            self.port.setValue(gui.osc_port)
        opened = gui.osc_host not in (self.LOOPBACK, "localhost")
        self._open_host = gui.osc_host if opened else "0.0.0.0"
        self.network.setChecked(opened)
        self.out.setText(gui.osc_out)
        self.network.blockSignals(False)
        self.blockSignals(False)

    def fill(self, preset: presets.Preset) -> None:
        preset.gui.osc_port, preset.gui.osc_host, preset.gui.osc_out = self.settings()


class HarmonyPanel(QGroupBox):
    """Key/scale presets and the 12 pitch-class sliders; moving a slider makes the key custom."""

    changed = pyqtSignal()

    def __init__(self):
        super().__init__("Harmony")
        self.key = QComboBox()
        self.key.addItems([FREE, *KEYS, CUSTOM])
        self.key.currentTextChanged.connect(self._key_chosen)
        self.sliders = HistogramSliders()
        self.sliders.changed.connect(self._slid)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("Key", self.key)
        layout.addLayout(form)
        layout.addWidget(self.sliders, 1)

    def histogram(self) -> tuple[float, ...] | None:
        """What the model is asked for: None leaves the pitch classes to it."""
        if self.key.currentText() == FREE:
            return None
        values = self.sliders.values()
        return tuple(values) if sum(values) > 0 else None

    def _key_chosen(self, text: str) -> None:
        if text in KEYS:
            self.sliders.set_values(self._scaled(text))
        elif text == FREE:
            self.sliders.set_values([0.0] * 12)
        self.changed.emit()

    def _slid(self) -> None:
        if self.key.currentText() in KEYS and self.sliders.values() != self._scaled(self.key.currentText()):
            self._show_key(CUSTOM)
        elif self.key.currentText() == FREE and sum(self.sliders.values()) > 0:
            self._show_key(CUSTOM)
        self.changed.emit()

    def _scaled(self, key: str) -> list[float]:
        hist = key_histogram(key)
        return [round(100 * v / max(hist)) / 100 for v in hist]

    def _show_key(self, text: str) -> None:
        self.key.blockSignals(True)
        self.key.setCurrentText(text)
        self.key.blockSignals(False)

    def show_preset(self, preset: presets.Preset) -> None:
        key = preset.controls.key
        match = next((k for k in KEYS if k.lower() == key.lower()), None)
        if preset.gui.histogram or (key and match is None):
            self._show_key(CUSTOM)
            self.sliders.set_values(preset.gui.histogram or key_histogram(key))
        else:
            self._show_key(match or FREE)
            self._key_chosen(match or FREE)

    def fill(self, preset: presets.Preset) -> None:
        text = self.key.currentText()
        preset.controls.key = text if text in KEYS else ""
        preset.gui.histogram = self.sliders.values() if text == CUSTOM else []


class ConditioningPanel(QGroupBox):
    """The conditioning the model sees now, in musicians' units."""

    def __init__(self):
        super().__init__("Conditioning")
        self.pitch, self.density, self.key, self.tempo = QLabel(), QLabel(), QLabel(), QLabel()
        form = QFormLayout(self)
        for name, label in (("Register", self.pitch), ("Density", self.density), ("Scale", self.key),
                            ("Tempo", self.tempo)):
            label.setObjectName("value")
            form.addRow(name, label)

    def show_controls(self, controls) -> None:
        self.pitch.setText(f"{note_name(control_pitch_to_midi(controls.pitch))}  ({controls.pitch:.2f})")
        self.density.setText(f"{control_density_to_rate(controls.density):.1f} notes/s  ({controls.density:.2f})")
        classes = [n for n, v in zip(PITCH_CLASS_NAMES, controls.histogram or ()) if v > 0]
        self.key.setText(" ".join(classes) if classes else "free")

    def show_tempo(self, bpm: float, following: str | None = None, source: str = "") -> None:
        """The tempo in force; ``following``: what it follows, or "waiting" until the outside beat
        arrives; ``source`` names it in full in the tooltip."""
        self.tempo.setText(f"{bpm:.1f} bpm" + (f"  ({following})" if following else ""))
        self.tempo.setToolTip(source)


class NumbersPanel(QGroupBox):
    """The engine's live numbers: control latency and timing error (ms), CPU, messages sent."""

    ROWS = (("latency", "Response", "from a move of the hand to the MIDI it changes"),
            ("timing", "Timing", "how late notes leave, against their beat"))

    def __init__(self):
        super().__init__("Engine")
        self.labels: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        for column, head in enumerate(("ms", "p50", "p99"), 0):
            label = QLabel(head)
            label.setObjectName("muted")
            align = Qt.AlignmentFlag.AlignRight if column else Qt.AlignmentFlag.AlignLeft
            grid.addWidget(label, 0, column, alignment=align)
        for row, (key, name, tip) in enumerate(self.ROWS, 1):
            label = QLabel(name)
            label.setToolTip(tip)
            grid.addWidget(label, row, 0)
            for column, part in enumerate(("p50", "p99"), 1):
                grid.addWidget(self._value(f"{key}_{part}"), row, column, alignment=Qt.AlignmentFlag.AlignRight)
        grid.addWidget(QLabel("CPU · sent"), 3, 0)
        grid.addWidget(self._value("cpu"), 3, 1, alignment=Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self._value("sent"), 3, 2, alignment=Qt.AlignmentFlag.AlignRight)

    def _value(self, key: str) -> QLabel:
        self.labels[key] = QLabel("–")
        self.labels[key].setObjectName("value")
        return self.labels[key]

    def show_numbers(self, numbers: dict[str, str], levels: dict[str, str] | None = None) -> None:
        """Texts, each coloured by its level against the limits (livegen.gui.stage.LIMITS)."""
        for key, text in numbers.items():
            self.labels[key].setText(text)
            level = (levels or {}).get(key, "ok")
            self.labels[key].setStyleSheet("" if level == "ok" else f"color: {level_color(level).name()};")


class Column(QWidget):
    """A column of panels stacked with ``add``, so a sensor or model (EMG, DCRNN, commentary) brings its
    panel without reshaping the window."""

    def __init__(self, width: int | None = None):
        super().__init__()
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        if width:
            self.setFixedWidth(width)

    def add(self, panel: QWidget, stretch: int = 0) -> QWidget:
        self.layout_.addWidget(panel, stretch)
        return panel

    def add_stretch(self) -> None:
        self.layout_.addStretch(1)


class RespondPanel(QGroupBox):
    """A player's MIDI in (``--midi-in``, ``--respond``): the input port listened to, how livegen
    responds, and thru. Kept in the preset's ``[midi_in]``; applies from the next Play."""

    NONE = ""  # no input port

    def __init__(self):
        super().__init__("MIDI in")
        self.port = QComboBox()
        self.port.addItem("(none)", self.NONE)
        self.port.setToolTip("the player's keyboard: another program's MIDI output. Applies from the next Play")
        self.mode = QComboBox()
        self.mode.addItems(presets.RESPOND_MODES)
        self.mode.setToolTip("continue or answer the player's phrase when they stop, or accompany them")
        self.answer_after = QDoubleSpinBox()
        self.answer_after.setRange(*presets.RESPOND_RANGES["answer_after"])
        self.answer_after.setSingleStep(0.05)
        self.answer_after.setSuffix(" s")
        self.answer_after.setToolTip("the silence that ends the player's phrase")
        self.answer_bars = QDoubleSpinBox()
        self.answer_bars.setRange(*presets.RESPOND_RANGES["answer_bars"])
        self.answer_bars.setSingleStep(0.25)
        self.answer_bars.setToolTip("bars an answer or continuation lasts")
        self.thru = QCheckBox("Thru: the player's notes to the output")
        form = QFormLayout(self)
        form.addRow("Input", self.port)
        form.addRow("Respond", self.mode)
        form.addRow("Answer after", self.answer_after)
        form.addRow("Answer bars", self.answer_bars)
        form.addRow(self.thru)

    def set_inputs(self, inputs: list[str]) -> None:
        """Offer the MIDI inputs (other programs' outputs) a player may play into; livegen's own aside."""
        offer(self.port, [("(none)", self.NONE)], [(p, p) for p in inputs if not p.startswith("livegen:")], [])

    def show_preset(self, preset: presets.Preset) -> None:
        midi_in = preset.midi_in
        choose(self.port, midi_in.ports[0] if midi_in.ports else self.NONE)
        self.mode.setCurrentText(midi_in.respond)
        self.answer_after.setValue(midi_in.answer_after)
        self.answer_bars.setValue(midi_in.answer_bars)
        self.thru.setChecked(midi_in.thru)

    def fill(self, preset: presets.Preset) -> None:
        midi_in = preset.midi_in
        port = self.port.currentData()
        midi_in.ports = [port] + midi_in.ports[1:] if port else []
        midi_in.respond = self.mode.currentText()
        midi_in.answer_after = round(self.answer_after.value(), 3)
        midi_in.answer_bars = round(self.answer_bars.value(), 3)
        midi_in.thru = self.thru.isChecked()
