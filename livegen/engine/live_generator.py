"""What the engine drives, whatever the model: a ``LiveGenerator`` generating ahead over a
``ControlTimeline`` and able to roll back. The Char-RNN's (charrnn_live.py) and the DCRNN's
(dcrnn_live.py) both implement it, so neither lives in the other's file.
"""
from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections import deque

from livegen.music.conditioning import Controls
from livegen.music.tempo import TempoMap


class ControlTimeline:
    """Controls as a function of performance time: each change holds until the next. The tempo
    among them (``Controls.bpm``, None: ``bpm``) is kept as a ``TempoMap`` beside them."""

    def __init__(self, initial: Controls, bpm: float = 120.0):
        self.times: list[float] = [-math.inf]
        self.values: list[Controls] = [initial]
        self.default_bpm = bpm
        self.tempo = TempoMap(initial.bpm or bpm)

    def set(self, t: float, controls: Controls) -> None:
        i = bisect.bisect_right(self.times, t)
        del self.times[i:], self.values[i:]  # a newer change overrides anything scheduled later
        self.times.append(t)
        self.values.append(controls)
        self.tempo.set(t, controls.bpm or self.default_bpm)

    def at(self, t: float) -> Controls:
        return self.values[bisect.bisect_right(self.times, t) - 1]

    def forget_before(self, t: float) -> None:
        i = bisect.bisect_right(self.times, t) - 1
        if i > 0:
            del self.times[:i], self.values[:i]
        self.tempo.forget_before(t)


class LiveGenerator(ABC):
    """What the engine drives: a model generating ahead over a control timeline, able to roll back.

    Times are performance seconds. Every message carries the index of the step that made it, so
    the clock can drop exactly the future a rollback discards. Same seed + same timeline must
    give the same messages, with or without rollbacks along the way.
    """

    timeline: ControlTimeline
    current: object  # the state the next step starts from; saved states wait in ``history``
    history: deque

    @property
    def time(self) -> float:
        """Performance time up to which music has been generated."""
        return self._time_of(self.current)

    @abstractmethod
    def _time_of(self, state) -> float:
        """Performance time at which a saved state's step begins."""

    @abstractmethod
    def step(self) -> list[tuple[float, int, list[int]]]:
        """Generate one step; (time, step index, MIDI bytes) for each message it makes."""

    def rollback(self, t: float) -> int | None:
        """Return to the state before the first step at or after ``t``; that step's index, or None
        if generation has not reached ``t`` yet."""
        if self.time < t:
            return None
        i = bisect.bisect_left([self._time_of(h) for h in self.history], t)
        if i == len(self.history):
            return None
        target = self.history[i]
        for _ in range(len(self.history) - i):
            self.history.pop()
        self.current = target
        return target.index

    def forget_before(self, t: float) -> None:
        """Drop saved states older than ``t`` (already played); nothing before it can be rolled back to."""
        while self.history and self._time_of(self.history[0]) < t:
            self.history.popleft()
        self.timeline.forget_before(t)

    def hears(self, before: Controls, after: Controls) -> bool:
        """Whether music generated under ``before`` would change under ``after`` (a rollback is due)."""
        return before != after

    @abstractmethod
    def release(self) -> list[tuple[float, int, list[int]]]:
        """Note-offs for everything still sounding (end of a performance)."""
