"""``serial:PORT[,BAUD][,csv][,range=LO..HI][,signal=raw|envelope][,channels=N][,rate=HZ]``: text lines.

What a MyoWare on an Arduino, or a Myo bridge sketch, prints: one sample per line, 1-8 numbers
separated by commas, tabs or spaces, each optionally labelled (``emg1:12 emg2:-3``, the Arduino
plotter's format). The number of channels is what two consecutive lines agree on (or
``channels=N``), so a line cut in half when the port opened is not taken for a sample. A line
that is not that (garbage, a boot message, a line cut in half, a number no board reads, nan or
inf) is counted in ``parse_errors`` and skipped, never fatal; the first one is said once.
``range`` declares the raw values' span (default -128..127, a Myo's int8; an Arduino's
analogRead is 0..1023): processing clamps values beyond it. ``signal=envelope`` says the board
already sends a rectified envelope (a MyoWare's SIG pin); ``rate`` the board's sample rate
(200 Hz by default), which the envelope and smoothing windows are timed by.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from livegen.errors import UserError
from livegen.sensors.emg.serial_port import LARGEST, SerialDevice, parse_baud, parse_range, split_spec

USAGE = "serial:/dev/ttyUSB0,115200,csv"
LABEL = re.compile(rb"[A-Za-z_][A-Za-z0-9_.\-]*\s*:\s*")
SEPARATORS = re.compile(rb"[,\t ]+")
MAX_LINE = 512  # bytes; longer without a newline is binary garbage, dropped as it comes
RELEARN = 50  # consecutive well-formed lines of another width: the board was reconfigured, follow it


class CsvLines:
    """Bytes -> samples (n, channels) for lines of numbers; counts what it cannot read and
    hands each such line to ``on_skip`` (once the width is known: a line cut when the port
    opened is no news)."""

    def __init__(self, stats, channels: int | None = None, on_skip: Callable[[bytes], None] | None = None):
        self.stats = stats
        self.on_skip = on_skip
        self.channels = channels  # None until lines agree
        self.fixed = channels is not None
        self._partial = b""
        self._skip_line = False  # after an overlong line: drop up to the next newline
        self._candidate: list[tuple[list[float], bytes]] = []  # consecutive lines of one other width

    def reset(self) -> None:
        self._partial = b""
        self._skip_line = False

    def feed(self, data: bytes) -> np.ndarray:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        rows = []
        for line in lines:
            if self._skip_line:
                self._skip_line = False
                continue
            values = self._numbers(line)
            if values is None:
                if line.strip():
                    self._skip(line)
                continue
            rows += self._accept(values, line)
        if len(self._partial) > MAX_LINE:
            self._skip(self._partial)
            self._partial = b""
            self._skip_line = True  # resume after the next newline
        return np.array(rows, dtype=np.float64).reshape(len(rows), self.channels or 0)

    @staticmethod
    def _numbers(line: bytes) -> list[float] | None:
        text = line.strip()
        if not text or len(text) > MAX_LINE:
            return None
        if b":" in text:
            text = LABEL.sub(b"", text)
        try:
            values = [float(token) for token in SEPARATORS.split(text.strip(b", \t")) if token]
        except ValueError:
            return None
        if not 1 <= len(values) <= 8 or not all(-LARGEST < v < LARGEST for v in values):  # nan fails too
            return None
        return values

    def _skip(self, line: bytes) -> None:
        self.stats.parse_errors += 1
        if self.on_skip is not None and self.channels is not None:
            self.on_skip(line)

    def _accept(self, values: list[float], line: bytes) -> list[list[float]]:
        """The rows this line releases: itself when it has the known width. Otherwise lines of a
        new width are held until enough agree (2 while the width is unknown, RELEARN to change
        it); held lines of a width that loses count as errors."""
        width = len(values)
        if width == self.channels:
            if self._candidate:
                self._drop_candidates()
            return [values]
        if self.fixed:
            self._skip(line)
            return []
        if self._candidate and len(self._candidate[0][0]) != width:
            self._drop_candidates()
        self._candidate.append((values, line))
        if len(self._candidate) >= (2 if self.channels is None else RELEARN):
            rows, self.channels, self._candidate = [row for row, _ in self._candidate], width, []
            return rows
        return []

    def _drop_candidates(self) -> None:
        for _, line in self._candidate:
            self._skip(line)
        self._candidate = []


class SerialCsv(SerialDevice):
    name = "serial"

    def __init__(self, port: str, baud: int = 115200, value_range=(-128.0, 127.0), rectified: bool = False,
                 channels: int | None = None, rate_hz: float = 200.0):
        super().__init__(port, baud)
        self.nominal_rate_hz = rate_hz
        self.value_range = value_range
        self.rectified = rectified
        self.parser = CsvLines(self.stats, channels, self._skipped)
        self.channels = channels or 8

    @classmethod
    def from_spec(cls, args: str) -> "SerialCsv":
        positional, options = split_spec(args, "serial", USAGE)
        port, rest = positional[0], positional[1:]
        baud = 115200
        if rest and rest[0].isdigit():
            baud = parse_baud(rest.pop(0), "serial")
        if rest and rest[0].lower() == "csv":
            rest.pop(0)
        if rest:
            raise UserError(f"serial: {rest[0]!r} is not understood: the format is {USAGE}[,range=LO..HI]"
                            "[,signal=raw|envelope][,channels=N] (only csv text lines)")
        unknown = set(options) - {"range", "signal", "channels", "rate"}
        if unknown:
            raise UserError(f"serial: unknown option {sorted(unknown)[0]!r} (known: range, signal, channels, rate)")
        value_range = parse_range(options["range"], "serial") if "range" in options else (-128.0, 127.0)
        signal = options.get("signal", "raw")
        if signal not in ("raw", "envelope"):
            raise UserError(f"serial: signal={signal} should be raw (EMG as measured) or envelope (already rectified)")
        channels = options.get("channels")
        if channels is not None and not (channels.isdigit() and 1 <= int(channels) <= 8):
            raise UserError(f"serial: channels={channels} should be 1..8")
        try:
            rate = float(options.get("rate", 200.0))
        except ValueError:
            rate = 0.0
        if not 1 <= rate <= 100_000:
            raise UserError(f"serial: rate={options.get('rate')} should be the board's samples per second, like rate=200")
        return cls(port, baud, value_range, signal == "envelope", int(channels) if channels else None, rate)

    def _feed(self, data: bytes) -> np.ndarray:
        samples = self.parser.feed(data)
        if self.parser.channels:
            self.channels = self.parser.channels
        return samples

    def _reset(self) -> None:
        self.parser.reset()

    def _skipped(self, line: bytes) -> None:
        self.notice_once("garbage", f"skipped a line that is not {self.parser.channels} numbers ({line[:40]!r}); "
                         "later ones are only counted (parse_errors). If most lines are skipped, check the baud "
                         "rate and what the board prints")
