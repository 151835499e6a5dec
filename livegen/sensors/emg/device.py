"""EMG devices: where muscle samples enter livegen.

Every device (a Myo over BLE or the BLED112 dongle, a serial CSV board, an OpenBCI Cyton, a
replayed recording) is an ``EmgDevice``: it reads in its own thread (BLE: its own asyncio loop
thread), decodes frames into blocks of samples and hands them to one callback. It never blocks
the engine; ``stats`` counts what a booth operator needs to trust the stream. Whatever goes
wrong in the reader (or in the processing a block is handed to) is said once and counted in
``faults``, and reading goes on.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from livegen.faults import Faults, run_steps
from livegen.messages import say

# samples: (n, channels) float64 raw device units; t: time.monotonic() of arrival of the block
SampleSink = Callable[[np.ndarray, float], None]

STATES = ("connecting", "connected", "lost", "reconnecting", "stopped", "ended")  # ended: a replay ran out


@dataclass
class DeviceStats:
    samples: int = 0
    parse_errors: int = 0  # lines/frames that could not be decoded (counted, never fatal)
    dropped: int = 0  # samples known lost (sequence gaps, a full buffer)
    resyncs: int = 0  # times a binary parser hunted for the next frame start
    reconnects: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class EmgDevice(ABC):
    """Subclasses set ``channels``, ``value_range`` (raw units that map to full scale) and
    ``nominal_rate_hz``, and write ``_step`` (one turn of reading, calling ``self.emit``);
    ``start``/``stop`` are the same for every device."""

    name = "emg"
    channels = 8
    value_range: tuple[float, float] = (-128.0, 127.0)
    nominal_rate_hz = 200.0
    rectified = False  # True: samples are already rectified envelopes (Myo mode 0x01, a MyoWare SIG pin)

    def __init__(self):
        self.stats = DeviceStats()
        self.state = "connecting"
        self.error: str | None = None  # a fatal problem, one line, said to the user
        self.detail = "starting"  # what it is doing now, or why it is not streaming, for a status line
        self.on_state: Callable[[str], None] | None = None  # every state change (the performance's notices, tests)
        self.on_retry: Callable[[str], None] | None = None  # a try to connect failed, another follows: why
        self.on_notice: Callable[[str], None] | None = None  # a problem it lives with; None: stderr
        self.faults = Faults(f"the EMG {self.name} reader", "the samples it was on are skipped; if this repeats, "
                             "reconnect the device and report this line", self._say)
        self._noticed: set[str] = set()
        self._sink: SampleSink | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False

    @property
    def sample_limits(self) -> tuple[float, float]:
        """The values a real sample can take; processing clamps anything beyond as garbage. A
        text stream's are the range it declares, a binary format's what it can encode."""
        return self.value_range

    @classmethod
    @abstractmethod
    def from_spec(cls, args: str) -> "EmgDevice":
        """Build from the text after ``KIND:`` in ``--source KIND:ARGS`` (may be empty); a bad
        spec raises ``UserError`` with a one-line fix."""

    def open(self) -> None:
        """Open the port/file now (``start`` does it too), so a wrong name is a ``UserError``
        before anything else starts."""
        if not self._opened:
            self._open()
            self._opened = True

    def start(self, sink: SampleSink) -> None:
        self.open()
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"livegen-emg-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
        self._close()
        self._set_state("stopped")

    def emit(self, samples: np.ndarray) -> None:
        """Hand a decoded block (n, channels) to the sink, stamped with its arrival time; a block
        the sink fails on is recorded in ``faults`` and left behind."""
        if len(samples) == 0:
            return
        self.stats.samples += len(samples)
        if self._sink is not None:
            try:
                self._sink(samples, time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the next block must still be read
                self.faults.record(exc)

    def notice_once(self, key: str, text: str) -> None:
        """Say ``text`` (a problem the device lives with, and what to do) the first time ``key`` comes up."""
        if key not in self._noticed:
            self._noticed.add(key)
            self._say(text)

    def _say(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)
        else:
            say(f"EMG {self.name}: {text}")

    def _set_state(self, state: str, detail: str | None = None) -> None:
        """Change state (``detail``: why, set before ``on_state`` hears of it)."""
        if detail is not None:
            self.detail = detail
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(state)

    def _retry_later(self, reason: str, seconds: float) -> None:
        """A try to (re)connect failed for ``reason`` (what went wrong and what to do); the next
        one is ``seconds`` away."""
        self.detail = f"{reason}; retrying in {seconds:.1f} s"
        if self.on_retry is not None:
            self.on_retry(reason)

    def _run(self) -> None:
        """The reader thread: ``_step`` until stopped or the device has nothing more to read."""
        run_steps(self._step, self._stop, self.faults)

    @abstractmethod
    def _step(self) -> bool:
        """One turn of reading (a read of the port, a connection attempt); True when the device
        has nothing more to read (a replay's end, a fatal ``error``)."""

    def _open(self) -> None:
        """Open the port/file before the reader starts, so a wrong name is a ``UserError`` at once."""

    def _close(self) -> None:
        """Release the port/connection (after the thread ended)."""
