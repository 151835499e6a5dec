"""The conditioning vector: what the music should do next, seen by the model at every token.

Layout (``CONDITION_DIM`` = 29): density one-hot (8 bins of notes/s over the next 3 s, as
Performance RNN), pitch-class histogram (12, next 5 s), register one-hot (8 bins of the mean
pitch over the next 3 s: the "hand height"), and a flag that says conditioning is off.
Training computes it from the music's future; the live engine maps controls onto the same layout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from livegen.music.tempo import MAX_BPM, MIN_BPM

DENSITY_EDGES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # notes/s; 8 bins
DENSITY_WINDOW = 3.0
HISTOGRAM_WINDOW = 5.0
REGISTER_WINDOW = 3.0
REGISTER_LOW, REGISTER_HIGH, REGISTER_BINS = 36.0, 96.0, 8

DENSITY = slice(0, 8)
HISTOGRAM = slice(8, 20)
REGISTER = slice(20, 28)
OFF_FLAG = 28
CONDITION_DIM = 29


def spec() -> dict:
    """Stored in checkpoints: a model trained on another layout is refused at load."""
    return {"dim": CONDITION_DIM, "density_edges": list(DENSITY_EDGES), "density_window": DENSITY_WINDOW,
            "histogram_window": HISTOGRAM_WINDOW, "register": [REGISTER_LOW, REGISTER_HIGH, REGISTER_BINS],
            "register_window": REGISTER_WINDOW}


def density_bin(notes_per_second: float) -> int:
    return int(np.searchsorted(DENSITY_EDGES, notes_per_second, side="right"))


def register_bin(mean_pitch: float) -> int:
    width = (REGISTER_HIGH - REGISTER_LOW) / REGISTER_BINS
    return int(np.clip((mean_pitch - REGISTER_LOW) // width, 0, REGISTER_BINS - 1))


def future_conditions(token_times: np.ndarray, onsets: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Conditioning for every token position, from the notes that start after it.

    ``onsets`` must be sorted; ``pitches`` are the matching MIDI pitches.
    """
    n = len(token_times)
    out = np.zeros((n, CONDITION_DIM), dtype=np.float32)
    lo = np.searchsorted(onsets, token_times, side="left")
    hi_d = np.searchsorted(onsets, token_times + DENSITY_WINDOW, side="left")
    hi_h = np.searchsorted(onsets, token_times + HISTOGRAM_WINDOW, side="left")
    hi_r = np.searchsorted(onsets, token_times + REGISTER_WINDOW, side="left")

    rate = (hi_d - lo) / DENSITY_WINDOW
    out[np.arange(n), np.searchsorted(DENSITY_EDGES, rate, side="right")] = 1.0

    pc_cum = np.zeros((len(onsets) + 1, 12), dtype=np.float32)
    np.cumsum(np.eye(12, dtype=np.float32)[pitches % 12], axis=0, out=pc_cum[1:])
    hist = pc_cum[hi_h] - pc_cum[lo]
    total = hist.sum(axis=1, keepdims=True)
    out[:, HISTOGRAM] = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)

    p_cum = np.concatenate([[0.0], np.cumsum(pitches, dtype=np.float64)])
    count = hi_r - lo
    has = count > 0
    mean = np.divide(p_cum[hi_r] - p_cum[lo], count, out=np.zeros(n), where=has)
    width = (REGISTER_HIGH - REGISTER_LOW) / REGISTER_BINS
    rbin = np.clip((mean - REGISTER_LOW) // width, 0, REGISTER_BINS - 1).astype(int)
    out[np.flatnonzero(has), REGISTER.start + rbin[has]] = 1.0
    return out


# --- live controls -----------------------------------------------------------------------------

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PITCH_CLASSES = {"C": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "F": 5, "F#": 6, "GB": 6,
                 "G": 7, "G#": 8, "AB": 8, "A": 9, "A#": 10, "BB": 10, "B": 11}


DIATONIC_MASKS = tuple(sum(1 << ((tonic + step) % 12) for step in MAJOR) for tonic in range(12))


def best_diatonic(counts) -> int:
    """The diatonic scale (a 12-bit mask of pitch classes, bit 0 = C) holding most of ``counts``
    (12 weights); ties go to the first tonic from C."""
    return max(DIATONIC_MASKS, key=lambda mask: sum(c for pc, c in enumerate(counts) if mask >> pc & 1))


def key_histogram(key: str) -> list[float]:
    """'C major', 'F# minor', 'Bb' -> a 12-bin pitch-class histogram of the scale."""
    parts = key.replace("-", " ").split()
    if not parts or parts[0].upper() not in PITCH_CLASSES or len(parts) > 2 or (
            len(parts) == 2 and parts[1].lower() not in ("major", "minor")):
        raise ValueError(f"key {key!r} is not like 'C major' or 'F# minor'")
    tonic = PITCH_CLASSES[parts[0].upper()]
    scale = MINOR if len(parts) == 2 and parts[1].lower() == "minor" else MAJOR
    hist = [0.0] * 12
    for step in scale:
        hist[(tonic + step) % 12] = 1.0 / len(scale)
    return hist


def control_pitch_to_midi(pitch: float) -> float:
    """Control 0..1 (hand low..high) -> target mean MIDI pitch over the register range."""
    return REGISTER_LOW + 6.0 + float(pitch) * (REGISTER_HIGH - REGISTER_LOW - 12.0)


def control_density_to_rate(density: float) -> float:
    """Control 0..1 (sparse..dense) -> target notes per second, on a log scale from 1 to 24."""
    return float(2.0 ** (density * np.log2(24.0)))


CONTROL_RANGES = {  # the one table of what each control may be; every source clamps through it
    "pitch": (0.0, 1.0),
    "density": (0.0, 1.0),
    "histogram": (0.0, float("inf")),  # each pitch class's weight
    "z": (-1.0, 1.0),  # each of the DCRNN's played z dims
    "mix": (0.0, 1.0),
    "bpm": (MIN_BPM, MAX_BPM),
}


def clamp_control(key: str, value: float) -> float:
    """``value`` within the range of control ``key`` (a float)."""
    lo, hi = CONTROL_RANGES[key]
    return min(max(float(value), lo), hi)


def in_range(key: str, value: float) -> bool:
    lo, hi = CONTROL_RANGES[key]
    return lo <= value <= hi


def range_text(key: str) -> str:
    lo, hi = CONTROL_RANGES[key]
    return f"{lo:g}..{hi:g}"


@dataclass(frozen=True)
class Controls:
    """What the performer asks for right now. Values are clamped on entry (see ``clamped``)."""

    pitch: float = 0.5
    density: float = 0.5
    histogram: tuple[float, ...] | None = None
    conditioning: bool = True
    z: tuple[float, ...] | None = None
    theme: str = "A"  # DCRNN: the seeded theme the external z dims play over
    toward: str | None = None  # DCRNN: a second theme, reached linearly as ``mix`` goes 0 -> 1
    mix: float = 0.0
    bpm: float | None = None  # the DCRNN's beat grid and the MIDI clock out; None: the engine's setting

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v is not None}

    def vector(self) -> np.ndarray:
        v = np.zeros(CONDITION_DIM, dtype=np.float32)
        if not self.conditioning:
            v[OFF_FLAG] = 1.0
            return v
        v[DENSITY.start + density_bin(control_density_to_rate(self.density))] = 1.0
        if self.histogram is not None:
            h = np.asarray(self.histogram, dtype=np.float32)
            if h.sum() > 0:
                v[HISTOGRAM] = h / h.sum()
        v[REGISTER.start + register_bin(control_pitch_to_midi(self.pitch))] = 1.0
        return v
