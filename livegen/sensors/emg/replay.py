"""``replay:FILE[,speed=X][,loop][,rate=HZ][,range=LO..HI][,signal=raw|envelope]``: a recording
played at its own rate, through the same processing as a live armband.

Formats (comma or whitespace separated numbers, one sample per line):
- myo-readings: ``e1,...,e8,label`` (int8 EMG at 200 Hz, a gesture label per line);
- Neuro-Breakout: 8 EMG columns, a paddle position, a time stamp in ns (the rate is taken from
  the stamps; a file with no negative value is a Myo mode-0x01 envelope);
- 1-8 columns of plain samples (``rate=`` gives the rate, 200 Hz if not).
Samples are released on absolute deadlines (start + i / rate / speed), so a busy machine
delays them but never slows the stream down; ``loop`` starts over at the end.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen.errors import UserError
from livegen.sensors.emg.device import EmgDevice
from livegen.sensors.emg.serial_port import parse_range, split_spec

USAGE = "replay:recording.csv"
SEPARATORS = re.compile(r"[,\t ]+")


@dataclass
class Recording:
    samples: np.ndarray  # (n, channels) raw units
    rate_hz: float
    labels: np.ndarray | None = None  # myo-readings: the gesture label per sample
    rectified: bool = False
    value_range: tuple[float, float] = (-128.0, 127.0)
    targets: np.ndarray | None = None  # Neuro-Breakout: the paddle's x position per sample (pixels)


def load_recording(path: str | Path, rate_hz: float | None = None) -> Recording:
    p = Path(path)
    if p.is_dir():
        raise UserError(f"EMG recording {path} is a folder: name one recording file in it, "
                        f"like replay:{p / 'take.csv'}")
    if not p.is_file():
        raise UserError(f"EMG recording {path} does not exist" if not p.exists() else
                        f"EMG recording {path} is not a regular file: name a recorded .csv/.txt file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the EMG recording {path}: {exc}") from None
    data = np.array(_rows(text, path), dtype=np.float64)
    if len(data) < 2:
        raise UserError(f"{path}: not an EMG recording: it needs at least 2 lines of samples (rows of 1-10 numbers)")
    columns = data.shape[1]
    labels = targets = None
    rate = 200.0
    if columns == 10:  # Neuro-Breakout: 8 EMG, paddle x, time in ns stamped in bunches
        span = (data[-1, 9] - data[0, 9]) / 1e9
        if span > 0:
            rate = (len(data) - 1) / span
        samples, targets = data[:, :8], data[:, 8]
    elif columns == 9 and np.all(data[:, 8] == np.round(data[:, 8])) and data[:, 8].min() >= 0:
        samples, labels = data[:, :8], data[:, 8].astype(int)
    elif columns <= 8:
        samples = data
    else:
        raise UserError(f"{path}: {columns} numbers per line; expected 1-8 channels, e1..e8,label "
                        "(myo-readings) or 10 columns (Neuro-Breakout)")
    rectified = bool(samples.min() >= 0)  # raw EMG always swings negative; an envelope never does
    low, high = float(samples.min()), float(samples.max())
    value_range = (-128.0, 127.0) if low >= -128 and high <= 128 and not rectified else (
        (0.0, max(high, 1.0)) if rectified else (low, high))
    return Recording(samples, rate_hz or rate, labels, rectified, value_range, targets)


def _rows(text: str, path) -> list[list[float]]:
    """Every sample line as numbers; the first line may be a header. A line that is not numbers,
    or has another count of them than the first sample (a line cut off or run together), is a
    ``UserError`` naming its line number (blank lines count, as in an editor)."""
    rows: list[list[float]] = []
    first = 0  # line number of the first sample
    header = True  # the next non-blank line may be a header
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        values = _values(line)
        if not values:
            if header:
                header = False
                continue
            raise UserError(f"{path}: line {number} is not numbers ({line.strip()[:40]!r}): every line after a "
                            "header is one sample, numbers separated by commas, tabs or spaces; fix or delete it")
        if not all(math.isfinite(v) for v in values):
            raise UserError(f"{path}: line {number} holds a value that is not a finite number "
                            f"({line.strip()[:40]!r}): fix or delete that line")
        header = False
        if not rows:
            first = number
        elif len(values) != len(rows[0]):
            raise UserError(f"{path}: line {number} has {len(values)} numbers but line {first} has {len(rows[0])}: "
                            "every sample line needs the same columns (a line cut off or run together?); "
                            "fix or delete that line")
        rows.append(values)
    return rows


def _values(line: str) -> list[float] | None:
    """The numbers on a line (None when one is not a number, [] when there are none)."""
    try:
        return [float(v) for v in SEPARATORS.split(line.strip(" ,\t\r")) if v]
    except ValueError:
        return None


class Replay(EmgDevice):
    name = "replay"

    def __init__(self, recording: Recording, speed: float = 1.0, loop: bool = False, path: str = ""):
        super().__init__()
        self.recording, self.speed, self.loop, self.path = recording, speed, loop, path
        self.channels = recording.samples.shape[1]
        self.nominal_rate_hz = recording.rate_hz
        self.value_range = recording.value_range
        self.rectified = recording.rectified
        self.position = 0  # index of the next sample to release
        self._start: float | None = None  # monotonic time of the first release
        self._released = 0  # samples released since then (counting on when it loops)

    @classmethod
    def from_spec(cls, args: str) -> "Replay":
        positional, options = split_spec(args, "replay", USAGE, flags=("loop",))
        if len(positional) != 1:
            raise UserError(f"replay: name one recording file, like {USAGE}[,speed=2][,loop]")
        unknown = set(options) - {"speed", "loop", "rate", "range", "signal"}
        if unknown:
            raise UserError(f"replay: unknown option {sorted(unknown)[0]!r} (known: speed, loop, rate, range, signal)")
        loop = "loop" in options
        if options.get("loop", "") not in ("", "true", "1", "yes"):
            raise UserError("replay: loop takes no value (or loop=true)")
        try:
            speed = float(options.get("speed", 1.0))
            rate = float(options["rate"]) if "rate" in options else None
        except ValueError:
            raise UserError("replay: speed and rate are numbers, like speed=2 or rate=200") from None
        if not 0.01 <= speed <= 1000 or (rate is not None and not 1 <= rate <= 100_000):
            raise UserError("replay: speed must be 0.01..1000 and rate 1..100000 Hz")
        recording = load_recording(positional[0], rate)
        if "range" in options:
            recording.value_range = parse_range(options["range"], "replay")
        signal = options.get("signal")
        if signal is not None:
            if signal not in ("raw", "envelope"):
                raise UserError(f"replay: signal={signal} should be raw or envelope")
            recording.rectified = signal == "envelope"
        return cls(recording, speed, loop, positional[0])

    def _step(self) -> bool:
        """Release the samples due by now, then wait for the next one."""
        samples = self.recording.samples
        period = 1.0 / (self.recording.rate_hz * self.speed)
        if self._start is None:
            self._set_state("connected")
            self._start = time.monotonic()
        due = min(int((time.monotonic() - self._start) / period) + 1, self._released + len(samples))
        while self._released < due:
            take = min(due - self._released, len(samples) - self.position)
            self.emit(samples[self.position:self.position + take])
            self._released += take
            self.position += take
            if self.position == len(samples):
                if not self.loop:
                    self._set_state("ended", "the recording ended")
                    return True
                self.position = 0
        wait = self._start + self._released * period - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
        return False
