"""Custom widgets: the pieces a stock Qt widget cannot show (notes, a pad, a camera, lights).

They only paint what they are given; the window feeds them from the engine's ring buffers on
its timer, so a slow repaint can never hold up the music.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from livegen.gui import theme
from livegen.music.conditioning import clamp_control

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class StatusLight(QWidget):
    """A coloured dot and a word: connected (green), reconnecting (amber), lost (red), off (grey)."""

    COLORS = {"connected": theme.PLAY, "reconnecting": theme.NOTICE, "lost": theme.RECORD, "off": theme.MUTED}

    def __init__(self, name: str):
        super().__init__()
        self._dot = QLabel("●")
        self._text = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(name))
        layout.addWidget(self._dot)
        layout.addWidget(self._text)
        layout.addStretch()
        self.set_state("off")

    def set_state(self, state: str, text: str | None = None) -> None:
        if getattr(self, "state", None) != state:
            self._dot.setStyleSheet(f"color: {self.COLORS[state].name()}; font-size: 16pt;")
        self.state = state
        self._text.setText(text or state)

    def set_text_pixels(self, pixels: int) -> None:
        """Type sized for the stage view (the full panel keeps the theme's)."""
        for label in self.findChildren(QLabel):
            font = label.font()
            font.setPixelSize(pixels)
            label.setFont(font)
        self._dot.setStyleSheet(f"color: {self.COLORS[self.state].name()}; font-size: {round(pixels * 1.3)}px;")


class ActivityLight(QWidget):
    """A drawn lamp that lights as MIDI goes out: ``on`` (a message just went), ``idle``, or
    ``dead`` (playing with no output: red, so silence is never mistaken for a quiet passage)."""

    COLORS = {"on": theme.PLAY, "idle": theme.GRID, "dead": theme.RECORD}

    def __init__(self):
        super().__init__()
        self.state = "idle"
        self.set_dot(18)

    def set_dot(self, pixels: int) -> None:
        self.setFixedSize(pixels + 4, pixels + 4)

    def show_activity(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(theme.MUTED, 1))
        p.setBrush(self.COLORS[self.state])
        p.drawEllipse(QRectF(2, 2, self.width() - 4, self.height() - 4))


class BeatLights(QWidget):
    """Four drawn dots, the beat of the bar lit (the downbeat in the accent colour)."""

    def __init__(self):
        super().__init__()
        self.beat: int | None = None
        self.set_dot(16)

    def set_dot(self, pixels: int) -> None:
        self.dot = pixels
        self.setFixedSize(4 * pixels + 3 * pixels // 2 + 4, pixels + 4)

    def show_beat(self, beat: int | None) -> None:
        if beat != self.beat:
            self.beat = beat
            self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        step = self.dot * 1.5
        for i in range(4):
            lit = i == self.beat
            p.setPen(QPen(theme.MUTED, 1))
            p.setBrush((theme.ACCENT if i == 0 else theme.TEXT) if lit else theme.RAISED)
            p.drawEllipse(QRectF(2 + i * step, 2, self.dot, self.dot))


class LockIcon(QWidget):
    """A padlock drawn with the painter (an emoji glyph renders as an empty box where the font lacks it)."""

    def __init__(self, pixels: int = 22):
        super().__init__()
        self.setFixedSize(pixels, pixels)

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.setPen(QPen(theme.NOTICE, max(2.0, w / 9)))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawArc(QRectF(w * 0.25, h * 0.06, w * 0.5, h * 0.6), 0, 180 * 16)
        p.drawLine(QPointF(w * 0.25, h * 0.36), QPointF(w * 0.25, h * 0.46))
        p.drawLine(QPointF(w * 0.75, h * 0.36), QPointF(w * 0.75, h * 0.46))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(theme.NOTICE)
        p.drawRoundedRect(QRectF(w * 0.12, h * 0.44, w * 0.76, h * 0.52), w * 0.08, w * 0.08)
        p.setBrush(theme.BACKGROUND)
        p.drawEllipse(QPointF(w * 0.5, h * 0.66), w * 0.08, w * 0.08)


class XYPad(QWidget):
    """Play with the mouse: up is higher pitch, right is denser. Shows any gesture's position."""

    moved = pyqtSignal(float, float)  # pitch, density
    MIN_STEP = 0.004  # as the camera: smaller moves would make the engine regenerate for nothing

    def __init__(self):
        super().__init__()
        self.pitch, self.density = 0.5, 0.5
        self.setMinimumSize(200, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def show_position(self, pitch: float, density: float) -> None:
        if (pitch, density) != (self.pitch, self.density):
            self.pitch, self.density = pitch, density
            self.update()

    def mousePressEvent(self, event):
        self._drag(event.position())

    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._drag(event.position())

    def _drag(self, pos: QPointF) -> None:
        density = clamp_control("density", pos.x() / max(self.width(), 1))
        pitch = clamp_control("pitch", 1.0 - pos.y() / max(self.height(), 1))
        if max(abs(pitch - self.pitch), abs(density - self.density)) >= self.MIN_STEP:
            self.show_position(pitch, density)
            self.moved.emit(pitch, density)

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), theme.RAISED)
        p.setPen(QPen(theme.GRID, 1))
        for i in range(1, 4):
            p.drawLine(int(w * i / 4), 0, int(w * i / 4), h)
            p.drawLine(0, int(h * i / 4), w, int(h * i / 4))
        p.setPen(theme.MUTED)
        p.drawText(QRectF(6, 4, w - 12, 20), Qt.AlignmentFlag.AlignLeft, "high")
        p.drawText(QRectF(6, h - 22, w - 12, 20), Qt.AlignmentFlag.AlignLeft, "low · sparse")
        p.drawText(QRectF(6, h - 22, w - 12, 20), Qt.AlignmentFlag.AlignRight, "dense")
        x, y = self.density * w, (1.0 - self.pitch) * h
        p.setPen(QPen(theme.ACCENT, 2))
        p.drawLine(QPointF(x, 0), QPointF(x, h))
        p.drawLine(QPointF(0, y), QPointF(w, y))
        p.setBrush(theme.ACCENT)
        p.drawEllipse(QPointF(x, y), 9, 9)


class CameraView(QWidget):
    """The camera's newest frame with the tracked hand drawn on it."""

    def __init__(self):
        super().__init__()
        self.image: QImage | None = None
        self.hand: tuple[float, float] | None = None
        self._shown: np.ndarray | None = None  # the frame on screen, not converted twice
        self.setMinimumSize(200, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_frame(self, bgr: np.ndarray | None, hand: tuple[float, float] | None, mirror: bool) -> None:
        """``mirror``: show it as a mirror, as the performer sees themself (the mapping mirrors too)."""
        if bgr is None or bgr is self._shown:
            return
        self._shown = bgr
        rgb = np.ascontiguousarray(bgr[:, ::-1, ::-1] if mirror else bgr[:, :, ::-1])
        if mirror and hand is not None:
            hand = (1.0 - hand[0], hand[1])
        h, w = rgb.shape[:2]
        self.image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.hand = hand
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        p.fillRect(self.rect(), theme.RAISED)
        if self.image is None:
            p.setPen(theme.MUTED)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "waiting for the camera…")
            return
        scaled = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF((self.width() - scaled.width()) / 2, (self.height() - scaled.height()) / 2,
                        scaled.width(), scaled.height())
        p.drawImage(target, self.image)
        if self.hand is not None:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(theme.PLAY, 3))
            centre = QPointF(target.x() + self.hand[0] * target.width(), target.y() + self.hand[1] * target.height())
            p.drawEllipse(centre, 18, 18)


