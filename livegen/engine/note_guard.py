"""The note rules the clock enforces on everything it sends, whatever the generators hand it.

Rollbacks, late messages, port switches and stops all meet here, at the last step before a port,
so one small object keeps the promises a synth relies on:

- a note-on for a key already sounding (same port and channel) first ends the sounding note;
- every note-on gets exactly one note-off: a note-off for a key that is not sounding is dropped,
  and the generator's own note-off for a note the guard already ended is swallowed;
- no note outlives ``max_seconds`` of its layer (the guard ends it there, in the clock);
- a rollback that discards music already sent ends the notes that music started, since the
  regenerated future never contains their note-offs.

Pure Python: it runs in the clock process, which imports neither numpy nor torch.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

NOTE_OFF, NOTE_ON, CONTROL_CHANGE = 0x80, 0x90, 0xB0
ALL_SOUND_OFF, ALL_NOTES_OFF = 120, 123
OVERRUN = 0.0005  # s past max_seconds: the generator's own note-off at the limit goes first

Key = tuple[int, int, int]  # (port index, channel, note)


@dataclass(frozen=True)
class Note:
    serial: int
    layer: int
    token: int  # the generator step that made the note-on (-1: not from a generator)
    started: float  # performance seconds


class NoteGuard:
    def __init__(self, max_seconds: list[float]):
        """``max_seconds``: per layer, the longest a note may sound."""
        self.max_seconds = max_seconds
        self.sounding: dict[Key, Note] = {}
        self.owed: dict[Key, list[Note]] = {}  # ended by the guard: their own note-offs are swallowed
        self._expiries: list[tuple[float, int, Key]] = []
        self._serial = 0
        self.retriggers = 0  # note-ons on a sounding key, ended first
        self.stray_offs = 0  # note-offs for keys not sounding, dropped
        self.expired = 0  # notes ended at max_seconds

    def admit(self, t: float, port: int, layer: int, token: int, msg: list[int]) -> list[list[int]]:
        """The messages to send for ``msg`` (at performance time ``t``): none, it, or a note-off and it."""
        kind, channel = msg[0] & 0xF0, msg[0] & 0x0F
        if kind == NOTE_ON and msg[2] > 0:
            key = (port, channel, msg[1])
            out = []
            if key in self.sounding:
                self.retriggers += 1
                out.append(self._end(key, owe=True))
            self._serial += 1
            self.sounding[key] = Note(self._serial, layer, token, t)
            heapq.heappush(self._expiries, (t + self.max_seconds[layer] + OVERRUN, self._serial, key))
            out.append(msg)
            return out
        if kind in (NOTE_ON, NOTE_OFF):
            key = (port, channel, msg[1])
            if self.owed.get(key):
                self.owed[key].pop(0)
                return []
            if key in self.sounding:
                del self.sounding[key]
                return [msg]
            self.stray_offs += 1
            return []
        if kind == CONTROL_CHANGE and msg[1] in (ALL_SOUND_OFF, ALL_NOTES_OFF):
            for key in [k for k in self.sounding if k[:2] == (port, channel)]:
                del self.sounding[key]
        return [msg]

    def _end(self, key: Key, owe: bool) -> list[int]:
        note = self.sounding.pop(key)
        if owe:
            self.owed.setdefault(key, []).append(note)
        return [NOTE_OFF | key[1], key[2], 0]

    def next_expiry(self) -> float | None:
        """Performance time of the next note the guard must end (None: none sounding)."""
        while self._expiries:
            _, serial, key = self._expiries[0]
            note = self.sounding.get(key)
            if note is not None and note.serial == serial:
                return self._expiries[0][0]
            heapq.heappop(self._expiries)
        return None

    def expire(self, t: float) -> list[tuple[float, int, int, list[int]]]:
        """(when, port, layer, note-off) for every note that has sounded ``max_seconds`` by ``t``."""
        out = []
        while (due := self.next_expiry()) is not None and due <= t:
            _, _, key = heapq.heappop(self._expiries)
            layer = self.sounding[key].layer
            self.expired += 1
            out.append((due, key[0], layer, self._end(key, owe=True)))
        return out

    def discard(self, layer: int, first: int) -> list[tuple[int, list[int]]]:
        """A rollback of ``layer`` to step ``first``: (port, note-off) for the notes its discarded
        steps already started; their note-offs will never come."""
        out = []
        for key in [k for k, n in self.sounding.items() if n.layer == layer and n.token >= first]:
            out.append((key[0], self._end(key, owe=False)))
        for key, notes in list(self.owed.items()):
            notes[:] = [n for n in notes if n.layer != layer or n.token < first]
            if not notes:
                del self.owed[key]
        return out
