"""The piano roll the DCRNN plays and learns from: frames on a grid of ``steps_per_beat``
subdivisions of each beat, rows of pitches from a low one up, two channels (sounding, onset).

Notes -> roll for training windows, roll -> notes through ``RollDecoder``, the one decoder both the
live engine and the trainer's samples and metrics use, so what is measured is what is heard.
Pitches outside the roll's range are folded in by octaves. numpy only: the live path needs no torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livegen.music.events import Note


@dataclass
class Roll:
    """A piece on the grid: sounding and onset (frames, pitches) bools, downbeat frames."""

    sounding: np.ndarray
    onset: np.ndarray
    downbeats: np.ndarray


def grid_edges(beats: np.ndarray, steps_per_beat: int) -> np.ndarray:
    """Frame times: ``steps_per_beat`` equal subdivisions of each beat interval, then the last beat."""
    step = np.diff(beats)[:, None] / steps_per_beat
    inner = (np.arange(steps_per_beat)[None, :] * step + beats[:-1, None]).ravel()
    return np.concatenate([inner, beats[-1:]])


def _nearest(edges: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the grid point nearest each time."""
    right = np.clip(np.searchsorted(edges, times), 1, len(edges) - 1)
    return right - ((times - edges[right - 1]) < (edges[right] - times))


def _fold(pitch: int, low: int, pitches: int) -> int:
    """A pitch's row, folded into the roll's range by octaves."""
    p = pitch - low
    while p < 0:
        p += 12
    while p >= pitches:
        p -= 12
    return p


def to_roll(notes: list[Note], beats: np.ndarray, downbeats: np.ndarray, low: int, pitches: int,
            steps_per_beat: int) -> Roll:
    """Notes -> a roll on ``steps_per_beat`` subdivisions of each beat interval."""
    edges = grid_edges(beats, steps_per_beat)
    frames = len(edges)
    sounding = np.zeros((frames, pitches), dtype=bool)
    onset = np.zeros((frames, pitches), dtype=bool)
    starts = _nearest(edges, np.array([n.start for n in notes]))
    ends = _nearest(edges, np.array([n.end for n in notes]))
    for n, s, e in zip(notes, starts, ends):
        p = _fold(n.pitch, low, pitches)
        e = max(int(e), int(s) + 1)
        sounding[s:e, p] = True
        onset[s, p] = True
    return Roll(sounding, onset, downbeats * steps_per_beat)


def roll_window(notes: np.ndarray, edges: np.ndarray, first: int, steps: int, low: int, pitches: int) -> np.ndarray:
    """Frames ``first .. first+steps`` of ``to_roll`` as a (2, steps, pitches) float32 window, from the
    notes that reach into them only (NOTE_DTYPE rows sorted by start): a window costs the same in a
    long piece as in a short one."""
    starts, ends = notes["start"], notes["end"]
    longest = float((ends - starts).max()) if len(notes) else 0.0
    last = edges[min(first + steps, len(edges) - 1)]
    lo = int(np.searchsorted(starts, edges[first] - longest - 1.0))
    hi = int(np.searchsorted(starts, last + 1.0, side="right"))
    part = notes[lo:hi]
    s = _nearest(edges, np.asarray(part["start"]))
    e = np.maximum(_nearest(edges, np.asarray(part["end"])), s + 1)
    w = np.zeros((2, steps, pitches), dtype=np.float32)
    for pitch, a, b in zip(part["pitch"].tolist(), s.tolist(), e.tolist()):
        if a >= first + steps or b <= first:
            continue
        row = _fold(pitch, low, pitches)
        w[0, max(a, first) - first:min(b, first + steps) - first, row] = 1.0
        if a >= first:
            w[1, a - first, row] = 1.0
    return w


@dataclass(frozen=True)
class RollDecoder:
    """Frames of (sounding, onset) probabilities -> note-ons/offs, with the runaway guards.

    A note starts where its row crosses ``threshold`` (or is re-struck where the onset channel
    fires on a sounding row) and ends where the row falls below it, after ``max_steps`` frames,
    or at a re-strike. At most ``max_polyphony`` notes sound; when more would start, the most
    probable onsets win. Immutable, so saving it for rollback costs nothing.
    """

    threshold: float
    onset_threshold: float
    max_steps: int
    max_polyphony: int
    active: tuple[tuple[int, int], ...] = ()  # (row, start frame), oldest first
    was_on: frozenset = frozenset()  # rows above threshold in the previous frame

    def feed(self, frame: np.ndarray, index: int) -> tuple["RollDecoder", list[int], list[tuple[int, float]]]:
        """(next decoder, rows to end, (row, onset strength) to start) for the frame at ``index``."""
        on = frame[0] >= self.threshold
        strike = frame[1] >= self.onset_threshold
        ended, kept = [], []
        for row, start in self.active:
            if not on[row] or strike[row] or index - start >= self.max_steps:
                ended.append(row)
            else:
                kept.append((row, start))
        sounding = {row for row, _ in kept}
        candidates = [row for row in np.flatnonzero(on)
                      if row not in sounding and (strike[row] or row not in self.was_on)]
        room = max(self.max_polyphony - len(kept), 0)
        chosen = sorted(candidates, key=lambda r: (-frame[1][r], -frame[0][r], r))[:room]
        started = [(int(r), float(frame[1][r])) for r in sorted(chosen)]
        active = tuple(kept) + tuple((r, index) for r, _ in started)
        return (RollDecoder(self.threshold, self.onset_threshold, self.max_steps, self.max_polyphony, active,
                            frozenset(int(r) for r in np.flatnonzero(on))), ended, started)

    def release(self) -> list[int]:
        return [row for row, _ in self.active]


def roll_notes(sounding: np.ndarray, onset: np.ndarray, threshold: float = 0.5, onset_threshold: float = 0.5,
               max_steps: int = 10**9, max_polyphony: int = 128) -> list[tuple[int, int, int]]:
    """(start frame, end frame, row) of each note, decoded exactly as the live engine decodes frames."""
    decoder = RollDecoder(threshold, onset_threshold, max_steps, max_polyphony)
    starts: dict[int, int] = {}
    out = []
    for t in range(len(sounding)):
        decoder, ended, started = decoder.feed(np.stack([sounding[t], onset[t]]), t)
        out += [(starts.pop(row), t, row) for row in ended]
        starts.update((row, t) for row, _ in started)
    out += [(start, len(sounding), row) for row, start in starts.items()]
    return sorted(out)
