"""A device on a serial port (pyserial): open, read bytes into a parser, reopen when unplugged.

The port is opened before the reader thread starts, so a wrong name is a one-line error at once.
When reading fails (the cable pulled, the board reset), the state goes to "lost", then
"reconnecting", and the port is reopened with back-off for as long as the device runs; every
success counts a reconnect.
"""
from __future__ import annotations

from abc import abstractmethod

import numpy as np

from livegen.errors import UserError
from livegen.sensors.emg.device import EmgDevice

BACKOFF = (0.2, 0.5, 1.0, 2.0)  # s between tries to reopen a lost port; then every 2 s
LARGEST = 1e9  # no EMG device reads a value this large (a 24-bit ADC counts to 8.4e6): beyond is noise


def split_spec(args: str, kind: str, usage: str, flags: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """``A,B,key=value,flag`` -> positional items and options (a bare word in ``flags`` is an
    option set to "")."""
    if not args.strip():
        raise UserError(f"{kind}: name the port, like {usage}")
    positional, options = [], {}
    for item in (part.strip() for part in args.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if eq:
            options[key.strip().replace("-", "_")] = value.strip()
        elif item in flags:
            options[item] = ""
        else:
            positional.append(item)
    return positional, options


def parse_range(text: str, kind: str) -> tuple[float, float]:
    lo, sep, hi = text.partition("..")
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        low = high = float("nan")
    if not sep or not -LARGEST < low < high < LARGEST:
        raise UserError(f"{kind}: range={text} should be LOW..HIGH with LOW < HIGH, numbers under "
                        f"{LARGEST:.0e} in size, like range=0..1023")
    return low, high


def parse_baud(text: str, kind: str) -> int:
    if not text.isdigit() or not 300 <= int(text) <= 4_000_000:
        raise UserError(f"{kind}: baud rate {text!r} should be a number like 115200")
    return int(text)


class SerialDevice(EmgDevice):
    """Subclasses write ``_feed(data) -> samples (n, channels)`` and may override ``_on_open``
    (start streaming), ``_on_close`` and ``_reset`` (drop a partial frame after a reconnect)."""

    read_timeout = 0.05  # s a read waits, so stop() is seen quickly

    def __init__(self, port: str, baud: int):
        super().__init__()
        self.port, self.baud = port, baud
        self._serial = None
        self._failures = 0  # tries to reopen the lost port in a row

    def _connect(self):
        import serial  # pyserial loads when a serial device opens: a replay reads its lines without it

        try:
            port = serial.Serial(self.port, self.baud, timeout=self.read_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).split(": ", 2)[-1] or type(exc).__name__
            raise UserError(f"cannot open the serial port {self.port} ({reason}): check the cable and the "
                            "name (ls /dev/ttyUSB* /dev/ttyACM*) and that you may use it (group dialout)") from None
        try:
            self._on_open(port)
        except (serial.SerialException, OSError) as exc:
            port.close()
            raise UserError(f"the serial port {self.port} failed while starting the stream: {exc}") from None
        return port

    def _open(self) -> None:
        self._serial = self._connect()
        self._set_state("connected", f"reading {self.port}")

    def _step(self) -> bool:
        """Read what the port has, or (it was lost) try to reopen it after the back-off."""
        import serial  # loaded by _connect already

        port = self._serial
        if port is None:
            if self._stop.wait(BACKOFF[min(self._failures, len(BACKOFF) - 1)]):
                return True
            try:
                self._serial = self._connect()
            except UserError as exc:
                self._failures += 1
                self._retry_later(str(exc), BACKOFF[min(self._failures, len(BACKOFF) - 1)])
                return False
            self._failures = 0
            self._reset()
            self.stats.reconnects += 1
            self._set_state("connected", f"reading {self.port}")
            return False
        try:
            data = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # unplugged (or the port vanished under us): reopen with back-off
            self._serial = None
            self._quiet_close(port)
            self._set_state("lost", f"{self.port} stopped answering ({exc})")
            self._set_state("reconnecting")
            return False
        if data:
            self.receive(data)
        return False

    def receive(self, data: bytes) -> None:
        """Bytes read -> samples to the sink: the reader's whole work per read (the bench times it)."""
        samples = self._feed(data)
        if len(samples):
            self.emit(samples)

    def _close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                self._on_close(port)
            except Exception:  # noqa: BLE001 - the port may already be gone; closing must not fail
                pass
            self._quiet_close(port)

    @staticmethod
    def _quiet_close(port) -> None:
        try:
            port.close()
        except Exception:  # noqa: BLE001 - closing a port that vanished
            pass

    @abstractmethod
    def _feed(self, data: bytes) -> np.ndarray:
        """Decode the bytes read (any split: half a line, several frames) into samples."""

    def _on_open(self, port) -> None:
        """Called on every (re)open, e.g. to start the stream."""

    def _on_close(self, port) -> None:
        """Called before the port is closed at stop()."""

    def _reset(self) -> None:
        """Forget a partial frame or line (the stream restarted)."""
