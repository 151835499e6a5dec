"""What a player plays, as livegen hears it: notes held and struck, and the controls they imply.

``PlayerPhrase`` follows the player's note messages (performance seconds) and estimates from a
stretch of them what the engine's controls would be to play in the same manner: the pitch-class
histogram (the key), density (onsets per second, inverted through the density control's curve)
and register (the mean pitch, inverted through the pitch control's). It also gives the phrase as
event tokens, to prime the Char-RNN with. ``PlayerPulse`` hears their tempo from their onsets.
"""
from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np

from livegen.music import events
from livegen.music.conditioning import REGISTER_HIGH, REGISTER_LOW, Controls, clamp_control
from livegen.music.events import Note
from livegen.music.tempo import BeatSource

MEMORY_SECONDS = 30.0  # how far back notes are kept
MAX_NOTES = 2048  # and at most this many (a flood of notes cannot grow it)
STUCK_SECONDS = 8.0  # a note held longer is taken as one whose note-off was lost
HOLD_SECONDS = 2.0  # a note held longer no longer keeps a phrase open (a last held note, or a lost note-off)


class PlayerPhrase:
    def __init__(self):
        self.notes: deque[Note] = deque(maxlen=MAX_NOTES)  # ended notes, in end order
        self.held: dict[int, tuple[float, int]] = {}  # pitch -> (onset, velocity)
        self.last_event = -math.inf  # performance time of the last note message

    def hear(self, t: float, msg: list[int]) -> str | None:
        """Take one channel message; "on" for a struck note, "off" for an ended one, else None."""
        kind = msg[0] & 0xF0
        if kind == 0x90 and msg[2] > 0:
            if msg[1] in self.held:
                self._end(msg[1], t)
            self.held[msg[1]] = (t, msg[2])
            self.last_event = t
            self._forget(t)
            return "on"
        if kind in (0x80, 0x90):
            if msg[1] not in self.held:
                return None
            self._end(msg[1], t)
            self.last_event = t
            return "off"
        return None

    def _end(self, pitch: int, t: float) -> None:
        onset, velocity = self.held.pop(pitch)
        self.notes.append(Note(onset, max(t, onset), pitch, velocity))

    def _forget(self, now: float) -> None:
        while self.notes and self.notes[0].end < now - MEMORY_SECONDS:
            self.notes.popleft()
        for pitch, (onset, _) in list(self.held.items()):
            if onset < now - STUCK_SECONDS:
                self._end(pitch, onset + STUCK_SECONDS)

    def quiet_from(self) -> float:
        """Performance time from which the player is silent: no note struck or released since,
        and none held for less than ``HOLD_SECONDS`` then."""
        return max([self.last_event, *(onset + HOLD_SECONDS for onset, _ in self.held.values())])

    def between(self, start: float, end: float) -> list[Note]:
        """Notes struck in [start, end), held ones ending at ``end``."""
        held = [Note(onset, end, p, v) for p, (onset, v) in self.held.items()]
        return sorted(n for n in [*self.notes, *held] if start <= n.start < end)

    def phrase(self, end: float, gap: float, longest: float = 12.0) -> list[Note]:
        """The last phrase before ``end``: the notes back to the first silence longer than ``gap``
        (at most ``longest`` seconds)."""
        notes = self.between(end - longest, end)
        start = 0
        reach = -math.inf
        for i, n in enumerate(notes):
            if i and n.start - reach > gap:
                start = i
            reach = max(reach, n.end)
        return notes[start:]


def estimate_controls(notes: list[Note], base: Controls, span: float | None = None) -> Controls:
    """``base`` with the pitch-class histogram, density and register of ``notes`` (over ``span``
    seconds; None: from the first onset to the last note's end)."""
    if not notes:
        return base
    pcs = np.bincount([n.pitch % 12 for n in notes], minlength=12).astype(float)
    first, last = notes[0].start, max(n.end for n in notes)
    seconds = span if span is not None else max(last - first, 0.5)
    rate = len(notes) / max(seconds, 0.5)
    density = math.log2(max(rate, 1.0)) / math.log2(24.0)
    mean_pitch = float(np.mean([n.pitch for n in notes]))
    pitch = (mean_pitch - REGISTER_LOW - 6.0) / (REGISTER_HIGH - REGISTER_LOW - 12.0)
    return Controls(pitch=clamp_control("pitch", pitch), density=clamp_control("density", density),
                    histogram=tuple(float(x) for x in pcs / pcs.sum()), conditioning=True, z=base.z,
                    theme=base.theme, toward=base.toward, mix=base.mix, bpm=base.bpm)


