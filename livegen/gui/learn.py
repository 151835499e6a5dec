"""The panel's Learn tab: teach the instrument by demonstration, as Wekinator does.

Pick the inputs (the armband's 8 levels, the hand: the camera's when it is on, else the XY pad's
position, or OSC: numbers another tool sends to the addresses typed, through the OSC box's listener), pick the outputs and set their values by hand (the music follows them), hold
the gesture and press Record: for ``RECORD_SECONDS`` every sensor sample becomes an example.
Takes can be deleted or recorded again; Train fits a ``Mapping`` on a worker thread; Play puts it
on the panel's own source (``EmgControls.learned`` / ``CameraControls.learned`` / ``OscServer.learned``,
or the pad), whose
outputs go to ``ControlHub.learned``: the running take follows at once, nothing restarts.
Save writes the mapping (its examples and model) and the takes beside the user's presets and
names it in the preset's ``[learn] mapping``; a preset naming one loads it here.

Recording happens in the sensor's thread through ``LearnedControls.listeners``; this tab only
reads what they gathered on the window's QTimer (``tick``), so the panel never waits on a sensor.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QGroupBox,
                             QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                             QScrollArea, QVBoxLayout, QWidget)

from livegen import paths, presets
from livegen.errors import UserError
from livegen.gui.widgets import XYPad
from livegen.music.conditioning import CONTROL_RANGES
from livegen.sensors.learn import ExampleRecorder, Mapping, evaluate, fit_mapping
from livegen.sensors.learn.examples import Source, mapping_source
from livegen.sensors.learn.live import LearnedControls, sensor_of
from livegen.sensors.learn.mapping import CLASSES, EMG_INPUTS, HAND_INPUTS, MODELS, REGRESSED, EmgSettings, check_input

RECORD_SECONDS = 3.0  # one take: long enough to hold a gesture steadily, short enough to repeat
INPUTS = (("Armband: 8 levels", EMG_INPUTS), ("Hand: x, y (camera or pad)", HAND_INPUTS),
          ("OSC: the addresses typed", None))
THEMES = tuple("ABCDEFGH")  # the DCRNN's seeded themes, as the Muscles tab offers them


def mappings_dir() -> Path:
    """Where the Learn tab saves mappings: beside the user's presets, in a folder of their own
    (a mapping in the presets folder itself would be listed as a preset)."""
    return paths.presets_dir() / "mappings"


class OutputRow:
    """One output: ticked to learn it, and the value it should take while a take records."""

    def __init__(self, name: str):
        self.name = name
        self.box = QCheckBox(name)
        if name in CLASSES:
            self.value = QComboBox()
            self.value.setEditable(True)
            self.value.addItems(THEMES if name == "theme" else presets.names())
            self.value.setToolTip("the class this gesture should choose")
        else:
            low, high = CONTROL_RANGES["z" if name.startswith("z") else name]
            self.value = QDoubleSpinBox()
            self.value.setRange(low, high)
            self.value.setSingleStep(0.05)
            self.value.setDecimals(2)
            self.value.setValue((low + high) / 2)
            self.value.setToolTip("the value this gesture should give")

    def current(self):
        if isinstance(self.value, QComboBox):
            return self.value.currentText().strip()
        return float(self.value.value())

    def set_current(self, value) -> None:
        if isinstance(self.value, QComboBox):
            self.value.setCurrentText(str(value))
        else:
            self.value.setValue(float(value))


class LearnPanel(QGroupBox):
    """The Learn tab's widgets; ``Learning`` (below) does what they ask."""

    def __init__(self):
        super().__init__("Learn by demonstration")
        self.inputs = QComboBox()
        for text, names in INPUTS:
            self.inputs.addItem(text, names)
        self.inputs.setToolTip("what the mapping reads: the armband (Muscles tab), the hand (camera, else the pad) "
                               "or numbers another tool sends over OSC (the OSC box must be on)")
        self.addresses = QLineEdit()
        self.addresses.setPlaceholderText("/fader/1 /fader/2")
        self.addresses.setToolTip("the OSC addresses whose numbers the mapping reads, separated by spaces")
        self.addresses.hide()
        self.inputs.currentIndexChanged.connect(lambda: self.addresses.setVisible(self.inputs.currentData() is None))
        self.pad = XYPad()  # the hand without a camera: x left-right, y bottom-top
        self.pad.setMinimumSize(120, 90)
        self.pad.setToolTip("the hand, when no camera is on: hold it where the gesture is")
        self.inputs.currentIndexChanged.connect(lambda: self.pad.setVisible(self.inputs.currentData() == HAND_INPUTS))
        self.pad.hide()
        self.rows = {name: OutputRow(name) for name in (*REGRESSED, *CLASSES)}
        grid_holder = QWidget()
        grid = QGridLayout(grid_holder)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, row in enumerate(self.rows.values()):
            grid.addWidget(row.box, i, 0)
            grid.addWidget(row.value, i, 1)
        scroll = QScrollArea()
        scroll.setWidget(grid_holder)
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(120)
        self.record = QPushButton("●  Record")
        self.record.setObjectName("record")
        self.record.setToolTip(f"hold the gesture: {RECORD_SECONDS:g} s of samples with the outputs set above")
        self.recording = QLabel("")
        self.recording.setObjectName("value")
        self.takes = QListWidget()
        self.takes.setMinimumHeight(70)
        self.delete, self.rerecord = QPushButton("Delete"), QPushButton("Record again")
        self.model = QComboBox()
        self.model.addItem("auto model", "")
        for name in MODELS:
            self.model.addItem(name, name)
        self.model.setToolTip("auto: k-nearest-neighbours for classes, a small network for numbers")
        self.train = QPushButton("Train")
        self.trained = QLabel("not trained")
        self.trained.setObjectName("muted")
        self.trained.setWordWrap(True)
        self.play = QPushButton("▶  Play")
        self.play.setObjectName("play")
        self.play.setCheckable(True)
        self.play.setToolTip("the mapping steers the running take at once (no restart), and every take after it")
        self.name = QLineEdit("learned")
        self.name.setToolTip("the preset (and its mapping) Save writes, in your presets folder")
        self.save, self.load = QPushButton("Save in preset"), QPushButton("Load…")
        self.playing = QLabel("")
        self.playing.setObjectName("muted")
        self.playing.setWordWrap(True)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Inputs"))
        row.addWidget(self.inputs, 1)
        layout.addLayout(row)
        layout.addWidget(self.addresses)
        layout.addWidget(self.pad, 2)
        title = QLabel("OUTPUTS · tick, set by hand")
        title.setObjectName("muted")
        layout.addWidget(title)
        layout.addWidget(scroll, 3)
        row = QHBoxLayout()
        row.addWidget(self.record)
        row.addWidget(self.recording, 1)
        layout.addLayout(row)
        layout.addWidget(self.takes, 2)
        row = QHBoxLayout()
        row.addWidget(self.delete)
        row.addWidget(self.rerecord)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.model)
        row.addWidget(self.train)
        row.addWidget(self.play)
        layout.addLayout(row)
        layout.addWidget(self.trained)
        layout.addWidget(self.playing)
        row = QHBoxLayout()
        row.addWidget(self.name, 1)
        row.addWidget(self.save)
        row.addWidget(self.load)
        layout.addLayout(row)

    def chosen_inputs(self) -> list[str]:
        """The inputs chosen; OSC addresses typed wrong (or none) are a ``UserError``."""
        names = self.inputs.currentData()
        if names is not None:
            return list(names)
        typed = self.addresses.text().replace(",", " ").split()
        if not typed or not all(a.startswith("/") for a in typed) or len(set(typed)) != len(typed):
            raise UserError("type the OSC addresses the mapping reads, each once, like /fader/1 /fader/2")
        return [check_input(f"osc:{a}") for a in typed]

    def choose_inputs(self, names: list[str]) -> None:
        if sensor_of(names) == "osc":
            self.inputs.setCurrentIndex(len(INPUTS) - 1)
            self.addresses.setText(" ".join(n[len("osc:"):] for n in names))
            return
        self.inputs.setCurrentIndex(next((i for i, (_, n) in enumerate(INPUTS) if n is not None and list(n) == list(names)), 0))

    def values(self) -> dict:
        """The ticked outputs' values as set by hand (a class left empty is not set)."""
        out = {}
        for name, row in self.rows.items():
            value = row.current()
            if row.box.isChecked() and value != "":
                out[name] = value
        return out

    def show_takes(self, counts: dict[int, int], recorder: ExampleRecorder, selected: int | None) -> None:
        self.takes.clear()
        for take, count in counts.items():
            rows = recorder.takes.get(take) or [([], {})]
            said = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[0][1].items())
            item = QListWidgetItem(f"{take}: {count} samples · {said or 'no outputs'}")
            item.setToolTip(item.text())
            item.setData(Qt.ItemDataRole.UserRole, take)
            self.takes.addItem(item)
            if take == selected:
                self.takes.setCurrentItem(item)

    def selected_take(self) -> int | None:
        item = self.takes.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))


