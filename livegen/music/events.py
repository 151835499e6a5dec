"""The event vocabulary (Performance RNN's 388 tokens), driven by one spec table.

Everything that turns notes into tokens or tokens into timed MIDI lives here:
``EVENT_SPECS`` defines the vocabulary, ``notes_to_tokens`` encodes a performance and
``StreamingDecoder`` turns sampled tokens back into timed messages one at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

import numpy as np

STEP_SECONDS = 0.01  # one TIME_SHIFT step of a model in clock time: the 10 ms grid
VELOCITY_BINS = 32
GRID_STEPS_PER_BEAT = 12  # one TIME_SHIFT step of a model in beat time: 16ths (3 steps), 8th
# triplets (4) and 16th triplets (2) all fall on it
REFERENCE_BPM = 120.0  # beat time is written as seconds at this tempo, so durations, densities and
# the conditioning windows read on one scale whatever the piece's tempo
TIME_UNITS = {  # a model's time unit -> the seconds of one TIME_SHIFT step in the time it is written in
    "seconds": STEP_SECONDS,
    "beats": 60.0 / REFERENCE_BPM / GRID_STEPS_PER_BEAT,
}


@dataclass(frozen=True)
class EventSpec:
    kind: str
    count: int
    first_value: int  # value of the first token of this kind (TIME_SHIFT starts at 1 step)


EVENT_SPECS: tuple[EventSpec, ...] = (
    EventSpec("NOTE_ON", 128, 0),  # value: MIDI pitch
    EventSpec("NOTE_OFF", 128, 0),  # value: MIDI pitch
    EventSpec("TIME_SHIFT", 100, 1),  # value: steps of the model's time unit (TIME_UNITS), 1..100
    EventSpec("VELOCITY", VELOCITY_BINS, 0),  # value: velocity bin 0..31
)

_OFFSETS: dict[str, int] = {}
_offset = 0
for _spec in EVENT_SPECS:
    _OFFSETS[_spec.kind] = _offset
    _offset += _spec.count
VOCAB_SIZE = _offset
_SPEC_BY_KIND = {s.kind: s for s in EVENT_SPECS}
MAX_SHIFT_STEPS = _SPEC_BY_KIND["TIME_SHIFT"].count


def token_range(kind: str) -> range:
    """Token ids of one event kind (for masks and logit biases)."""
    start = _OFFSETS[kind]
    return range(start, start + _SPEC_BY_KIND[kind].count)


def encode(kind: str, value: int) -> int:
    spec = _SPEC_BY_KIND[kind]
    index = value - spec.first_value
    if not 0 <= index < spec.count:
        raise ValueError(f"{kind} value {value} outside {spec.first_value}..{spec.first_value + spec.count - 1}")
    return _OFFSETS[kind] + index


def decode(token: int) -> tuple[str, int]:
    for spec in EVENT_SPECS:
        start = _OFFSETS[spec.kind]
        if start <= token < start + spec.count:
            return spec.kind, token - start + spec.first_value
    raise ValueError(f"token {token} outside the vocabulary of {VOCAB_SIZE}")


def vocabulary() -> list[dict]:
    """The spec table as plain data, stored in every checkpoint so a foreign vocabulary is caught."""
    return [{"kind": s.kind, "count": s.count, "first_value": s.first_value} for s in EVENT_SPECS]


def velocity_to_bin(velocity: int) -> int:
    return (max(1, min(127, velocity)) - 1) * VELOCITY_BINS // 127


def bin_to_velocity(vbin: int) -> int:
    """The centre of a velocity bin; velocity_to_bin(bin_to_velocity(b)) == b."""
    lo = -(-(vbin * 127) // VELOCITY_BINS) + 1
    hi = ((vbin + 1) * 127 - 1) // VELOCITY_BINS + 1
    return (lo + hi) // 2


class Note(NamedTuple):
    start: float  # seconds
    end: float
    pitch: int
    velocity: int


def to_beat_time(notes: Iterable[Note], beats: np.ndarray) -> list[Note]:
    """Notes with their times moved from seconds to beat time (seconds at ``REFERENCE_BPM``) through
    the piece's beat times ``beats``; past either end the nearest beat's spacing goes on."""
    notes = list(notes)
    if not notes:
        return []
    beats = np.asarray(beats, dtype=np.float64)
    times = np.array([[n.start, n.end] for n in notes], dtype=np.float64)
    index = np.interp(times, beats, np.arange(len(beats), dtype=np.float64))
    first, last = beats[1] - beats[0], beats[-1] - beats[-2]
    index = np.where(times < beats[0], (times - beats[0]) / first, index)
    index = np.where(times > beats[-1], len(beats) - 1 + (times - beats[-1]) / last, index)
    index *= 60.0 / REFERENCE_BPM
    return [Note(float(s), float(e), n.pitch, n.velocity) for (s, e), n in zip(index, notes)]


def quantize_notes(notes: Iterable[Note], step: float = STEP_SECONDS) -> list[Note]:
    """Snap notes to the grid of ``step`` s, drop exact duplicates and cut same-pitch overlaps.

    Overlapping notes of one pitch cannot be told apart once encoded (a NOTE_OFF names a
    pitch, not a note), so the earlier one ends where the later one starts.
    """
    by_start: dict[tuple[int, int], Note] = {}
    for n in notes:
        s = round(n.start / step)
        e = max(round(n.end / step), s + 1)
        key = (s, n.pitch)
        old = by_start.get(key)
        if old is None or e > old.end:
            by_start[key] = Note(s, e, n.pitch, n.velocity)
    ordered = sorted(by_start.values())
    last_of_pitch: dict[int, int] = {}
    out: list[Note] = []
    for n in ordered:
        j = last_of_pitch.get(n.pitch)
        if j is not None and out[j].end > n.start:
            out[j] = out[j]._replace(end=n.start)
        last_of_pitch[n.pitch] = len(out)
        out.append(n)
    return [Note(n.start * step, n.end * step, n.pitch, n.velocity) for n in out]


def notes_to_tokens(notes: Iterable[Note], step: float = STEP_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Encode notes as tokens, one TIME_SHIFT step per ``step`` s; also return each token's time in
    seconds (for conditioning).

    At one instant note-offs come before note-ons so a re-struck pitch survives; VELOCITY is
    emitted only when the bin changes.
    """
    points: list[tuple[int, int, int, int]] = []  # (step, order, pitch, velocity bin)
    for n in quantize_notes(notes, step):
        s, e = round(n.start / step), round(n.end / step)
        points.append((s, 1, n.pitch, velocity_to_bin(n.velocity)))
        points.append((e, 0, n.pitch, 0))
    points.sort()
    tokens: list[int] = []
    times: list[int] = []
    now = 0
    vbin = -1
    for at, order, pitch, vb in points:
        while at > now:
            shift = min(at - now, MAX_SHIFT_STEPS)
            tokens.append(encode("TIME_SHIFT", shift))
            times.append(now)
            now += shift
        if order == 1:
            if vb != vbin:
                tokens.append(encode("VELOCITY", vb))
                times.append(now)
                vbin = vb
            tokens.append(encode("NOTE_ON", pitch))
        else:
            tokens.append(encode("NOTE_OFF", pitch))
        times.append(now)
    return np.asarray(tokens, dtype=np.int16), np.asarray(times, dtype=np.float64) * step


