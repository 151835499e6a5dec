"""MIDI-learn on the panel: right-click a control, "MIDI learn", move a knob, and it is bound.

``MidiLearn`` gives the pitch and density sliders, the XY pad, the z bars and the Play, Rec and
Panic buttons a context menu. Learning listens to every MIDI input there is (livegen's own
aside) for the first control moved; the binding goes into the panel's preset (so the next take
plays it and Save keeps it), shows in the control's tooltip and in the MIDI tab's list, where
it can be deleted. A binding's action during a take comes back here on the Qt thread: the
panel owns Play, Rec and the preset steps.
"""
from __future__ import annotations

from PyQt6.QtCore import QObject, QPoint, Qt, pyqtSignal
from PyQt6.QtWidgets import QGroupBox, QLabel, QListWidget, QMenu, QPushButton, QVBoxLayout, QWidget

from livegen.errors import UserError
from livegen.midi import ports
from livegen.midi.bindings import Binding

MOVES = {0xB0: "cc", 0x90: "note", 0xE0: "bend"}


class BindingsPanel(QGroupBox):
    """The preset's MIDI bindings, one a line, and a button to delete the chosen one."""

    def __init__(self):
        super().__init__("MIDI learn")
        self.list = QListWidget()
        self.delete = QPushButton("Delete binding")
        self.status = QLabel("Right-click a control, choose MIDI learn, move a knob.")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.delete)

    def show_bindings(self, bindings: list[Binding]) -> None:
        self.list.clear()
        self.list.addItems([b.describe() for b in bindings])


class MidiLearn(QObject):
    moved = pyqtSignal(str, object)  # (port, message) from a listening port's thread
    action = pyqtSignal(str)  # a binding's action from a take's input thread

    def __init__(self, window, panel: BindingsPanel):
        super().__init__(window)
        self.window, self.panel = window, panel
        self.widgets: dict[QWidget, tuple[str, ...]] = {}  # control -> the targets it offers
        self.target: str | None = None  # the target being learned
        self.listening: list[ports.InputPort] = []
        self.moved.connect(self._learn)
        panel.delete.clicked.connect(self.delete_chosen)

    @property
    def bindings(self) -> list[Binding]:
        return self.window.base_preset.midi_learn

    def attach(self, widget: QWidget, *targets: str) -> None:
        """Give ``widget`` a "MIDI learn" menu for each of ``targets`` (z bars: the bar clicked)."""
        self.widgets[widget] = targets
        widget.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        widget.customContextMenuRequested.connect(lambda at, w=widget: self._menu(w, at))

    def targets_at(self, widget: QWidget, at: QPoint) -> tuple[str, ...]:
        targets = self.widgets[widget]
        if targets == ("z",):  # the bar under the pointer: z1 is the leftmost
            count = len(widget.values)
            return (f"z{min(count - 1, max(0, at.x() * count // max(1, widget.width()))) + 1}",)
        return targets

    def _menu(self, widget: QWidget, at: QPoint) -> None:
        menu = QMenu(widget)
        for target in self.targets_at(widget, at):
            menu.addAction(f"MIDI learn {target}", lambda t=target: self.start(t))
        menu.popup(widget.mapToGlobal(at))

    def start(self, target: str) -> None:
        """Listen to every input for the next moved control, to bind it to ``target``."""
        self.stop()
        try:
            api = ports.resolve_api(self.window.preset().output.api)
            if api is None:
                raise UserError("no MIDI system is running here: nothing to learn from")
            names = [name for name in ports.list_ports(api)["inputs"] if not name.startswith(f"{ports.CLIENT}:")]
            for name in names:
                self.listening.append(ports.RtMidiInput(api, name, lambda at, msg, n=name: self._heard(n, msg)))
        except UserError as exc:
            self.stop()
            self.window.banner.show_error(f"MIDI learn: {exc}")
            return
        if not self.listening:
            self.window.banner.show_error("MIDI learn: no MIDI input to listen to (connect a controller)")
            return
        self.target = target
        self.panel.status.setText(f"Move a control to bind it to {target}…")

    def stop(self) -> None:
        for port in self.listening:
            port.close()
        self.listening, self.target = [], None

    def _heard(self, port: str, msg: list[int]) -> None:
        """On a port's thread: a move goes to the Qt thread; anything else is not a move."""
        kind = msg[0] & 0xF0
        if kind in (0xB0, 0xE0) or kind == 0x90 and msg[2] > 0:
            self.moved.emit(port, msg)

    def _learn(self, port: str, msg: list[int]) -> None:
        target = self.target
        if target is None:  # a second move queued before the ports closed
            return
        self.stop()
        source = MOVES[msg[0] & 0xF0]
        self.bind(Binding(source, 0 if source == "bend" else msg[1], target, (msg[0] & 0x0F) + 1, port))

    def bind(self, binding: Binding) -> None:
        """Into the preset, replacing a binding of the same messages; shown at once."""
        same = (binding.source, binding.number, binding.channel, binding.port)
        self.bindings[:] = [b for b in self.bindings if (b.source, b.number, b.channel, b.port) != same] + [binding]
        self.panel.status.setText(f"Learned: {binding.describe()} (the next take plays it; Save keeps it)")
        self.show()

    def delete_chosen(self) -> None:
        row = self.panel.list.currentRow()
        if 0 <= row < len(self.bindings):
            del self.bindings[row]
            self.show()

    def show(self) -> None:
        """The list, and each control's tooltip naming what is bound to it."""
        self.panel.show_bindings(self.bindings)
        for widget, targets in self.widgets.items():
            bound = [b.describe() for b in self.bindings
                     if b.target in targets or targets == ("z",) and b.target[:1] == "z"]
            widget.setToolTip("\n".join(["MIDI: " + line for line in bound]) or "Right-click: MIDI learn")
