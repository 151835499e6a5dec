"""Test videos made from real frames: a real hand, cut from a labelled photo in ../shared/data/hands,
moved along a known path over a real room (another photo of the set with its hands painted out)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livegen.vision.labels import read_labels

SIZE = (320, 240)


def labels(hands: Path) -> dict:
    return read_labels(hands)


def hand_sprite(hands: Path, width: float = 0.14) -> tuple[np.ndarray, np.ndarray]:
    """An open hand (the first palm photo, in name order, with one hand about ``width`` of the
    image wide), scaled to ``SIZE``, and a soft elliptical alpha mask."""
    boxes = labels(hands)
    for name in sorted(boxes):
        found = boxes[name]
        if name.startswith("palm/") and found and len(found) == 1 and abs(found[0]["x1"] - found[0]["x0"] - width) < 0.02:
            box = found[0]
            break
    else:
        raise LookupError(f"no palm photo with one hand about {width} wide")
    image = cv2.resize(cv2.imread(str(hands / "custom-gesture" / name)), SIZE, interpolation=cv2.INTER_AREA)
    w, h = SIZE
    x0, x1 = int(box["x0"] * w), int(np.ceil(box["x1"] * w))
    y0, y1 = int(box["y0"] * h), int(np.ceil(box["y1"] * h))
    sprite = image[y0:y1, x0:x1].copy()
    alpha = np.zeros(sprite.shape[:2], np.float32)
    cv2.ellipse(alpha, ((x1 - x0) // 2, (y1 - y0) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 1.0, -1)
    return sprite, cv2.GaussianBlur(alpha, (5, 5), 0)[:, :, None]


def room(hands: Path, name: str) -> np.ndarray:
    """A photo of the set, scaled to ``SIZE``, with every labelled hand painted out."""
    image = cv2.resize(cv2.imread(str(hands / "custom-gesture" / name)), SIZE, interpolation=cv2.INTER_AREA)
    mask = np.zeros(image.shape[:2], np.uint8)
    w, h = SIZE
    for b in labels(hands).get(name) or []:
        mx, my = 0.4 * (b["x1"] - b["x0"]), 0.4 * (b["y1"] - b["y0"])
        cv2.rectangle(mask, (int((b["x0"] - mx) * w), int((b["y0"] - my) * h)),
                      (int((b["x1"] + mx) * w), int((b["y1"] + my) * h)), 255, -1)
    return cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)


def compose(background: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, x: float, y: float) -> np.ndarray:
    """The background with the hand's centre at (x, y), normalised image coordinates."""
    frame = background.copy()
    h, w = sprite.shape[:2]
    left, top = int(round(x * SIZE[0] - w / 2)), int(round(y * SIZE[1] - h / 2))
    region = frame[top:top + h, left:left + w].astype(np.float32)
    frame[top:top + h, left:left + w] = (alpha * sprite + (1 - alpha) * region).astype(np.uint8)
    return frame


def write_video(path: Path, background: np.ndarray, sprite, alpha, points, fps: float = 30.0) -> None:
    """MJPG video: one frame per point, (x, y) of the hand's centre or None for an empty room."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    for point in points:
        out.write(background if point is None else compose(background, sprite, alpha, *point))
    out.release()