def phrase_tokens(notes: list[Note], limit: int, tempo=None) -> list[int]:
    """The phrase as event tokens (its last ``limit``), to prime the Char-RNN with; given the take's
    ``tempo`` map, in beat time, for a model that counts time in beats."""
    if not notes:
        return []
    step = events.TIME_UNITS["seconds"]
    if tempo is not None:
        per_beat = 60.0 / events.REFERENCE_BPM
        notes = [Note(tempo.beat_at(n.start) * per_beat, tempo.beat_at(n.end) * per_beat, n.pitch, n.velocity)
                 for n in notes]
        step = events.TIME_UNITS["beats"]
    t0 = notes[0].start
    tokens, _ = events.notes_to_tokens((Note(n.start - t0, n.end - t0, n.pitch, n.velocity) for n in notes), step)
    return [int(t) for t in tokens[-limit:]]


class PlayerPulse(BeatSource):
    """The player's 16th-note grid, heard from their onsets, as an outside beat to follow.

    Over the last ``WINDOW`` seconds of onsets (a chord counts once), each tempo within
    ``FOLLOW_RANGE`` of the take's is scored by how well the onsets sit on its 16ths (the length of
    the mean of their phases as unit vectors, 1 = all on the grid), and less on its 8ths and beats;
    the best one, if its 16ths fit at least ``MIN_FIT``, is the player's tempo, and its phase says
    where the 16ths fall. Keeping near the take's tempo is what keeps a melody of 8ths from being
    heard at half or double speed.
    The grid is only known to the 16th, so the beats it lines up are 16ths (``quantum``).
    Called from two threads: onsets arrive on the input's, the follower asks on its own."""

    name = "the player"
    quantum = 0.25
    WINDOW = 6.0  # s of onsets the pulse is heard from
    MIN_ONSETS = 8
    STOPPED = 2.0  # s without an onset: the player has stopped, nothing to follow
    CHORD = 0.035  # s: onsets closer than this are one
    FOLLOW_RANGE = 0.25  # the player's tempo is looked for within the take's +-25 %
    MIN_FIT = 0.6

    def __init__(self, bpm: float):
        self.bpm = float(bpm)
        self._onsets: deque[float] = deque(maxlen=256)  # monotonic times
        self._lock = threading.Lock()
        self._fit: tuple[float, float, float] | None = None  # (grid origin, 16th seconds, bpm)
        self._heard = 0  # onsets heard so far (the window of 256 stays full once it is)
        self._fitted_to = 0  # onsets heard when the fit was made

    def hear(self, at: float, msg: list[int]) -> None:
        """A player's message at monotonic time ``at`` (only struck notes count)."""
        if msg[0] & 0xF0 != 0x90 or msg[2] == 0:
            return
        with self._lock:
            if not self._onsets or at - self._onsets[-1] >= self.CHORD:
                self._onsets.append(at)
                self._heard += 1

    def beat_at(self, at: float) -> tuple[float, float] | None:
        with self._lock:  # held only to copy: the input's thread must never wait on the fit
            onsets = [t for t in self._onsets if at - self.WINDOW <= t <= at]
            heard = self._heard
        if len(onsets) < self.MIN_ONSETS or at - onsets[-1] > self.STOPPED:
            return None
        if heard != self._fitted_to:  # only the follower's thread fits: no lock needed for the cache
            self._fit, self._fitted_to = self._grid(onsets), heard
        fit = self._fit
        if fit is None:
            return None
        origin, sixteenth, bpm = fit
        return (at - origin) / sixteenth / 4.0, bpm

    def _grid(self, onsets: list[float]) -> tuple[float, float, float] | None:
        t = np.asarray(onsets) - onsets[0]
        bpms = np.linspace(self.bpm * (1 - self.FOLLOW_RANGE), self.bpm * (1 + self.FOLLOW_RANGE), 201)
        sixteenths = 15.0 / bpms

        def fit(period):  # per tempo: how well the onsets sit on a grid of ``period``, and its phase
            return np.exp(2j * np.pi * t[None, :] / period[:, None]).mean(axis=1)

        on16 = fit(sixteenths)
        # Quarter notes sit as well on the 16ths of 3/4 or 5/4 of their tempo: the tempo whose 8ths and
        # beats they also sit on wins, then the one nearest the take's
        score = (np.abs(on16) + 0.5 * np.abs(fit(2 * sixteenths)) + 0.25 * np.abs(fit(4 * sixteenths))
                 - 0.1 * np.abs(np.log(bpms / self.bpm)))
        best = int(np.argmax(score))
        if abs(on16[best]) < self.MIN_FIT:
            return None
        sixteenth = float(sixteenths[best])
        origin = onsets[0] + float(np.angle(on16[best])) / (2 * np.pi) * sixteenth
        return origin, sixteenth, float(bpms[best])

    def close(self) -> None:
        pass
