"""Checks every reader of outside input shares (presets, control scripts and sessions, checkpoints,
OSC and its addresses), so that hostile input ends in one UserError line, never in a traceback or
a NaN steering the engine."""
from __future__ import annotations

import json
import math

from livegen.errors import UserError

MAX_DEPTH = 8  # lists and objects inside each other; livegen's own files need 4


def is_number(x) -> bool:
    """A finite int or float (not a bool): an integer too large for a float is not one either."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def too_deep(what: str) -> UserError:
    """The one error for input nested past MAX_DEPTH, or past what a parser's recursion allows."""
    return UserError(f"{what}: nested deeper than {MAX_DEPTH} levels")


def _non_finite_key(value, key: str = "") -> str | None:
    """The dotted key (``a.b[2]``) of the first NaN, infinity or float-overflowing integer in
    ``value`` and the lists and dicts inside it; None when every number is finite."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if is_number(value) else key or "the value"
    if isinstance(value, dict):
        children = ((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        children = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for child_key, child in children:
        found = _non_finite_key(child, child_key)
        if found is not None:
            return found
    return None


def check_nesting(value, what: str) -> None:
    """UserError starting with ``what`` when lists and dicts in a parsed file nest deeper than
    MAX_DEPTH."""
    level, depth = [value], 0
    while level:  # level by level: a deep value cannot exhaust the stack here
        containers = [v for v in level if isinstance(v, (dict, list))]
        if containers:
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep(what)
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]


def check_finite(value, what: str, key: str = "") -> None:
    """UserError starting with ``what`` and naming the key (under ``key``) of the first number in
    ``value`` that is not finite: NaN and infinity must never reach the engine as a setting."""
    bad = _non_finite_key(value, key)
    if bad is not None:
        raise UserError(f"{what}: {bad} must be a finite number")


def parse_json(text: str, what: str, max_chars: int):
    """A JSON value from outside, at most ``max_chars`` long and MAX_DEPTH deep; otherwise one
    UserError starting with ``what`` (a file and line)."""
    if len(text) > max_chars:
        raise UserError(f"{what}: longer than {max_chars // 1024} KiB")
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep(what) from None
    except ValueError as exc:  # not JSON, or an integer of thousands of digits
        raise UserError(f"{what}: not JSON ({getattr(exc, 'msg', exc)})") from None
    check_nesting(value, what)
    return value


def parse_target(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or just PORT, meaning 127.0.0.1) for ``--osc-out``: here, below the presets and
    OSC that both check it."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 1 <= number <= 65535:
        raise UserError(f"--osc-out {text!r} is not HOST:PORT, e.g. 127.0.0.1:9001")
    return host or "127.0.0.1", number
