"""MIDI-learn: a controller's CC, note or pitch bend bound to a control or an action.

A ``Binding`` names the messages it hears (``source`` cc | note | bend, a channel or any, the CC
or note number, a port or any) and what they play: a control (``pitch``, ``density``,
``temperature``, ``z1`` .. ``z8``), a theme (``theme:NAME``, picked by a press) or an action (``ACTIONS``, done on a press).
A control's value is the message's level (CC value, velocity, bend) spread over the binding's
``range`` (the control's whole range when empty), turned round by ``invert``. Bindings are
checked strictly where they come from (a preset's ``[[midi_learn]]`` tables): one line naming
the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from livegen.errors import UserError
from livegen.music.conditioning import CONTROL_RANGES, clamp_control

SOURCES = ("cc", "note", "bend")
Z_DIMS = 8  # z1 .. z8: the DCRNN's played z dims the panel draws
CONTROL_TARGETS = ("pitch", "density", "temperature", *(f"z{i}" for i in range(1, Z_DIMS + 1)))
ACTIONS = ("play", "panic", "record", "next_preset", "previous_preset")  # play and record toggle
THEME_PREFIX = "theme:"
MAX_THEME = 32
STATUS = {"note": (0x80, 0x90), "cc": (0xB0,), "bend": (0xE0,)}
PRESS = 0.5  # a level at or above this is a press (a note struck, a CC or pedal past its middle)


def target_text() -> str:
    return f"{', '.join(CONTROL_TARGETS)}, {THEME_PREFIX}NAME or {', '.join(ACTIONS)}"


def check_target(target: str, where: str = "target") -> str:
    """``target`` when it is one a binding may play; UserError naming ``where`` otherwise."""
    if target in CONTROL_TARGETS or target in ACTIONS:
        return target
    if target.startswith(THEME_PREFIX) and 1 <= len(target) - len(THEME_PREFIX) <= MAX_THEME:
        return target
    raise UserError(f"{where} {target!r:.60} is not a MIDI-learn target: use {target_text()}")


def control_key(target: str) -> str:
    """The ``CONTROL_RANGES`` key a control target plays (z1..z8: z)."""
    return "z" if target.startswith("z") else target


@dataclass(frozen=True)
class Binding:
    source: str  # cc | note | bend
    number: int = 0  # the CC or note number 0..127 (bend: 0)
    target: str = "density"
    channel: int = 0  # 1..16; 0 = any
    port: str = ""  # the input port it comes from; "" = any the take listens to
    range: list = field(default_factory=list)  # [low, high] the control spans; [] = its whole range
    invert: bool = False

    def hears(self, port: str, msg: list[int]) -> bool:
        """Whether ``msg`` (a well-formed channel message from ``port``) is this binding's."""
        if msg[0] & 0xF0 not in STATUS[self.source]:
            return False
        if self.channel and msg[0] & 0x0F != self.channel - 1:
            return False
        if self.port and port != self.port:
            return False
        return self.source == "bend" or msg[1] == self.number

    def level(self, msg: list[int]) -> float:
        """The message's level 0..1: a CC's value, a note's velocity (0 released), a bend's position."""
        kind = msg[0] & 0xF0
        if kind == 0xE0:
            return (msg[1] | msg[2] << 7) / 16383
        if kind == 0x80:
            return 0.0
        return msg[2] / 127

    def value(self, msg: list[int]) -> float:
        """The control's value the message asks for, clamped into the control's range."""
        fraction = self.level(msg)
        if self.invert:
            fraction = 1.0 - fraction
        key = control_key(self.target)
        low, high = self.range or CONTROL_RANGES[key]
        return clamp_control(key, low + (high - low) * fraction)

    def describe(self) -> str:
        what = {"cc": f"CC {self.number}", "note": f"note {self.number}", "bend": "pitch bend"}[self.source]
        channel = f"channel {self.channel}" if self.channel else "any channel"
        port = f" on {self.port}" if self.port else ""
        return f"{what}, {channel}{port} -> {self.target}"

    def as_table(self) -> dict:
        """What a preset's ``[[midi_learn]]`` table holds (the optional keys only when set)."""
        table = {"source": self.source, "number": self.number, "channel": self.channel, "target": self.target}
        if self.port:
            table["port"] = self.port
        if self.range:
            table["range"] = list(self.range)
        if self.invert:
            table["invert"] = True
        return table


KEYS = {"source": str, "number": int, "target": str, "channel": int, "port": str, "range": list, "invert": bool}


def check_binding(table, where: str = "midi_learn") -> Binding:
    """A binding from a table of keys (a preset's, the command line's): an unknown key, a wrong
    type, a number out of range or not finite is one UserError naming the key."""
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table of binding keys ({', '.join(KEYS)})")
    for key, value in table.items():
        if key not in KEYS:
            raise UserError(f"{where}.{key} is unknown (known: {', '.join(KEYS)})")
        if not isinstance(value, KEYS[key]) or (KEYS[key] is int and isinstance(value, bool)):
            raise UserError(f"{where}.{key} must be {KEYS[key].__name__}, not {type(value).__name__}")
    for key in ("source", "target"):
        if key not in table:
            raise UserError(f"{where}.{key} is missing")
    if table["source"] not in SOURCES:
        raise UserError(f"{where}.source {table['source']!r:.40} is not one of {', '.join(SOURCES)}")
    check_target(table["target"], f"{where}.target")
    if not 0 <= table.get("channel", 0) <= 16:
        raise UserError(f"{where}.channel must be 1..16 (0 = any)")
    if not 0 <= table.get("number", 0) <= (0 if table["source"] == "bend" else 127):
        raise UserError(f"{where}.number must be 0..127 (a pitch bend's: 0)")
    span = table.get("range", [])
    if span:
        if table["target"] not in CONTROL_TARGETS:
            raise UserError(f"{where}.range is for a control ({', '.join(CONTROL_TARGETS)}), not {table['target']}")
        lo, hi = CONTROL_RANGES[control_key(table["target"])]
        if not (len(span) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                       and math.isfinite(x) and lo <= x <= hi for x in span)):
            raise UserError(f"{where}.range must be [low, high], finite numbers in {lo:g}..{hi:g}")
        table = dict(table, range=[float(x) for x in span])
    return Binding(**table)