class HistogramSliders(QWidget):
    """12 pitch-class weights, as Performance RNN's demo had: how much of each note to play."""

    changed = pyqtSignal()

    def __init__(self):
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.sliders: list[QSlider] = []
        for name in PITCH_CLASS_NAMES:
            column = QVBoxLayout()
            slider = QSlider(Qt.Orientation.Vertical)
            slider.setRange(0, 100)
            slider.setMinimumHeight(70)
            slider.setToolTip(f"weight of {name}")
            slider.valueChanged.connect(self.changed)
            label = QLabel(name)
            label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            label.setObjectName("muted")
            column.addWidget(slider, 1, Qt.AlignmentFlag.AlignHCenter)
            column.addWidget(label)
            layout.addLayout(column)
            self.sliders.append(slider)

    def values(self) -> list[float]:
        return [s.value() / 100.0 for s in self.sliders]

    def set_values(self, values: list[float]) -> None:
        """Show weights in 0..1 (larger ones scaled down to fit); one ``changed`` for the lot."""
        top = max(1.0, *values)
        for slider, v in zip(self.sliders, values):
            slider.blockSignals(True)
            slider.setValue(round(100 * v / top))
            slider.blockSignals(False)
        self.changed.emit()


class PianoRoll(QWidget):
    """The notes actually sent, scrolling right to left; the right edge is now."""

    SPAN = 8.0  # seconds shown
    LOW, HIGH = 24, 108  # MIDI pitch range drawn

    def __init__(self):
        super().__init__()
        self.notes: deque[list] = deque(maxlen=2000)  # [start, end | None, pitch, velocity]
        self._open: dict[int, list] = {}
        self.now = 0.0
        self.setMinimumSize(300, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def add(self, t: float, message: list[int]) -> None:
        kind = message[0] & 0xF0
        if kind == 0x90 and message[2] > 0:
            self._end(message[1], t)
            note = [t, None, message[1], message[2]]
            self._open[message[1]] = note
            self.notes.append(note)
        elif kind in (0x80, 0x90):
            self._end(message[1], t)
        elif kind == 0xB0 and message[1] in (120, 123):  # all sound / all notes off
            for pitch in list(self._open):
                self._end(pitch, t)

    def clear(self) -> None:
        self.notes.clear()
        self._open.clear()

    def _end(self, pitch: int, t: float) -> None:
        note = self._open.pop(pitch, None)
        if note is not None:
            note[1] = t

    def paintEvent(self, event):
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), theme.SURFACE)
        row = h / (self.HIGH - self.LOW)
        for pitch in range(self.LOW, self.HIGH):
            if pitch % 12 == 0:
                y = h - (pitch - self.LOW) * row
                p.setPen(theme.GRID)
                p.drawLine(0, int(y), w, int(y))
                p.setPen(theme.MUTED)
                p.drawText(4, int(y) - 3, f"C{pitch // 12 - 1}")
        left = self.now - self.SPAN
        scale = w / self.SPAN
        for start, end, pitch, velocity in list(self.notes):
            stop = self.now if end is None else end
            if stop < left or start > self.now or not self.LOW <= pitch < self.HIGH:
                continue
            x0 = (max(start, left) - left) * scale
            color = QColor(theme.ACCENT)
            color.setAlphaF(0.35 + 0.65 * velocity / 127)
            p.fillRect(QRectF(x0, h - (pitch - self.LOW + 1) * row, max((stop - max(start, left)) * scale, 2), row),
                       color)


