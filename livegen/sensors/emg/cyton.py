"""``cyton:PORT[,BAUD][,gain=24][,range=LO..HI]``: an OpenBCI Cyton board's binary stream.

A frame is 33 bytes: 0xA0, a sample number (wraps at 256), 8 channels of 24-bit big-endian
signed ADS1299 counts, 6 bytes of accelerometer/aux data, and a footer 0xC0-0xC6. Channels are
converted to microvolts (4.5 V reference, ``gain`` as set on the board, 24 by default).

After garbage (a boot banner, a glitch) the parser hunts for the next 0xA0 whose footer is in
place and whose successor starts with 0xA0 too, so a stray 0xA0 in the garbage cannot lock it
onto the wrong phase; each hunt counts one ``resyncs`` (and one ``parse_errors``). Gaps in the
sample numbers count as ``dropped``.
"""
from __future__ import annotations

import numpy as np

from livegen.errors import UserError
from livegen.sensors.emg.serial_port import SerialDevice, parse_baud, parse_range, split_spec

FRAME = 33
HEADER = 0xA0
FOOTERS = range(0xC0, 0xC7)
USAGE = "cyton:/dev/ttyUSB0"
START_STREAM, STOP_STREAM = b"b", b"s"


def counts_to_microvolts(gain: float) -> float:
    return 4.5 / gain / (2 ** 23 - 1) * 1e6


class CytonFrames:
    """Bytes -> channel counts (n, 8) as int32, with the counters of ``stats``."""

    def __init__(self, stats):
        self.stats = stats
        self._buffer = bytearray()
        self._locked = False  # the last frame was good and the next starts right after it
        self._hunting = False
        self._last_number: int | None = None

    def reset(self) -> None:
        self._buffer.clear()
        self._locked = False
        self._hunting = False
        self._last_number = None

    def feed(self, data: bytes) -> np.ndarray:
        buf = self._buffer
        buf += data
        rows: list[list[int]] = []  # the counts of the frames decoded
        i, n = 0, len(buf)
        while n - i >= FRAME:
            if buf[i] == HEADER and buf[i + FRAME - 1] in FOOTERS:
                if not self._locked and n - i == FRAME:
                    break  # wait for the next byte: it must start a frame too before we trust this one
                if self._locked or buf[i + FRAME] == HEADER:
                    # 8 signed 24-bit big-endian counts, as plain ints: for one frame numpy calls cost more
                    rows.append([int.from_bytes(buf[k:k + 3], "big", signed=True) for k in range(i + 2, i + 26, 3)])
                    self._count_gap(buf[i + 1])
                    self._locked, self._hunting = True, False
                    i += FRAME
                    continue
            if not self._hunting:  # a broken frame or garbage: hunt for the next header
                self._hunting = True
                self.stats.resyncs += 1
                self.stats.parse_errors += 1
            self._locked = False
            found = buf.find(HEADER, i + 1)
            i = n if found < 0 else found
        del buf[:i]
        return np.array(rows, dtype=np.int32).reshape(len(rows), 8)

    def _count_gap(self, number: int) -> None:
        if self._last_number is not None:
            self.stats.dropped += (number - self._last_number - 1) % 256
        self._last_number = number


def encode_frame(number: int, counts, footer: int = 0xC0) -> bytes:
    """One Cyton frame (what the board sends): used by the device emulator in the tests and bench."""
    values = np.asarray(counts, dtype=np.int64) & 0xFFFFFF
    body = b"".join(int(v).to_bytes(3, "big") for v in values)
    return bytes([HEADER, number % 256]) + body + bytes(6) + bytes([footer])


class Cyton(SerialDevice):
    name = "cyton"
    nominal_rate_hz = 250.0
    value_range = (-2500.0, 2500.0)  # microvolts a strong surface EMG reaches (the ADC itself spans +-187 mV)

    def __init__(self, port: str, baud: int = 115200, gain: float = 24.0, value_range=None):
        super().__init__(port, baud)
        self.scale = counts_to_microvolts(gain)
        if value_range is not None:
            self.value_range = value_range
        self.parser = CytonFrames(self.stats)

    @property
    def sample_limits(self) -> tuple[float, float]:
        """The 24-bit counts' span in microvolts (+-187 mV at gain 24)."""
        return -2 ** 23 * self.scale, (2 ** 23 - 1) * self.scale

    @classmethod
    def from_spec(cls, args: str) -> "Cyton":
        positional, options = split_spec(args, "cyton", USAGE)
        port, rest = positional[0], positional[1:]
        baud = parse_baud(rest.pop(0), "cyton") if rest else 115200
        if rest:
            raise UserError(f"cyton: {rest[0]!r} is not understood: the format is {USAGE}[,BAUD][,gain=24][,range=LO..HI]")
        unknown = set(options) - {"gain", "range"}
        if unknown:
            raise UserError(f"cyton: unknown option {sorted(unknown)[0]!r} (known: gain, range)")
        gain = options.get("gain", "24")
        if gain not in ("1", "2", "4", "6", "8", "12", "24"):
            raise UserError(f"cyton: gain={gain} should be the board's PGA gain: 1, 2, 4, 6, 8, 12 or 24")
        value_range = parse_range(options["range"], "cyton") if "range" in options else None
        return cls(port, baud, float(gain), value_range)

    def _on_open(self, port) -> None:
        port.write(START_STREAM)

    def _on_close(self, port) -> None:
        port.write(STOP_STREAM)

    def _feed(self, data: bytes) -> np.ndarray:
        return self.parser.feed(data) * self.scale

    def _reset(self) -> None:
        self.parser.reset()
