"""What a player plays, as livegen hears it: notes held and struck, and the controls they imply.

``PlayerPhrase`` follows the player's note messages (performance seconds) and estimates from a
stretch of them what the engine's controls would be to play in the same manner: the pitch-class
histogram (the key), density (onsets per second, inverted through the density control's curve)
and register (the mean pitch, inverted through the pitch control's). It also gives the phrase as
event tokens, to prime the Char-RNN with.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from livegen.music import events
from livegen.music.conditioning import REGISTER_HIGH, REGISTER_LOW, Controls, clamp_control
from livegen.music.events import Note

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


def phrase_tokens(notes: list[Note], limit: int) -> list[int]:
    """The phrase as event tokens (its last ``limit``), to prime the Char-RNN with."""
    if not notes:
        return []
    t0 = notes[0].start
    tokens, _ = events.notes_to_tokens(Note(n.start - t0, n.end - t0, n.pitch, n.velocity) for n in notes)
    return [int(t) for t in tokens[-limit:]]
