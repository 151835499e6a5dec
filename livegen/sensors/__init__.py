"""Control sources, picked by name and imported lazily (OpenCV, bleak... load only when used).

``--controls KIND[:ARGS]`` names one: ``fixed``, ``script:FILE.jsonl``, ...
"""
from __future__ import annotations

import importlib

from livegen.errors import UserError
from livegen.music.conditioning import Controls

# kind -> "module:Class"; the class has from_spec(args, initial, preset) -> ControlSource
SOURCES = {
    "fixed": "livegen.sensors.base:FixedControls",
    "script": "livegen.sensors.script:ScriptControls",
    "replay": "livegen.sessions:ReplayControls",
    "camera": "livegen.sensors.camera:CameraControls",
    "emg": "livegen.sensors.emg.source:EmgControls",  # emg[:DEVICE]: the armband alone (z); see also perform --emg
}


def open_source(spec: str, initial: Controls, preset: str | None = None):
    kind, _, args = spec.partition(":")
    if kind not in SOURCES:
        raise UserError(f"unknown control source {spec!r}: use one of {', '.join(sorted(SOURCES))}")
    module, _, cls = SOURCES[kind].partition(":")
    return getattr(importlib.import_module(module), cls).from_spec(args, initial, preset)
