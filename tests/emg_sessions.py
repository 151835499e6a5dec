"""Myo-readings-like sessions the tests write themselves, so learning runs without
../shared/data: int8 noise whose amplitude per channel follows each gesture's pattern, the
armband turned by ``turn`` channels (another session, another placement)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 200
REST_AMPLITUDE = 3.0


def gesture_pattern(label: int) -> np.ndarray:
    """Amplitude per channel of gesture ``label`` (1..7): a bump around a channel of its own."""
    channels = np.arange(8)
    centre = (label * 3) % 8
    distance = np.minimum(abs(channels - centre), 8 - abs(channels - centre))
    return 10.0 + 50.0 * np.exp(-distance ** 2 / (1.0 + label % 3))


def write_session(folder: Path, labels=range(8), seconds: float = 6.0, turn: int = 0, seed: int = 0,
                  gain: float = 1.0) -> Path:
    """``<label>.txt`` per gesture: rest then the gesture, alternating every ``seconds / 4``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n, part = int(seconds * RATE), int(seconds * RATE / 4)
    for label in labels:
        truth = np.zeros(n, dtype=int)
        if label:
            for start in range(part, n, 2 * part):
                truth[start:start + part] = label
        amplitude = np.array([np.full(8, REST_AMPLITUDE) if t == 0 else gesture_pattern(t) for t in truth])
        samples = np.clip(np.round(rng.normal(size=(n, 8)) * np.roll(amplitude, turn, axis=1) * gain), -128, 127)
        lines = [",".join(str(int(v)) for v in row) + f",{t}" for row, t in zip(samples, truth)]
        (folder / f"{label}.txt").write_text("\n".join(lines))
    return folder
