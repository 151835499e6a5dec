"""Starting the panel: the normal window, booth mode and the ``--screenshot`` run."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QEvent, QObject, QTimer
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import QApplication

from livegen import presets
from livegen.errors import UserError
from livegen.gui import theme
from livegen.gui.window import MIN_SIZE, MainWindow, go_full_screen
from livegen.messages import say
from livegen.sensors.script import ScriptControls

SCREENSHOT_SIZE = (1280, 720)
MAX_SIZE = (7680, 4320)  # the largest --size a screenshot is rendered at
SCREENSHOT_MUSIC_SECONDS = 6.0
STARTUP_LIMIT = 60.0  # s for the first take to start before --screenshot gives up


def application(headless_ok: bool = False) -> QApplication:
    """The Qt application, themed. Without a display Qt would abort the process: runs that need
    no one to watch (screenshot, bench) go offscreen, an interactive one is an error saying so."""
    if not any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        if not headless_ok:
            raise UserError("no display here (DISPLAY is not set): run the panel on a desktop, "
                            "or use --screenshot with QT_QPA_PLATFORM=offscreen")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = QApplication.instance() or QApplication([sys.argv[0], "-name", "livegen"])
    theme.apply(app)
    return app


class BoothMode(QObject):
    """Unattended use: full screen, controls locked behind a key, plays on launch, restarts a
    failed engine, and returns to the reset preset when nobody has touched it for a while."""

    RESTART_AFTER = 2.0  # s between a failure and the restart
    TOUCHES = (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress, QEvent.Type.TouchBegin, QEvent.Type.Wheel)

    def __init__(self, window: MainWindow, settings: presets.GuiPreset):
        super().__init__(window)
        self.window, self.settings = window, settings
        self.last_touch = time.monotonic()
        self.failed_at: float | None = None
        QShortcut(QKeySequence(settings.unlock_key), window,
                  lambda: window.set_locked(not window.locked, settings.unlock_key))
        QApplication.instance().installEventFilter(self)
        self.timer = QTimer(self, interval=500, timeout=self._watch)
        self.timer.start()

    def begin(self) -> None:
        """Locked on the performance view, frameless over the whole screen, playing."""
        self.window.set_locked(True, self.settings.unlock_key)
        go_full_screen(self.window)
        self.window.play()

    def eventFilter(self, obj, event) -> bool:
        if event.type() in self.TOUCHES:
            self.last_touch = time.monotonic()
        return False

    def _watch(self) -> None:
        engine, now = self.window.takes.engine, time.monotonic()
        if self.window.takes.busy:
            return
        if engine is None or engine.failed:
            self.failed_at = self.failed_at or now
            if now - self.failed_at >= self.RESTART_AFTER:
                self.failed_at = None
                self.window.play()
        if self.settings.idle_reset and now - self.last_touch > self.settings.idle_reset:
            self.last_touch = now
            try:
                self.window.apply_preset(presets.load(self.settings.reset_preset), self.settings.reset_preset)
            except UserError as exc:
                self.window.banner.show_error(f"Booth reset: {exc}")
                return
            self.window.play()


def parse_size(text: str) -> tuple[int, int]:
    """``--size WxH`` as (width, height), within what the panel is laid out for."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise UserError(f"--size {text!r:.40} is not WIDTHxHEIGHT, like 1920x1080")
    size = int(width), int(height)
    if not (MIN_SIZE[0] <= size[0] <= MAX_SIZE[0] and MIN_SIZE[1] <= size[1] <= MAX_SIZE[1]):
        raise UserError(f"--size {text} is outside {MIN_SIZE[0]}x{MIN_SIZE[1]}..{MAX_SIZE[0]}x{MAX_SIZE[1]}, "
                        "the screens the panel is laid out for")
    return size


def run(preset_name: str | None, screenshot: str | None = None, size: str | None = None,
        view: str | None = None) -> int:
    """The panel on ``preset_name``; with ``screenshot``, a picture of ``view`` at ``size`` instead."""
    shot_size = parse_size(size) if size else SCREENSHOT_SIZE
    if view is not None and view not in presets.VIEWS:
        raise UserError(f"--view {view!r} is not one of {', '.join(presets.VIEWS)}")
    app = application(headless_ok=screenshot is not None)
    preset = presets.load(preset_name)
    window = MainWindow(preset, Path(preset_name).stem if preset_name else "default")
    sys.excepthook = lambda kind, exc, tb: show_bug(window, kind, exc, tb)
    window.show_view(view or preset.gui.view)
    if screenshot:
        if preset.gui.booth:  # as a booth opens: locked, on the performance view
            window.set_locked(True, preset.gui.unlock_key)
        return take_screenshot(app, window, screenshot, shot_size)
    if preset.gui.booth:
        BoothMode(window, preset.gui).begin()
    elif preset.gui.full_screen:
        go_full_screen(window)
    else:
        window.resize(*SCREENSHOT_SIZE)
        window.show()
    return app.exec()


def show_bug(window: MainWindow, kind, exc, tb) -> None:
    """A bug in a slot: print the traceback and say so in the window instead of aborting the show."""
    traceback.print_exception(kind, exc, tb)
    window.banner.show_error(f"Internal error (the music goes on): {kind.__name__}: {exc}")


def gesture_script(path: str, seconds: float) -> None:
    """A hand sweeping up and across and back, as a control script (for the screenshot)."""
    rows = [{"t": round(t, 2), "pitch": round(0.5 + 0.35 * np.sin(t * 1.3), 3),
             "density": round(0.45 + 0.3 * np.sin(t * 0.7 + 1.0), 3)}
            for t in np.arange(0.0, seconds, 0.1)]
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")


def wait_until(app: QApplication, condition, limit: float) -> bool:
    """Run the event loop until ``condition()`` holds or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.01)
    return True


def take_screenshot(app: QApplication, window: MainWindow, path: str, size: tuple[int, int] = SCREENSHOT_SIZE) -> int:
    """Play a few seconds of the preset's model under a scripted gesture, then save the window at ``size``."""
    window.resize(*size)
    window.show()
    window.play()
    started = wait_until(app, lambda: window.takes.engine is not None or not window.takes.busy, STARTUP_LIMIT)
    engine = window.takes.engine
    if started and engine is not None:
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "gesture.jsonl")
            gesture_script(script, SCREENSHOT_MUSIC_SECONDS + 2.0)
            source = ScriptControls(script)
            source.start(window.hub.gesture, window.hub.clock)
            wait_until(app, lambda: engine.now() >= SCREENSHOT_MUSIC_SECONDS or not engine.running,
                       SCREENSHOT_MUSIC_SECONDS + 10)
            source.stop()
        status = 1 if engine.failed else 0
    else:
        wait_until(app, lambda: False, 0.3)  # let the error banner paint
        say(f"error: the take did not start: {window.banner.text.text()}")
        status = 1
    wait_until(app, lambda: False, 0.1)  # the last tick's repaint lands
    saved = window.grab().save(path)
    window.close()
    if not saved:
        raise UserError(f"cannot write the screenshot {path}")
    say(f"saved {path}")
    return status
