"""``--layer MODEL[,channel=N][,program=P][,volume=V][,port=NAME][,temperature=T]``: one more voice.

The layer spec is parsed here (pure text, no ports or models touched) so the command line and its
tests share one table of keys, each with its range.
"""
from __future__ import annotations

from dataclasses import dataclass

from livegen.errors import UserError

# key: (type, low, high); checked in this order, named in every error
LAYER_KEYS = {"channel": (int, 1, 16), "program": (int, 0, 127), "volume": (int, 0, 127),
              "temperature": (float, 0.05, 5.0), "port": (str, None, None)}


@dataclass(frozen=True)
class LayerSpec:
    model: str  # charrnn, dcrnn or a checkpoint path
    channel: int | None = None  # 1..16; None: the next channel no other layer uses
    program: int | None = None
    volume: int | None = None
    temperature: float | None = None
    port: str | None = None  # None: the main layer's output


def parse_layer(text: str) -> LayerSpec:
    """``dcrnn,channel=2,program=33,volume=90`` -> LayerSpec; a bad key or value is a one-line error."""
    model, *pairs = [part.strip() for part in text.split(",")]
    if not model or "=" in model:
        raise UserError(f"--layer {text!r}: start with the model (charrnn, dcrnn or a checkpoint), "
                        "e.g. --layer dcrnn,channel=2")
    values: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in LAYER_KEYS:
            raise UserError(f"--layer {text!r}: {pair!r} is not KEY=VALUE with KEY one of {', '.join(LAYER_KEYS)}")
        try:
            values[key] = LAYER_KEYS[key][0](value)
        except ValueError:
            raise UserError(f"--layer {text!r}: {key} must be a number, not {value!r}") from None
    return check_layer(LayerSpec(model, **values), f"--layer {text!r}: ")


def check_layer(spec: LayerSpec, where: str) -> LayerSpec:
    """``spec`` if every value it sets is in its key's range; else an error naming the key after ``where``."""
    for key, (_, low, high) in LAYER_KEYS.items():
        value = getattr(spec, key)
        if low is not None and value is not None and not low <= value <= high:
            raise UserError(f"{where}{key} must be {low}..{high}")
    return spec


def free_channels(used: list[int]) -> list[int]:
    """Channels (1..16) for layers that did not name one: unused ones, leaving out 10 (GM drums)."""
    return [c for c in range(1, 17) if c not in used and c != 10]
