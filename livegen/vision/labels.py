"""Where the hands really are in labelled photos: how a tracker's detection rate is judged.

The labels (``mediapipe-labels.json`` beside the photos) are MediaPipe Hands boxes, normalised
0..1, a list per photo (several where a second hand shows, None where none was found).
"""
from __future__ import annotations

import json
from pathlib import Path


def on_hand(x: float, y: float, boxes: list[dict], margin: float = 0.3) -> bool:
    """Whether a position lies on one of the labelled hands (box grown by ``margin`` each side)."""
    for b in boxes:
        mx, my = margin * (b["x1"] - b["x0"]), margin * (b["y1"] - b["y0"])
        if b["x0"] - mx <= x <= b["x1"] + mx and b["y0"] - my <= y <= b["y1"] + my:
            return True
    return False


def read_labels(folder) -> dict:
    """``{"class/photo.jpg": [box, ...] | None}`` from ``mediapipe-labels.json`` in ``folder``."""
    return json.loads((Path(folder) / "mediapipe-labels.json").read_text())
