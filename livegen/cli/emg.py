"""``livegen emg`` (live levels of an armband or board) and ``livegen calibrate emg``."""
from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from livegen.errors import UserError
from livegen.messages import say

if TYPE_CHECKING:  # the annotations only: the command line starts without numpy (see livegen/cli/__init__.py)
    import numpy as np

BARS = " ▁▂▃▄▅▆▇█"
SOURCE_HELP = ("myo[:ADDRESS] (BLE), bled112[:PORT], serial:PORT,BAUD,csv[,range=LO..HI], cyton:PORT, "
               "replay:FILE[,speed=X] (default: the preset's emg.source)")


def add_commands(sub) -> None:
    s = sub.add_parser("emg", help="read an EMG armband or board and show the muscle levels live")
    s.add_argument("--source", help=SOURCE_HELP)
    s.add_argument("--preset", help="preset name or .toml path for the [emg] settings")
    s.add_argument("--user", help="calibration profile to use (default: the preset's emg.user)")
    s.add_argument("--json", action="store_true", help='print one object at the end: {"samples", "rate_hz", '
                   '"parse_errors", "dropped", "resyncs", "reconnects", ...}')
    s.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C, or a replay's end)")
    s.set_defaults(func=cmd_emg)


def add_calibrate_options(s) -> None:
    """The ``calibrate emg`` options, on the ``calibrate`` parser shared with the camera."""
    s.add_argument("--user", help="EMG: profile to write (default: the preset's emg.user)")
    s.add_argument("--rest-seconds", type=float, default=5.0, help="EMG: seconds of a relaxed arm")
    s.add_argument("--max-seconds", type=float, default=5.0, help="EMG: seconds of the strongest contraction")
    s.add_argument("--gesture", action="append", default=[], metavar="NAME=THEME",
                   help="EMG: also learn a gesture that recalls a DCRNN theme when held (repeatable), e.g. fist=B")
    s.add_argument("--gesture-seconds", type=float, default=4.0, help="EMG: seconds per gesture")
    s.add_argument("--settle", type=float, default=1.0, help="EMG: seconds left out at the start of each phase")
    s.add_argument("--no-wait", action="store_true", help="EMG: go from phase to phase without waiting for "
                   "Enter (the default when stdin is not a terminal)")


def _settings(args):
    from livegen import presets  # loads numpy: only when the command runs
    from livegen.sensors.emg.processing import profile_path  # loads numpy: only when the command runs

    settings = presets.load(args.preset).emg
    if args.user:
        profile_path(args.user)  # a bad name is an error before anything opens
        settings = dataclasses.replace(settings, user=args.user)
    return settings


# --- livegen emg ----------------------------------------------------------------------------------

def cmd_emg(args) -> int:
    from livegen.sensors.emg import open_device  # loads numpy: only when the command runs
    from livegen.sensors.emg.source import EmgControls, require_device_alive  # loads numpy: only when the command runs

    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be a positive number of seconds")
    settings = _settings(args)
    spec = args.source or settings.source
    source = EmgControls.for_device(open_device(spec), settings)
    if not source.calibrated and not args.json:
        say(f"no calibration for user {settings.user!r} yet: levels use the device's nominal range "
            "(run `livegen calibrate emg`)")
    source.start(lambda controls, t: None, time.monotonic)
    started = time.monotonic()
    meter = not args.json
    try:
        while args.duration is None or time.monotonic() - started < args.duration:
            time.sleep(0.1)
            require_device_alive(source)
            if source.device.state == "ended":
                break
            if meter:
                print("\r" + meter_line(source), end="", flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the run; the summary still comes
    finally:
        source.stop()
        if meter:
            print()
    result = summary(source, spec)
    if not result["samples"]:
        say(f"no samples arrived from {spec}: is the device switched on and streaming?")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['samples']} samples at {result['rate_hz']} Hz; parse errors {result['parse_errors']}, "
              f"dropped {result['dropped']}, resyncs {result['resyncs']}, reconnects {result['reconnects']}")
    return 0


def meter_line(source) -> str:
    view = source.view()
    bars = "".join(BARS[min(int(v * (len(BARS) - 1) + 0.5), len(BARS) - 1)] for v in view.levels)
    z = " ".join(f"{v:+.1f}" for v in view.z)
    rate = source.rate.rate_hz
    gesture = f" {view.gesture}" if view.gesture else ""
    return (f"{view.state:<12} {rate or 0:5.0f} Hz |{bars}| z {z}{gesture}  "
            f"err {view.stats['parse_errors']} drop {view.stats['dropped']} re {view.stats['reconnects']}")


def summary(source, spec: str) -> dict:
    import numpy as np  # only when the command runs: see livegen/cli/__init__.py

    stats = source.counts()
    rate = source.rate.rate_hz
    process = np.asarray(source.process_seconds) * 1e6
    return {"source": spec, **stats, "rate_hz": None if rate is None else round(rate, 2),
            "seconds": round(source.rate.seconds, 3), "state": source.device.state,
            "calibrated": source.calibrated, "levels": [round(v, 4) for v in source.processor.levels],
            "process_us_p50": round(float(np.median(process)), 2) if len(process) else None}


