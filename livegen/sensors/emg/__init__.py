"""EMG armbands and boards, picked by name with ``--source KIND[:ARGS]`` and imported lazily
(bleak, pyserial load only when their device is used; all of them are ``livegen[emg]``).

    myo[:ADDRESS]                     a Myo over Bluetooth LE (scans for one when no address)
    bled112[:PORT]                    a Myo through the BLED112 USB dongle
    serial:PORT,BAUD,csv[,range=LO..HI][,signal=raw|envelope]   lines of 1-8 numbers
    cyton:PORT[,BAUD]                 OpenBCI Cyton binary frames
    replay:FILE[,speed=X][,loop]      a recording at its own rate
"""
from __future__ import annotations

import importlib

from livegen import extras
from livegen.errors import UserError

# kind -> "module:Class"; the class is an EmgDevice with from_spec(args)
DEVICES = {
    "myo": "livegen.sensors.emg.myo_ble:MyoBle",
    "bled112": "livegen.sensors.emg.bled112:Bled112Myo",
    "serial": "livegen.sensors.emg.serial_csv:SerialCsv",
    "cyton": "livegen.sensors.emg.cyton:Cyton",
    "replay": "livegen.sensors.emg.replay:Replay",
}
# kind -> the libraries of livegen[emg] it needs besides SciPy, which filters blocks of samples for all
DEVICE_LIBRARIES = {"myo": ("bleak",), "bled112": ("serial",), "serial": ("serial",), "cyton": ("serial",),
                    "replay": ()}


def open_device(spec: str):
    """The device a ``KIND[:ARGS]`` spec names (not started yet)."""
    kind, _, args = spec.strip().partition(":")
    if kind not in DEVICES:
        raise UserError(f"unknown EMG source {spec!r}: use one of {', '.join(DEVICES)} "
                        "(e.g. myo, serial:/dev/ttyUSB0,115200,csv, replay:recording.csv)")
    extras.require("emg", f"EMG source {kind!r}", "scipy", *DEVICE_LIBRARIES[kind])
    module, _, cls = DEVICES[kind].partition(":")
    try:
        device_class = getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("livegen"):
            raise UserError(f"EMG source {kind!r} is not in this livegen build ({exc.name} is missing)") from None
        raise UserError(f"EMG source {kind!r} needs the Python package {exc.name!r}: pip install it") from None
    return device_class.from_spec(args)
