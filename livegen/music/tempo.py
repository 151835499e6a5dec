"""Beats as a function of performance time, for everything that keeps the beat.

The DCRNN's 16th-note grid, the MIDI clock out and the tempo follower share one ``TempoMap``:
a tempo holds from each change to the next, and each change is anchored at the beat position
it was made at, so a change of tempo never moves a beat that has already passed. Pure Python
(no numpy): the output-clock process uses it too.

A ``BeatSource`` is the same for a tempo from outside (a MIDI clock in, an Ableton Link session):
the midi package implements it and the engine's tempo follower locks to it, so it lives here,
below both.
"""
from __future__ import annotations

import bisect
from abc import ABC, abstractmethod

MIN_BPM, MAX_BPM = 20.0, 300.0


class TempoMap:
    def __init__(self, bpm: float):
        self.times: list[float] = [0.0]  # performance seconds where each tempo starts
        self.beats: list[float] = [0.0]  # the beat position there
        self.bpms: list[float] = [float(bpm)]

    def set(self, t: float, bpm: float) -> None:
        """``bpm`` from performance time ``t`` on; a newer change overrides any scheduled later."""
        beat = self.beat_at(t)
        i = bisect.bisect_right(self.times, t)
        if i == 0:  # before everything still kept: start over from here
            self.times, self.beats, self.bpms = [t], [beat], [float(bpm)]
            return
        del self.times[i:], self.beats[i:], self.bpms[i:]
        self.times.append(t)
        self.beats.append(beat)
        self.bpms.append(float(bpm))

    def beat_at(self, t: float) -> float:
        i = max(bisect.bisect_right(self.times, t) - 1, 0)
        return self.beats[i] + (t - self.times[i]) * self.bpms[i] / 60.0

    def time_at_beat(self, beat: float) -> float:
        i = max(bisect.bisect_right(self.beats, beat) - 1, 0)
        return self.times[i] + (beat - self.beats[i]) * 60.0 / self.bpms[i]

    def bpm_at(self, t: float) -> float:
        return self.bpms[max(bisect.bisect_right(self.times, t) - 1, 0)]

    def forget_before(self, t: float) -> None:
        """Drop changes superseded before ``t``; nothing earlier is asked for again."""
        i = bisect.bisect_right(self.times, t) - 1
        if i > 0:
            del self.times[:i], self.beats[:i], self.bpms[:i]


class BeatSource(ABC):
    """An outside tempo: its beat position and bpm as functions of monotonic time."""

    name = "beat source"
    quantum = 1.0  # beats whose phase is shared: 4 lines the bars up, 1 only the beats

    @abstractmethod
    def beat_at(self, at: float) -> tuple[float, float] | None:
        """(beat position, bpm) at monotonic time ``at``; None while there is nothing to follow."""

    @abstractmethod
    def close(self) -> None: ...