class Learning(QWidget):
    """The Learn tab and what it does to the window's sources and controls.

    ``window`` is the ``MainWindow``: its ``hub`` (where values and the mapping's outputs go), its
    ``armband`` and ``source`` (the camera), its ``banner`` (one line per error), its preset."""

    def __init__(self, window):
        super().__init__()
        self.window = window
        self.panel = LearnPanel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.panel)
        self.recorder = ExampleRecorder(self.panel.chosen_inputs(), [*REGRESSED, *CLASSES])
        self.mapping: Mapping | None = None
        self.mapping_path = ""  # the file the mapping was loaded from or saved to
        self._values: dict = {}  # the outputs set by hand, read by the sensor thread while recording
        self._record_until = 0.0  # monotonic end of the take recording
        self._recording: tuple | None = None  # (source, controls) while a take records
        self._playing: tuple | None = None  # (source, controls) of the mapping playing
        self._target = None  # the source the installed controls sit on ("pad", an EmgControls, a camera)
        self._installed: LearnedControls | None = None
        self.hand = (0.5, 0.5)  # the pad's last position as (x, y): what the hand inputs read from it
        self._training: threading.Thread | None = None
        self._trained: tuple | None = None  # (mapping, seconds, report, n), or (why it failed,)
        p = self.panel
        p.record.clicked.connect(lambda: self.record())
        p.rerecord.clicked.connect(lambda: self.record(p.selected_take()))
        p.delete.clicked.connect(lambda: self.delete(p.selected_take()))
        p.train.clicked.connect(lambda: self.train())
        p.play.toggled.connect(self.set_playing)
        p.save.clicked.connect(lambda: self.save())
        p.load.clicked.connect(lambda: self.ask_load())
        p.inputs.currentIndexChanged.connect(lambda: self._inputs_chosen())
        p.addresses.textChanged.connect(lambda: self._inputs_chosen())
        for row in p.rows.values():
            signal = row.value.currentTextChanged if isinstance(row.value, QComboBox) else row.value.valueChanged
            signal.connect(lambda *_, name=row.name: self._set_by_hand(name))
            row.box.toggled.connect(lambda *_, name=row.name: self._set_by_hand(name))

    # --- outputs by hand ---------------------------------------------------------------------

    def _set_by_hand(self, name: str) -> None:
        """The music follows an output set by hand (so the gesture is taught with its sound)."""
        self._values = self.panel.values()
        value = self._values.get(name)
        if value is None or self.panel.play.isChecked() or (name == "preset" and value not in presets.names()):
            return  # a preset name half typed is not loaded
        try:
            self.window.hub.learned({name: value})
        except UserError as exc:  # a preset that does not load
            self.window.banner.show_error(f"Learn: {exc}")

    # --- recording ---------------------------------------------------------------------------

    def _inputs_chosen(self) -> None:
        """New inputs: a recorder for them, unless takes of the others are kept (Train says so)."""
        if not self.recorder.takes:
            try:
                self.recorder = ExampleRecorder(self.panel.chosen_inputs(), [*REGRESSED, *CLASSES])
            except UserError:  # OSC addresses still being typed: Record says what is wrong
                pass

    def record(self, take: int | None = None) -> None:
        """Record a take (``take`` given: record it again) for ``RECORD_SECONDS`` from now."""
        if self.recorder.recording is not None:
            return
        try:
            if not self.panel.values():
                raise UserError("tick an output and set its value first: that is what the gesture will give")
            if self.recorder.inputs != self.panel.chosen_inputs():
                raise UserError(f"the takes recorded read {', '.join(self.recorder.inputs)}: delete them before "
                                "recording other inputs")
            target = self._source_for(self.recorder.inputs)
        except UserError as exc:
            self.window.banner.show_error(f"Learn: {exc}")
            return
        self._values = self.panel.values()
        settings = self.mapping.emg if self.mapping is not None else EmgSettings()
        controls = self._controls_for(target, Mapping(list(self.recorder.inputs), {}, settings))
        recorder = self.recorder
        controls.listeners.append(lambda vector: recorder.add(vector, self._values))
        self._recording = (target, controls)
        take = recorder.start(take)
        self._record_until = time.monotonic() + RECORD_SECONDS
        self.panel.record.setEnabled(False)
        self.panel.rerecord.setEnabled(False)
        self._install()
        self._show_takes(take)

    def _finish_recording(self) -> None:
        take = self.recorder.recording
        self.recorder.stop()
        self._recording = None
        self._install()
        self.panel.record.setEnabled(True)
        self.panel.rerecord.setEnabled(True)
        count = self.recorder.counts().get(take, 0)
        self.panel.recording.setText(f"take {take}: {count} samples")
        if count == 0:
            self.window.banner.show_error("Learn: no samples arrived while recording: is the sensor sending?")
        self._show_takes(take)

    def delete(self, take: int | None) -> None:
        if take is not None and self.recorder.recording is None:
            self.recorder.delete(take)
            if not self.recorder.takes:
                self._inputs_chosen()
            self._show_takes(None)

    def _show_takes(self, selected: int | None) -> None:
        self.panel.show_takes(self.recorder.counts(), self.recorder, selected)

    # --- training ----------------------------------------------------------------------------

    def train(self) -> None:
        """Fit a mapping on the takes on a worker thread; ``tick`` shows the result."""
        if self._training is not None or self.recorder.recording is not None:
            return
        try:
            source = self._training_source()
        except UserError as exc:
            self.window.banner.show_error(f"Learn: {exc}")
            return
        model = self.panel.model.currentData() or None
        settings = self.mapping.emg if self.mapping is not None else None

        def fit() -> None:
            try:
                started = time.perf_counter()
                outputs = [n for n, y in source.outputs.items() if (~_unset(y)).any()]
                mapping = fit_mapping([source], outputs, model, settings)
                seconds = time.perf_counter() - started
                self._trained = (mapping, seconds, evaluate(mapping, [source]), len(source.x))
            except UserError as exc:
                self._trained = (exc,)
            except Exception as exc:  # whatever broke, the tab says it and the panel lives on
                self._trained = (f"training failed: {type(exc).__name__}: {exc}",)

        self.panel.train.setEnabled(False)
        self.panel.trained.setText("training…")
        self._training = threading.Thread(target=fit, name="livegen-gui-learn", daemon=True)
        self._training.start()

    def _training_source(self) -> Source:
        chosen = self.panel.chosen_inputs()
        if not self.recorder.takes or not any(self.recorder.counts().values()):
            raise UserError("no examples yet: tick an output, set its value, hold the gesture and press Record")
        if self.recorder.inputs != chosen:
            raise UserError(f"the takes read {', '.join(self.recorder.inputs)} but the inputs chosen are "
                            f"{', '.join(chosen)}: mismatched inputs (choose those inputs, or delete the takes)")
        return self.recorder.source()

    def _show_trained(self) -> None:
        result, self._trained, self._training = self._trained, None, None
        self.panel.train.setEnabled(True)
        if len(result) == 1:
            self.panel.trained.setText("not trained")
            self.window.banner.show_error(f"Learn: {result[0]}")
            return
        mapping, seconds, report, n = result
        self.use_mapping(mapping, "")
        self.panel.trained.setText(f"trained in {seconds * 1000:.0f} ms on {n} examples; on them: {describe(report)}")

    # --- playing -----------------------------------------------------------------------------

    def use_mapping(self, mapping: Mapping | None, path: str) -> None:
        """Make ``mapping`` the tab's (playing at once if Play is on; None: no mapping)."""
        self.mapping, self.mapping_path = mapping, path
        self._playing = None
        if mapping is not None:
            self.panel.choose_inputs(mapping.inputs)
            outputs = ", ".join(mapping.outputs)
            self.panel.trained.setText(f"mapping of {', '.join(mapping.inputs)} → {outputs}"
                                       + (f" · {Path(path).name}" if path else ""))
        else:
            self.panel.trained.setText("not trained")
        if self.panel.play.isChecked() and mapping is None:
            self.panel.play.setChecked(False)  # Play off: the source plays its usual controls again
        elif self.panel.play.isChecked():
            self.set_playing(True)

    def set_playing(self, on: bool) -> None:
        """Play: the mapping steers the panel's source for its inputs (a missing source, or no
        mapping yet, is one banner line and Play stays off)."""
        if on:
            try:
                if self.mapping is None:
                    raise UserError("nothing to play yet: record takes and press Train (or Load a mapping)")
                self._source_for(self.mapping.inputs)
            except UserError as exc:
                self.window.banner.show_error(f"Learn: {exc}")
                self.panel.play.setChecked(False)
                return
        self._install()
        self.panel.playing.setText("playing: the take follows the mapping now, no restart" if on else "")

    def _source_for(self, inputs: list[str]):
        """The panel's source that gives ``inputs``: the armband, the camera, "pad", or the OSC listener."""
        if set(inputs) <= set(EMG_INPUTS):
            if self.window.armband is None:
                raise UserError("the inputs are the armband's: connect it in the Muscles tab first")
            return self.window.armband
        if set(inputs) <= set(HAND_INPUTS):
            return self.window.source if self.window.source is not None else "pad"
        if sensor_of(inputs) == "osc":
            if self.window.osc.server is None:
                raise UserError("the inputs are OSC addresses: switch OSC on (the OSC box) first")
            return self.window.osc.server
        raise UserError(f"the mapping reads {', '.join(inputs)}: the panel plays mappings of the armband's "
                        "levels, of the hand or of OSC addresses, one of them")

    def _controls_for(self, target, mapping: Mapping, sink=None) -> LearnedControls:
        """Live controls of ``mapping`` for ``target``: an armband's get its device and calibration."""
        controls = LearnedControls(mapping, sink)
        if target != "pad" and set(mapping.inputs) <= set(EMG_INPUTS):
            controls.for_device(target.device, target.processor.calibration)
        return controls

    def _install(self) -> None:
        """Put the recorder's controls (while a take records), else the playing mapping's, else
        none on the source their inputs come from; again whenever that source changed (the
        armband reconnected, the camera chosen)."""
        target, controls = None, None
        if self._recording is not None:
            target, controls = self._recording
        elif self.panel.play.isChecked() and self.mapping is not None:
            try:
                target = self._source_for(self.mapping.inputs)
            except UserError:  # its source went away: the mapping waits for it to come back
                target = None
            if target is not None:
                if self._playing is None or self._playing[0] is not target:
                    self._playing = (target, self._controls_for(target, self.mapping, self.window.hub.learned))
                controls = self._playing[1]
        if (target, controls) == (self._target, self._installed):
            return
        if self._target not in (None, "pad") and self._target.learned is self._installed:
            self._target.learned = None
        self._target, self._installed = target, controls
        if target not in (None, "pad"):
            target.learned = controls

    @property
    def hand_from_pad(self) -> bool:
        """The pad's moves feed this tab (a take recording or a mapping playing from it), not the hand's controls."""
        return self._target == "pad"

    def pad_moved(self, pitch: float, density: float) -> None:
        """The pad as the hand: x is left-right (density's axis), y bottom-to-top (pitch's)."""
        self.hand = (density, pitch)
        self.panel.pad.show_position(pitch, density)
        if self._target == "pad":
            self._feed_pad()

    def _feed_pad(self) -> None:
        x, y = self.hand
        self._installed.set_inputs({"hand_x": x, "hand_y": y}, time.monotonic())

    # --- saving and loading ------------------------------------------------------------------

    def save(self) -> None:
        """The mapping and its takes beside the user's presets, and a preset naming it (the
        panel's, under the name given)."""
        try:
            if self.mapping is None:
                raise UserError("nothing to save: record takes and press Train first")
            name = presets.check_name(self.panel.name.text().strip())
            path = mappings_dir() / f"{name}.toml"
            self.mapping.save(path)
            if self.recorder.takes:
                self.recorder.save(path.with_suffix(".csv"))
        except UserError as exc:
            self.window.banner.show_error(f"Learn: {exc}")
            return
        self.mapping_path = str(path)
        self.window.base_preset.learn.mapping = str(path)
        self.window.save_preset(str(paths.presets_dir() / f"{name}.toml"))
        self.panel.trained.setText(f"{self.panel.trained.text()} · saved in preset {name}")

    def ask_load(self) -> None:
        folder = mappings_dir()
        path, _ = QFileDialog.getOpenFileName(self, "Load a learned mapping", str(folder if folder.is_dir() else ""),
                                              "Mappings (*.toml)")
        if path:
            self.load(path)

    def load(self, path: str) -> bool:
        """A mapping file (and the takes saved beside it, to record more or again); a bad one is
        one banner line and the tab keeps what it had."""
        try:
            mapping = Mapping.load(Path(path).expanduser())
            if sensor_of(mapping.inputs) is None:
                raise UserError(f"mapping {path} reads {', '.join(mapping.inputs)}: the panel plays mappings of "
                                "the armband's levels, of the hand or of OSC addresses, one of them")
            takes = Path(path).expanduser().with_suffix(".csv")
            recorder = ExampleRecorder.load(takes) if takes.is_file() else _recorder_of(mapping_source(mapping))
        except UserError as exc:
            self.window.banner.show_error(f"Learn: {exc}")
            return False
        if recorder.inputs != mapping.inputs:
            recorder = _recorder_of(mapping_source(mapping))
        self.recorder = ExampleRecorder(recorder.inputs, [*REGRESSED, *CLASSES], recorder.takes)
        self.use_mapping(mapping, str(path))
        self._show_takes(None)
        return True

    def show_preset(self, preset: presets.Preset) -> None:
        """A preset's mapping ([learn] mapping) is the tab's; none: the tab keeps its takes."""
        self.panel.name.setText(preset_name_for(self.window.preset_name))
        self.hand = (preset.controls.density, preset.controls.pitch)
        self.panel.pad.show_position(preset.controls.pitch, preset.controls.density)
        if preset.learn.mapping:
            if not self.load(preset.learn.mapping):
                preset.learn.mapping = ""
        elif self.mapping is not None and self.mapping_path:
            self.use_mapping(None, "")

    # --- the window's timer ------------------------------------------------------------------

    def tick(self) -> None:
        """On the window's QTimer: the take's countdown and count, the pad's samples, a
        finished training, a source that changed under the playing mapping."""
        if self.recorder.recording is not None:
            left = self._record_until - time.monotonic()
            if left <= 0:
                self._finish_recording()
            else:
                count = self.recorder.counts().get(self.recorder.recording, 0)
                self.panel.recording.setText(f"hold it… {left:.1f} s · {count} samples")
        if self._trained is not None:
            self._show_trained()
        self._install()
        if self._target == "pad":
            self._feed_pad()  # a hand held still on the pad is a sample too, at the panel's rate


def _unset(y):
    return (y != y) if y.dtype.kind == "f" else (y == "")


def _recorder_of(source: Source) -> ExampleRecorder:
    """A mapping's examples as one take (a mapping saved without its takes)."""
    recorder = ExampleRecorder(list(source.inputs), [*REGRESSED, *CLASSES])
    rows = []
    for i, vector in enumerate(source.x.tolist()):
        values = {n: y[i].item() for n, y in source.outputs.items() if not _unset(y[i:i + 1])[0]}
        rows.append((vector, values))
    if rows:
        recorder.takes[1] = rows
    return recorder


def preset_name_for(name: str) -> str:
    """The name Save offers: the panel's preset's, unless it is a shipped one."""
    return name if name and name != "default" else "learned"


def describe(report: dict) -> str:
    """An evaluation report in a few words: accuracy of a class output, RMSE of a number."""
    parts = []
    for name, result in report.items():
        if "accuracy" in result:
            parts.append(f"{name} {result['accuracy'] * 100:.0f} % right "
                         f"({result['balanced_accuracy'] * 100:.0f} % balanced)")
        else:
            parts.append(f"{name} rmse {result['rmse']:.3f}, r {result['pearson_r']:.2f}")
    return "; ".join(parts)
