"""The performance view: what a performer reads from two metres and a booth's visitor plays.

One big state word (PLAYING, RECORDING, NO OUTPUT, STOPPED), the time, the tempo with its beat
and bar, a light that blinks as MIDI goes out, whether the hand and the armband are tracked (apart
from their devices being connected), plain-word health warnings, the XY pad or the camera large,
and the piano roll. Type is sized from the window's height, so it reads the same at 1024x768 and
at 3840x2160. The window feeds it on its timer, as it does the full panel.
"""
from __future__ import annotations

from dataclasses import dataclass

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFont, QFontMetrics
from PyQt6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from livegen.gui import theme
from livegen.gui.widgets import ActivityLight, BeatLights, CameraView, PianoRoll, StatusLight, XYPad

STATE_COLORS = {"PLAYING": theme.PLAY, "RECORDING": theme.RECORD, "NO OUTPUT": theme.RECORD,
                "STARTING": theme.NOTICE, "STOPPED": theme.MUTED, "FAILED": theme.RECORD}
STATE_HEIGHT = 0.06  # of the window's height: the state word's and the time's pixel size
DETAIL_HEIGHT = 0.024  # the lights' and warnings' pixel size
MIN_STATE_PIXELS = 40  # cap height ~28 px: the state word stays readable on the smallest screen


@dataclass(frozen=True)
class Limit:
    """An engine number that is fine below ``notice``, a problem from ``alarm``, and what to do then."""

    key: str
    notice: float
    alarm: float
    advice: str


# the engine's numbers against what a listener would hear, and what the performer can do about it
LIMITS = (
    Limit("timing_p99", 5.0, 20.0, "notes are going out late — close other programs"),
    Limit("latency_p99", 40.0, 120.0, "the music answers your moves slowly — close other programs or lower "
          "the lookahead"),
    Limit("cpu", 70.0, 90.0, "the computer is busy — close other programs"),
)
DROPPED_ADVICE = "notes are being left out: the computer cannot keep up — close other programs"


def health(values: dict[str, float | None], dropped: int = 0) -> tuple[dict[str, str], list[str]]:
    """Each number's level ("ok", "notice", "alarm") and the plain-word warnings, worst first."""
    levels, warnings = {}, []
    for limit in LIMITS:
        value = values.get(limit.key)
        level = "ok" if value is None or value < limit.notice else "notice" if value < limit.alarm else "alarm"
        levels[limit.key] = level
        if level != "ok":
            warnings.append((level == "alarm", limit.advice))
    if dropped:
        warnings.append((True, DROPPED_ADVICE))
    return levels, [advice for _, advice in sorted(warnings, key=lambda w: not w[0])]


def level_color(level: str):
    return {"ok": theme.TEXT, "notice": theme.NOTICE, "alarm": theme.RECORD}[level]


class PerformanceView(QWidget):
    """The stage view; its pad, camera and roll are its own, fed the same as the full panel's."""

    def __init__(self):
        super().__init__()
        self.setObjectName("performanceView")
        self.state = QLabel("STOPPED")
        self.state.setObjectName("stateWord")
        self.elapsed = QLabel("0:00")
        self.tempo = QLabel("120 bpm")
        self.beats = BeatLights()
        self.bar = QLabel("bar 1")
        self.midi_light = ActivityLight()
        self.midi_label = QLabel("MIDI out")
        self.hand, self.camera_light = StatusLight("Hand"), StatusLight("Camera")
        self.armband = StatusLight("Armband")
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.pad, self.camera, self.roll = XYPad(), CameraView(), PianoRoll()
        self.roll.setMinimumSize(160, 120)
        self.pad.setMinimumSize(160, 120)
        self.camera.setMinimumSize(160, 120)
        self.steer = QStackedWidget()
        self.steer.addWidget(self.pad)
        self.steer.addWidget(self.camera)

        top = QGridLayout()
        top.setHorizontalSpacing(24)
        top.addWidget(self.state, 0, 0, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.elapsed, 0, 1, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        top.setColumnStretch(2, 1)
        top.addWidget(self.tempo, 0, 3, Qt.AlignmentFlag.AlignRight)
        beat_row = QHBoxLayout()
        beat_row.addWidget(self.beats)
        beat_row.addWidget(self.bar)
        top.addLayout(beat_row, 1, 3, Qt.AlignmentFlag.AlignRight)
        midi = QHBoxLayout()
        midi.addWidget(self.midi_light)
        midi.addWidget(self.midi_label)
        top.addLayout(midi, 0, 4, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        lights = QHBoxLayout()
        for light in (self.hand, self.camera_light, self.armband):
            lights.addWidget(light)
        lights.addWidget(self.warning, 1)
        body = QHBoxLayout()
        body.setSpacing(12)
        body.addWidget(self.steer, 1)
        body.addWidget(self.roll, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 12)
        layout.addLayout(top)
        layout.addLayout(lights)
        layout.addLayout(body, 1)
        self.show_state("STOPPED")

    # --- type sized for the stage ---------------------------------------------------------------

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.size_type(self.window().height())

    def size_type(self, window_height: int) -> None:
        """Pixel sizes from the window's height: the state word's cap height is ~0.7 of its size."""
        big = max(MIN_STATE_PIXELS, round(window_height * STATE_HEIGHT))
        detail = max(14, round(window_height * DETAIL_HEIGHT))
        for label, pixels, weight in ((self.state, big, QFont.Weight.Black), (self.elapsed, big, QFont.Weight.Bold),
                                      (self.tempo, round(big * 0.55), QFont.Weight.Bold),
                                      (self.bar, detail, QFont.Weight.Normal),
                                      (self.midi_label, detail, QFont.Weight.Normal),
                                      (self.warning, detail, QFont.Weight.Bold)):
            font = QFont("DejaVu Sans Mono" if label is self.elapsed else "DejaVu Sans")
            font.setPixelSize(pixels)
            font.setWeight(weight)
            label.setFont(font)
        widest = max(QFontMetrics(self.state.font()).horizontalAdvance(word) for word in STATE_COLORS)
        self.state.setMinimumWidth(widest + 8)  # the row does not jump as the word changes
        self.beats.set_dot(round(detail * 0.9))
        self.midi_light.set_dot(round(detail * 1.2))
        for light in (self.hand, self.camera_light, self.armband):
            light.set_text_pixels(detail)

    # --- what the window shows ------------------------------------------------------------------

    def show_state(self, word: str) -> None:
        if self.state.text() != word or not self.state.styleSheet():
            self.state.setText(word)
            self.state.setStyleSheet(f"color: {STATE_COLORS[word].name()};")

    def show_time(self, seconds: float, recording: bool) -> None:
        self.elapsed.setText(f"{int(seconds) // 60}:{int(seconds) % 60:02d}")
        self.elapsed.setStyleSheet(f"color: {theme.RECORD.name()};" if recording else "")

    def show_tempo(self, bpm: float, beat: float | None) -> None:
        """``beat``: beats since the take began (None: not playing, the indicator rests)."""
        self.tempo.setText(f"{bpm:.0f} bpm")
        self.beats.show_beat(None if beat is None else int(beat) % 4)
        self.bar.setText("bar –" if beat is None else f"bar {int(beat) // 4 + 1}")

    def show_warnings(self, warnings: list[str], alarm: bool) -> None:
        text = " · ".join(warnings)
        if self.warning.text() != text:
            self.warning.setText(text)
            self.warning.setStyleSheet(f"color: {(theme.RECORD if alarm else theme.NOTICE).name()};")

    def show_camera(self, on: bool) -> None:
        self.steer.setCurrentWidget(self.camera if on else self.pad)
