"""``--controls script:FILE.jsonl``: a control stream of timed control values, one JSON object a line
(the format, and how it is read and checked: livegen/music/control_stream.py), played on the
performance clock. Recorded sessions replay through it too (livegen/sessions.py).
"""
from __future__ import annotations

from dataclasses import replace

from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.music.control_stream import CONTROL_FIELDS, read_stream
from livegen.sensors.base import ControlSource, clamp_controls

LEAD = 1.0  # s ahead of its time that a change is handed to the engine


def parse_script(path: str) -> list[dict]:
    """Rows of a control script, validated; UserError names the file and line."""
    return read_stream(path)[1]


class ScriptControls(ControlSource):
    """Replays a script on the performance clock, each change stamped with its script time.

    A script knows its future, so each change is handed to the engine ``LEAD`` seconds before its
    time: the engine applies it at its time whatever the load, and a scripted take with a seed is
    the same take on a busy machine as on a quiet one."""

    name = "script"

    def __init__(self, path: str, base: Controls | None = None):
        super().__init__()
        self.path = path
        self.header, self.rows = read_stream(path)
        ends = [r["t"] for r in self.rows if r.get("end")]
        self.end: float | None = ends[0] if ends else None  # where a recorded take ended
        self.current = base or Controls()
        start = [r for r in self.rows if r["t"] <= 0]
        for row in start:
            self.current = self._merge(row, self.current)
        self._pending = [r for r in self.rows[len(start):] if CONTROL_FIELDS & set(r)]
        self._next = 0  # the first row not handed to the engine yet

    def _merge(self, row: dict, previous: Controls) -> Controls:
        """``clamp_controls`` plus the theme keys, which only scripts (and later the GUI) set."""
        controls = clamp_controls(row, previous, self.warn_once)
        if "theme" in row:  # a theme alone clears the interpolation
            controls = replace(controls, theme=row["theme"], toward=None, mix=controls.mix if "mix" in row else 0.0)
        if "toward" in row:
            controls = replace(controls, toward=row["toward"])
        return controls

    @classmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "ScriptControls":
        if not args:
            raise UserError("--controls script: needs a file, e.g. --controls script:gesture.jsonl")
        return cls(args, initial)

    def start(self, sink, clock) -> None:
        """Hand over, before the thread starts, every change due within ``LEAD`` of now."""
        self._sink, self._clock = sink, clock
        self._merged = self.current  # the controls the rows are merged over
        self._hand_over(clock() + LEAD)
        super().start(sink, clock)

    def _hand_over(self, until: float) -> None:
        while self._next < len(self._pending) and self._pending[self._next]["t"] <= until:
            row = self._pending[self._next]
            self._merged = self._merge(row, self._merged)
            self._next += 1
            self.publish(self._merged, row["t"])

    def _step(self) -> bool:
        if self._next >= len(self._pending):
            return True
        wait = self._pending[self._next]["t"] - LEAD - self._clock()
        if wait > 0:
            self._stop.wait(min(wait, 0.05))
        else:
            self._hand_over(self._clock() + LEAD)
        return False
