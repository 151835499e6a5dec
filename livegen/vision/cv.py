"""One place that imports OpenCV: quiet logs (a missing camera is our one-line error, not
OpenCV's warnings) and a clear message when it is not installed."""
from __future__ import annotations

import os

from livegen import extras
from livegen.errors import UserError


def cv2():
    """The cv2 module, imported on first use."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    with extras.needed("camera", "camera tracking"):
        import cv2 as module  # OpenCV: 0.2-0.4 s, and may be missing; only the camera needs it
    module.utils.logging.setLogLevel(module.utils.logging.LOG_LEVEL_SILENT)  # also when imported earlier
    return module


def require_gui() -> None:
    """Windows and clicks need an OpenCV built with a GUI and a display; headless builds have none."""
    cv = cv2()
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--preview needs a display (no DISPLAY here): leave it out (calibrate takes --point X,Y)")
    try:
        cv.namedWindow("livegen")
    except cv.error:
        raise UserError("--preview needs OpenCV with a GUI: pip install opencv-python (this one is "
                        "opencv-python-headless); or leave it out (calibrate takes --point X,Y)") from None
