"""A dark stage theme: low glare in a dark room, large type readable from a few metres away,
and one accent colour per meaning (green plays, red records or warns, amber is a notice)."""
from __future__ import annotations

from PyQt6.QtGui import QColor, QFont, QPalette
from PyQt6.QtWidgets import QApplication

BACKGROUND = QColor("#15171c")
SURFACE = QColor("#1f2229")
RAISED = QColor("#2a2e37")
TEXT = QColor("#e8eaf0")
MUTED = QColor("#9aa1b2")
ACCENT = QColor("#4fc3f7")  # notes, pads, sliders
PLAY = QColor("#43d17a")
RECORD = QColor("#ff4d5e")
NOTICE = QColor("#ffb547")
GRID = QColor("#30343f")

BASE_POINT_SIZE = 11

STYLE = f"""
QWidget {{ color: {TEXT.name()}; }}
QMainWindow, QWidget#central {{ background: {BACKGROUND.name()}; }}
QGroupBox {{
    background: {SURFACE.name()}; border: 1px solid {GRID.name()}; border-radius: 8px;
    margin-top: 14px; padding: 12px 8px 8px 8px; font-weight: 600;
}}
QGroupBox::title {{
    subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED.name()};
    text-transform: uppercase; letter-spacing: 1px;
}}
QPushButton {{
    background: {RAISED.name()}; border: 1px solid {GRID.name()}; border-radius: 6px; padding: 5px 12px;
}}
QPushButton:hover {{ border-color: {ACCENT.name()}; }}
QPushButton:disabled, QComboBox:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled, QCheckBox:disabled {{ color: {MUTED.name()}; }}
QPushButton[transport="true"] {{
    font-size: {BASE_POINT_SIZE + 5}pt; font-weight: 700; padding: 8px 22px; min-width: 96px;
}}
QPushButton#play:checked {{ background: {PLAY.name()}; color: #0b1a10; border-color: {PLAY.name()}; }}
QPushButton#record:checked {{ background: {RECORD.name()}; color: #1a0b0d; border-color: {RECORD.name()}; }}
QPushButton#panic {{ border-color: {NOTICE.name()}; color: {NOTICE.name()}; }}
QPushButton[transport="true"]:disabled {{
    background: {BACKGROUND.name()}; color: {GRID.lighter(150).name()}; border: 1px dashed {GRID.lighter(130).name()};
}}
QLabel#locked {{ color: {NOTICE.name()}; font-weight: 700; }}
QWidget#performanceView {{ background: {BACKGROUND.name()}; }}
QComboBox, QSpinBox, QDoubleSpinBox, QLineEdit {{
    background: {RAISED.name()}; border: 1px solid {GRID.name()}; border-radius: 5px; padding: 3px 6px;
    min-height: 22px;
}}
QComboBox QAbstractItemView {{ background: {RAISED.name()}; selection-background-color: {ACCENT.darker(160).name()}; }}
QSlider::groove:horizontal {{ height: 6px; background: {RAISED.name()}; border-radius: 3px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT.darker(130).name()}; border-radius: 3px; }}
QSlider::handle:horizontal {{ background: {ACCENT.name()}; width: 16px; margin: -6px 0; border-radius: 8px; }}
QSlider::groove:vertical {{ width: 6px; background: {RAISED.name()}; border-radius: 3px; }}
QSlider::add-page:vertical {{ background: {ACCENT.darker(130).name()}; border-radius: 3px; }}
QSlider::handle:vertical {{ background: {ACCENT.name()}; height: 12px; margin: 0 -5px; border-radius: 6px; }}
QLabel#muted {{ color: {MUTED.name()}; }}
QLabel#big {{ font-size: {BASE_POINT_SIZE + 5}pt; font-weight: 700; }}
QLabel#commentary {{ font-size: {BASE_POINT_SIZE + 2}pt; font-style: italic; }}
QLabel#value {{ font-family: "DejaVu Sans Mono", monospace; }}
QFrame#banner {{ background: #4a1a20; border: 1px solid {RECORD.name()}; border-radius: 6px; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{
    background: {SURFACE.name()}; color: {MUTED.name()}; border: 1px solid {GRID.name()}; border-bottom: none;
    border-top-left-radius: 6px; border-top-right-radius: 6px; padding: 5px 10px; margin-right: 2px;
}}
QTabBar::tab:selected {{ color: {TEXT.name()}; border-color: {ACCENT.name()}; }}
QFrame#transportBar {{ background: {SURFACE.name()}; border-bottom: 1px solid {GRID.name()}; }}
"""


def apply(app: QApplication) -> None:
    """Fusion style with a dark palette (so dialogs match) and the stylesheet above."""
    app.setStyle("Fusion")
    palette = QPalette()
    for role, color in ((QPalette.ColorRole.Window, BACKGROUND), (QPalette.ColorRole.Base, RAISED),
                        (QPalette.ColorRole.AlternateBase, SURFACE), (QPalette.ColorRole.Button, RAISED),
                        (QPalette.ColorRole.Text, TEXT), (QPalette.ColorRole.WindowText, TEXT),
                        (QPalette.ColorRole.ButtonText, TEXT), (QPalette.ColorRole.Highlight, ACCENT),
                        (QPalette.ColorRole.ToolTipBase, SURFACE), (QPalette.ColorRole.ToolTipText, TEXT)):
        palette.setColor(role, color)
    app.setPalette(palette)
    font = QFont("DejaVu Sans", BASE_POINT_SIZE)
    app.setFont(font)
    app.setStyleSheet(STYLE)