# --- livegen calibrate emg ------------------------------------------------------------------------

class EnvelopeRecorder:
    """Envelopes of every sample a device sends (computed in its reader thread)."""

    def __init__(self, processor):
        self.processor = processor
        self._blocks: list[np.ndarray] = []
        self._count = 0
        self._more = threading.Condition()

    def on_samples(self, block: np.ndarray, arrival: float) -> None:
        envelopes = self.processor.envelopes(block)
        with self._more:
            self._blocks.append(envelopes)
            self._count += len(envelopes)
            self._more.notify_all()

    def record(self, device, settle: float, seconds: float) -> np.ndarray:
        """Envelopes of the ``seconds`` of samples after ``settle`` s, counted in samples at the
        device's rate (a replay played faster calibrates faster)."""
        import numpy as np  # only when the command runs: see livegen/cli/__init__.py

        rate = device.nominal_rate_hz
        with self._more:
            begin = self._count + int(settle * rate)
            end = begin + max(int(seconds * rate), 1)
        deadline = time.monotonic() + 5.0 + 3.0 * (settle + seconds)
        with self._more:
            while self._count < end:
                if device.error and device.state == "lost":
                    raise UserError(device.error)
                if device.state == "ended":
                    raise UserError(f"the recording ended during calibration: it needs "
                                    f"{settle + seconds:g} s more of samples")
                if time.monotonic() > deadline:
                    raise UserError(f"only {max(self._count - begin, 0)} of {end - begin} samples arrived in time: "
                                    "is the armband on, streaming and in range?")
                self._more.wait(0.1)
            return np.concatenate(self._blocks)[begin:end]


def cmd_calibrate(args) -> int:
    from livegen.sensors.emg import open_device  # loads numpy: only when the command runs
    from livegen.sensors.emg.processing import (  # loads numpy: only when the command runs
        Calibration, Mapping, Processor, calibrate_from, profile_path)

    for name in ("rest_seconds", "max_seconds", "gesture_seconds"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if args.settle < 0:
        raise UserError("--settle must be >= 0")
    gestures = _gestures(args.gesture)
    settings = _settings(args)
    path = Path(args.save).expanduser() if args.save else profile_path(settings.user)
    spec = args.source or settings.source
    device = open_device(spec)
    mapping = Mapping.from_preset(settings)
    processor = Processor.for_device(device, mapping,
                                     Calibration.default(device.value_range, device.channels, device.rectified))
    recorder = EnvelopeRecorder(processor)
    interactive = sys.stdin.isatty() and not args.no_wait
    phases = [("rest", "relax your arm completely", args.rest_seconds),
              ("max", "make your strongest contraction (a tight fist, all muscles)", args.max_seconds)]
    phases += [(name, f"hold the gesture '{name}'", args.gesture_seconds) for name in gestures]
    device.start(recorder.on_samples)
    recorded = {}
    try:
        for name, what, seconds in phases:
            if interactive:
                input(f"{what} and press Enter ({seconds:g} s) ")
            else:
                say(f"{what}: {seconds:g} s after {args.settle:g} s ...")
            recorded[name] = recorder.record(device, args.settle, seconds)
    except (KeyboardInterrupt, EOFError):
        raise UserError("calibration cancelled: nothing saved") from None
    finally:
        device.stop()
    calibration, weak = calibrate_from(recorded["rest"], recorded["max"], spec, mapping,
                                       {name: (recorded[name], theme) for name, theme in gestures.items()})
    calibration.save(path)
    rest = ", ".join(f"{v:.3g}" for v in calibration.rest)
    top = ", ".join(f"{v:.3g}" for v in calibration.max)
    print(f"saved to {path}: rest [{rest}], max [{top}]"
          + (f"; gestures {', '.join(f'{n} -> theme {t}' for n, t in gestures.items())}" if gestures else "")
          + f"; play with: livegen perform --model dcrnn --emg {spec}")
    if weak:
        say(f"warning: channel(s) {', '.join(map(str, weak))} hardly rose above rest: check the armband's "
            "fit, or calibrate again with a stronger contraction")
    return 0


def _gestures(items: list[str]) -> dict[str, str]:
    gestures: dict[str, str] = {}
    for item in items:
        name, eq, theme = (part.strip() for part in item.partition("="))
        if not eq or not name or not theme or name in ("rest", "max") or not name.replace("_", "").replace("-", "").isalnum():
            raise UserError(f"--gesture {item}: expected NAME=THEME like fist=B (name: letters, digits, - or _; "
                            "not rest or max)")
        if name in gestures:
            raise UserError(f"--gesture {name} is given twice")
        gestures[name] = theme
    return gestures
