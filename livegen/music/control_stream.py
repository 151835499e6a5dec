"""The control stream: timed control values, one JSON object a line. Control scripts
(``--controls script:FILE.jsonl``) and recorded sessions (``--record take.mid`` writes
``take.jsonl``) are both in it; this module reads, checks and writes its lines.

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
``temperature`` (0.2..2) is the Char-RNN's sampling temperature from then on (``null``: the
engine's own setting again); the DCRNN does not sample and ignores it.

Values hold until a later line changes them. ``"histogram": null`` / ``"z": null`` clear a
histogram or z set before.

A line is at most 64 KiB, nests lists and objects at most 8 deep and holds only finite numbers
(no NaN or Infinity): anything else is refused with the file and line.

Recorded sessions (livegen/sessions.py) add two things a script may use too: a first line with a
``"livegen"`` key, a header naming what else shaped the take, and a last line saying when the
take ended (a replay stops there):

    {"livegen": "session", "version": 2, "model": "charrnn", "seed": 3, "bpm": 120.0, ...}
    {"t": 31.25, "end": true}
"""
from __future__ import annotations

import json
from pathlib import Path

from livegen.checks import check_finite, is_number, parse_json
from livegen.errors import UserError
from livegen.music.conditioning import Controls, key_histogram, range_text

FIELDS = {"t", "pitch", "density", "histogram", "key", "z", "theme", "toward", "mix", "bpm", "temperature", "end",
          "player"}
CONTROL_FIELDS = FIELDS - {"t", "end", "player"}
THEME_KEYS = ("theme", "toward", "mix")
MAX_LINE = 64 * 1024  # characters; a script's or session's lines are under 1 KiB


def parse_line(line: str, where: str) -> dict:
    """One line as a JSON object within the size, nesting and finite-number limits."""
    row = parse_json(line, where, MAX_LINE)
    check_finite(row, where)
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object like {{\"t\": 0.0, \"pitch\": 0.5}}")
    return row


def check_row(row: dict, where: str, before: dict | None) -> None:
    """A control line's keys and values; ``before`` is the line before it (times never go back)."""
    unknown = set(row) - FIELDS
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(FIELDS))})")
    if "t" not in row or not is_number(row["t"]) or row["t"] < 0:
        raise UserError(f"{where}: needs \"t\", seconds from the start (a number >= 0)")
    if before is not None and row["t"] < before["t"]:
        raise UserError(f"{where}: t {row['t']} is earlier than the line before ({before['t']})")
    for key in ("pitch", "density"):
        if key in row and not is_number(row[key]):
            raise UserError(f"{where}: {key} must be a number in 0..1")
    if "player" in row and not _channel_message(row["player"]):
        raise UserError(f"{where}: player must be a MIDI channel message as a list of bytes, like [144, 60, 100]")
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
    for key in ("bpm", "temperature"):
        if key in row and row[key] is not None and not is_number(row[key]):
            raise UserError(f"{where}: {key} must be a number in {range_text(key)}")
    if "key" in row:
        try:
            key_histogram(str(row["key"]))
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None


def _channel_message(value) -> bool:
    """A player's message as a session keeps it: status 0x80..0xEF and its data bytes."""
    return (isinstance(value, list) and 2 <= len(value) <= 3 and all(isinstance(b, int) and not isinstance(b, bool)
                                                                     for b in value)
            and 0x80 <= value[0] <= 0xEF and all(0 <= b < 0x80 for b in value[1:]))


def read_stream(path: str) -> tuple[dict, list[dict]]:
    """(header, rows) of a control script or recorded session; the header is {} when there is none.
    UserError names the file and line."""
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
        row = parse_line(line, where)
        if "livegen" in row and not rows and not header:
            header = row
            continue
        check_row(row, where, rows[-1] if rows else None)
        rows.append(row)
    if not rows:
        raise UserError(f"control script {path} has no lines")
    return header, rows


def changed_row(controls: Controls, previous: Controls | None) -> dict:
    """The fields of a line that take ``previous`` to ``controls`` (all of them when there is none)."""
    row: dict = {}
    for key in ("pitch", "density", "histogram", "z", "bpm", "temperature"):
        value = getattr(controls, key)
        if previous is None or value != getattr(previous, key):
            if value is not None or previous is not None:
                row[key] = list(value) if isinstance(value, tuple) else value
    if previous is None or any(getattr(controls, k) != getattr(previous, k) for k in THEME_KEYS):
        row.update({k: getattr(controls, k) for k in THEME_KEYS})  # "theme" resets the others: give all
    return row


def format_line(row: dict) -> str:
    """A line of the stream, newline included."""
    return json.dumps(row, separators=(", ", ": ")) + "\n"
