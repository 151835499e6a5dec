"""Where control sources meet: each changes some fields, the merged controls steer one engine.

A script knows its future and hands each change over ahead of its time, so that it applies at
its time however busy the machine is. The mixer keeps such a change out of the merge until its
time: a hand or an OSC message moving now never carries a script's future value, and since the
engine takes a change as overriding everything scheduled after it, every change held for later
is sent again, merged anew, after each change made before it.
"""
from __future__ import annotations

import bisect
import dataclasses
import threading
from typing import Callable

from livegen.music.conditioning import Controls

Sink = Callable[[Controls, "float | None"], object]


class ControlMixer:
    def __init__(self, controls: Controls, clock: Callable[[], float]):
        self.clock = clock  # performance time
        self._now = controls  # the merged controls in force now
        self._ahead: list[tuple[float, int, dict]] = []  # (t, order, fields): changes for later
        self._order = 0
        self._lock = threading.Lock()

    def current(self) -> Controls:
        """The merged controls in force now, without the changes still ahead."""
        with self._lock:
            self._catch_up(self.clock())
            return self._now

    def change(self, sink: Sink | None, t: float | None, **fields) -> None:
        """Merge ``fields`` from performance time ``t`` (None: now) and steer ``sink`` (thread-safe;
        the sink must return at once, as ``Engine.set_controls`` does)."""
        with self._lock:
            now = self.clock()
            self._catch_up(now)
            if t is not None and t > now:
                self._order += 1
                bisect.insort(self._ahead, (t, self._order, fields))
                self._send_ahead(sink, since=t)
                return
            self._now = dataclasses.replace(self._now, **fields)
            if sink is not None:
                sink(self._now, t)
            self._send_ahead(sink, since=float("-inf"))

    def reset(self, controls: Controls) -> None:
        """Start over from ``controls`` (a new take), forgetting what was ahead."""
        with self._lock:
            self._now, self._ahead = controls, []

    def _catch_up(self, now: float) -> None:
        while self._ahead and self._ahead[0][0] <= now:
            self._now = dataclasses.replace(self._now, **self._ahead.pop(0)[2])

    def _send_ahead(self, sink: Sink | None, since: float) -> None:
        merged = self._now
        for t, _, fields in self._ahead:
            merged = dataclasses.replace(merged, **fields)
            if sink is not None and t >= since:
                sink(merged, t)
