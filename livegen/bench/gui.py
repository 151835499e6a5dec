"""``livegen bench --parts gui``: the engine's timing error (p50/p99/max, ms) while the control
panel is open and busy: repainting at its own rate, plus the window moved and resized every 50 ms.
"""
from __future__ import annotations

import numpy as np

from livegen import presets
from livegen.errors import UserError


def gui_timing_bench(seconds: float = 10.0, preset_name: str | None = None) -> dict:
    """The engine's timing error (p50/p99/max, ms) while the panel is open and busy: repainting at
    its own rate, plus the window moved and resized every 50 ms. For ``livegen bench``."""
    from PyQt6.QtCore import QTimer  # Qt: loaded for this part of the bench only

    from livegen.gui.app import SCREENSHOT_SIZE, STARTUP_LIMIT, application, wait_until  # Qt, as above
    from livegen.gui.window import MainWindow  # Qt, as above

    app = application(headless_ok=True)
    window = MainWindow(presets.load(preset_name))
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    window.play()
    if not wait_until(app, lambda: window.takes.engine is not None or not window.takes.busy, STARTUP_LIMIT) \
            or window.takes.engine is None:
        window.close()
        raise UserError(f"the panel's take did not start: {window.banner.text.text()}")
    engine = window.takes.engine
    moves = 0

    def shake():
        nonlocal moves
        moves += 1
        window.move(40 + moves % 60, 30 + moves % 40)
        window.resize(SCREENSHOT_SIZE[0] + moves % 80, SCREENSHOT_SIZE[1] + moves % 50)
        window.repaint()

    shaker = QTimer(interval=50, timeout=shake)
    shaker.start()
    wait_until(app, lambda: engine.now() >= seconds or not engine.running, seconds + 30)
    shaker.stop()
    window.stop()
    wait_until(app, lambda: not window.takes.busy, 30)
    stats = engine.stats
    window.close()
    errors = np.asarray(stats.timing_error, dtype=np.float64) * 1e3
    if not len(errors):
        raise UserError("the panel's take sent no notes")
    return {"timing_error_ms": {"p50": round(float(np.percentile(errors, 50)), 4),
                                "p99": round(float(np.percentile(errors, 99)), 4),
                                "max": round(float(errors.max()), 4)},
            "messages": stats.sent, "window_moves": moves, "seconds": seconds, "panel_hz": 30}
