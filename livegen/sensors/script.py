"""``--controls script:FILE.jsonl``: timed control values, one JSON object a line.

    {"t": 0.0, "pitch": 0.5, "density": 0.5}
    {"t": 4.0, "pitch": 0.9, "key": "A minor"}
    {"t": 8.0, "histogram": [1,0,1,0,1,1,0,1,0,1,0,1], "z": [0,0,0,0,0,0,0,0]}

``t`` is seconds from the start (non-decreasing); ``pitch`` and ``density`` are 0..1; optional
``histogram`` (12 numbers) or ``key`` ("C major", "F# minor"), and ``z`` (8 numbers in -1..1).
For the DCRNN, ``theme`` names the seeded theme the z dims play over ("A", "B", ...: the same name
recalls the same theme, so A B C A B is a form), ``toward`` a second theme and ``mix`` (0..1) the
linear interpolation toward it; naming a theme alone clears the interpolation:

    {"t": 16.0, "theme": "A", "toward": "B", "mix": 0.5}
    {"t": 24.0, "theme": "A"}

``bpm`` (20..300) changes the tempo of the beat grid and the MIDI clock out from then on; a
followed MIDI clock or Ableton Link session is recorded this way, so its take replays exactly.

Values hold until a later line changes them. ``"histogram": null`` / ``"z": null`` clear a
histogram or z set before.

A line is at most 64 KiB, nests lists and objects at most 8 deep and holds only finite numbers
(no NaN or Infinity): anything else is refused with the file and line.

Live sessions are recorded in the same format (``--record take.mid`` writes ``take.jsonl``, see
livegen/sessions.py) with two additions a script may use too: a first line with a ``"livegen"`` key,
a header naming what else shaped the take, and a last line saying when the take ended (a replay
stops there):

    {"livegen": "session", "version": 1, "model": "charrnn", "seed": 3, "bpm": 120.0, ...}
    {"t": 31.25, "end": true}
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from livegen.checks import check_finite, is_number, parse_json
from livegen.errors import UserError
from livegen.music.conditioning import Controls, key_histogram, range_text
from livegen.sensors.base import ControlSource, clamp_controls

FIELDS = {"t", "pitch", "density", "histogram", "key", "z", "theme", "toward", "mix", "bpm", "end"}
CONTROL_FIELDS = FIELDS - {"t", "end"}
LEAD = 1.0  # s ahead of its time that a change is handed to the engine
MAX_LINE = 64 * 1024  # characters; a script's or session's lines are under 1 KiB


def parse_script(path: str) -> list[dict]:
    """Rows of a control script, validated; UserError names the file and line."""
    return read_script(path)[1]


def read_script(path: str) -> tuple[dict, list[dict]]:
    """(header, rows) of a control script or recorded session; the header is {} when there is none."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"control script {path} does not exist")
    rows: list[dict] = []
    header: dict = {}
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"control script {path} cannot be read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"control script {path} line {number}"
        row = parse_json(line, where, MAX_LINE)
        check_finite(row, where)
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object like {{\"t\": 0.0, \"pitch\": 0.5}}")
        if "livegen" in row and not rows and not header:
            header = row
            continue
        unknown = set(row) - FIELDS
        if unknown:
            raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(FIELDS))})")
        if "t" not in row or not is_number(row["t"]) or row["t"] < 0:
            raise UserError(f"{where}: needs \"t\", seconds from the start (a number >= 0)")
        if rows and row["t"] < rows[-1]["t"]:
            raise UserError(f"{where}: t {row['t']} is earlier than the line before ({rows[-1]['t']})")
        for key in ("pitch", "density"):
            if key in row and not is_number(row[key]):
                raise UserError(f"{where}: {key} must be a number in 0..1")
        if "end" in row and row["end"] is not True:
            raise UserError(f"{where}: end must be true (the take ended at t)")
        for key, size in (("histogram", 12), ("z", None)):
            if key in row and row[key] is not None:
                v = row[key]
                if not isinstance(v, list) or not all(is_number(x) for x in v) or (size and len(v) != size) or not v:
                    raise UserError(f"{where}: {key} must be a list of {size or 'some'} numbers")
        for key in ("theme", "toward"):
            if key in row and not (isinstance(row[key], str) and 0 < len(row[key]) <= 32) and not (
                    key == "toward" and row[key] is None):
                raise UserError(f"{where}: {key} must be a theme name of 1..32 characters, like \"A\"")
        if "mix" in row and not is_number(row["mix"]):
            raise UserError(f"{where}: mix must be a number in {range_text('mix')}")
        if "bpm" in row and row["bpm"] is not None and not is_number(row["bpm"]):
            raise UserError(f"{where}: bpm must be a number in {range_text('bpm')}")
        if "key" in row:
            try:
                key_histogram(str(row["key"]))
            except ValueError as exc:
                raise UserError(f"{where}: {exc}") from None
        rows.append(row)
    if not rows:
        raise UserError(f"control script {path} has no lines")
    return header, rows


class ScriptControls(ControlSource):
    """Replays a script on the performance clock, each change stamped with its script time.

    A script knows its future, so each change is handed to the engine ``LEAD`` seconds before its
    time: the engine applies it at its time whatever the load, and a scripted take with a seed is
    the same take on a busy machine as on a quiet one."""

    name = "script"

    def __init__(self, path: str, base: Controls | None = None):
        super().__init__()
        self.path = path
        self.header, self.rows = read_script(path)
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