def tokens_to_notes(tokens: Iterable[int], step: float = STEP_SECONDS) -> list[Note]:
    """Decode a whole token sequence (no guards): the inverse of notes_to_tokens."""
    decoder = StreamingDecoder(max_note_seconds=float("inf"), max_polyphony=128, step=step)
    starts: dict[int, tuple[float, int]] = {}
    out: list[Note] = []
    for token in tokens:
        for msg in decoder.feed(int(token)):
            if msg.velocity > 0:
                starts[msg.pitch] = (msg.time, msg.velocity)
            elif msg.pitch in starts:
                s, v = starts.pop(msg.pitch)
                out.append(Note(s, msg.time, msg.pitch, v))
    for msg in decoder.release_all():
        s, v = starts.pop(msg.pitch)
        out.append(Note(s, msg.time, msg.pitch, v))
    return sorted(out)


class NoteMessage(NamedTuple):
    """A timed note message; velocity 0 means note-off."""

    time: float
    pitch: int
    velocity: int


@dataclass
class StreamingDecoder:
    """Tokens in, timed note messages out, one token at a time, with runaway guards.

    ``step`` is the seconds of one TIME_SHIFT step (for a model in beat time, set from the tempo
    by whoever feeds it); ``time_scale`` stretches them (the engine's density control path); ``advance`` moves
    time on by any amount (the engine's beat grid). The guards end a note held longer than
    ``max_note_seconds`` and the oldest note when ``max_polyphony`` would be exceeded, so no model
    can leave a note hanging. ``ended`` keeps when each pitch last stopped sounding, for a
    generator that would not strike a key the instant it was released.
    """

    max_note_seconds: float = 4.0
    max_polyphony: int = 12
    time_scale: float = 1.0
    time: float = 0.0
    velocity: int = bin_to_velocity(20)
    active: dict[int, float] = field(default_factory=dict)  # pitch -> onset time, in onset order
    ended: dict[int, float] = field(default_factory=dict)  # pitch -> when its last note ended
    step: float = STEP_SECONDS

    ENDED_KEPT = 1.0  # s a note-off is remembered

    def copy(self) -> "StreamingDecoder":
        return StreamingDecoder(self.max_note_seconds, self.max_polyphony, self.time_scale,
                                self.time, self.velocity, dict(self.active), dict(self.ended), self.step)

    def advance(self, new_time: float) -> list[NoteMessage]:
        """Move time on to ``new_time``; the note-offs of notes that reached the length guard."""
        out: list[NoteMessage] = []
        for pitch, onset in list(self.active.items()):
            if onset + self.max_note_seconds < new_time:
                out.append(NoteMessage(onset + self.max_note_seconds, pitch, 0))
                self._end(pitch, onset + self.max_note_seconds)
        out.sort()
        self.time = new_time
        if len(self.ended) > 16:
            self.ended = {p: t for p, t in self.ended.items() if t > new_time - self.ENDED_KEPT}
        return out

    def _end(self, pitch: int, t: float) -> None:
        del self.active[pitch]
        self.ended[pitch] = t

    def feed(self, token: int) -> list[NoteMessage]:
        kind, value = decode(token)
        out: list[NoteMessage] = []
        if kind == "TIME_SHIFT":
            return self.advance(self.time + value * self.step * self.time_scale)
        if kind == "VELOCITY":
            self.velocity = bin_to_velocity(value)
        elif kind == "NOTE_ON":
            if self.active.get(value) == self.time:
                return out  # struck twice at one instant: one note, not a zero-length one
            if value in self.active:
                out.append(NoteMessage(self.time, value, 0))
                self._end(value, self.time)
            elif len(self.active) >= self.max_polyphony:
                oldest = next(iter(self.active))
                out.append(NoteMessage(self.time, oldest, 0))
                self._end(oldest, self.time)
            self.active[value] = self.time
            out.append(NoteMessage(self.time, value, self.velocity))
        elif value in self.active:  # NOTE_OFF of a sounding note; others are no-ops
            self._end(value, self.time)
            out.append(NoteMessage(self.time, value, 0))
        return out

    def release_all(self) -> list[NoteMessage]:
        out = [NoteMessage(self.time, p, 0) for p in self.active]
        for p in list(self.active):
            self._end(p, self.time)
        return out