class Bars(QWidget):
    """A row of vertical bars: EMG levels (0..1, from the bottom) or the z vector (-1..1, from the
    middle). With ``editable``, dragging a bar sets it (playing z with the mouse when no armband
    does), and ``changed`` gives the new values."""

    changed = pyqtSignal(tuple)

    def __init__(self, count: int, signed: bool, editable: bool = False, labels: tuple[str, ...] = ()):
        super().__init__()
        self.signed, self.editable = signed, editable
        self.values = [0.0] * count
        self.labels = labels or tuple(str(i) for i in range(count))
        self.setMinimumSize(160, 70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        if editable:
            self.setCursor(Qt.CursorShape.SizeVerCursor)

    def show_values(self, values) -> None:
        values = [float(v) for v in values][:len(self.values)]
        values += [0.0] * (len(self.values) - len(values))
        if values != self.values:
            self.values = values
            self.update()

    def mousePressEvent(self, event):
        self._drag(event.position())

    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._drag(event.position())

    def _drag(self, pos: QPointF) -> None:
        if not self.editable or not self.isEnabled():
            return
        index = int(pos.x() / max(self.width(), 1) * len(self.values))
        if not 0 <= index < len(self.values):
            return
        top, bottom = 2.0, self.height() - 18.0
        level = min(max((bottom - pos.y()) / max(bottom - top, 1.0), 0.0), 1.0)
        values = list(self.values)
        values[index] = round(2 * level - 1 if self.signed else level, 3)
        self.show_values(values)
        self.changed.emit(tuple(self.values))

    def paintEvent(self, event):
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), theme.RAISED)
        top, bottom = 2.0, h - 18.0
        slot = w / len(self.values)
        zero = (top + bottom) / 2 if self.signed else bottom
        p.setPen(QPen(theme.GRID, 1))
        p.drawLine(QPointF(0, zero), QPointF(w, zero))
        color = theme.ACCENT if self.isEnabled() else theme.MUTED
        for i, (value, label) in enumerate(zip(self.values, self.labels)):
            x = i * slot + slot * 0.18
            if self.signed:
                y = zero - max(-1.0, min(1.0, value)) * (bottom - top) / 2
            else:
                y = bottom - max(0.0, min(1.0, value)) * (bottom - top)
            p.fillRect(QRectF(x, min(y, zero), slot * 0.64, abs(zero - y) or 1), color)
            p.setPen(theme.MUTED)
            p.drawText(QRectF(i * slot, bottom + 1, slot, 16), Qt.AlignmentFlag.AlignHCenter, label)
