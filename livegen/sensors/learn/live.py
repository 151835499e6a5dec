"""A learned mapping playing live: sensor inputs in, smoothed outputs out to the control path.

Runs in the sensor's thread (an armband's reader, a camera's, OSC's server): ``feed_emg`` takes a
block of raw samples through the mapping's own EMG processing (its envelope and smoothing, the
user's calibration) and rolls the levels by the mapping's ``emg.rotate``; ``set_inputs`` takes a
camera's hand (``hand_x`` 0 left .. 1 right, ``hand_y`` 0 bottom .. 1 top of the image) or a
number another tool sent to an OSC address (``osc:/ADDRESS``; the latest value of each). Each
new input vector is predicted (a few tens of µs), a regressed value follows a one-pole smoothing with the output's ``smoothing`` time constant, a class must win for
``smoothing`` s before it is taken, and only what moved (by ``PUBLISH_STEP`` for numbers) goes to
``sink(values, t)``, values by output name; ``ControlHub.learned`` is that sink. ``listeners``
get each new input vector, e.g. an ``ExampleRecorder`` while examples are recorded; a mapping with
no outputs yet (``Mapping(inputs, {})``) only feeds them. They hear an armband's levels only once
the mapping's own filters have settled (``settle_seconds``): an armband that is already playing
primes them with its last samples (``prime``), so a take never records a ramp up from silence.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from livegen.sensors.emg.processing import Calibration, Mapping as EmgMapping, Processor
from livegen.errors import UserError
from livegen.sensors.learn.mapping import EMG_INPUTS, HAND_INPUTS, Mapping

SENSORS = {"emg": EMG_INPUTS, "camera": HAND_INPUTS}
PUBLISH_STEP = 0.01  # smaller moves of a regressed output are not sent: a still arm must not flood the engine

LearnedSink = Callable[[dict, "float | None"], object]


def sensor_of(inputs: list[str]) -> str | None:
    """The one sensor whose inputs these are: "emg", "camera", "osc" (each ``osc:/ADDRESS``, numbers
    another tool sends to livegen's OSC listener); None when they mix sensors."""
    read = {name for name, names in SENSORS.items() if set(inputs) & set(names)}
    if any(name.startswith("osc:") for name in inputs):
        read.add("osc")
    return read.pop() if len(read) == 1 else None


def preset_mapping(path: str, sensor: str) -> Mapping | None:
    """The preset's mapping (``[learn] mapping``) when it reads ``sensor``'s inputs ("emg",
    "camera", "osc"); None when there is none or it reads another sensor. A mapping played live
    reads one sensor: one that mixes them is a ``UserError``."""
    if not path:
        return None
    mapping = Mapping.load(Path(path).expanduser())
    read = sensor_of(mapping.inputs)
    if read is None:
        raise UserError(f"mapping {path} reads {', '.join(mapping.inputs)}: a mapping played live reads the "
                        "armband's levels, the camera's hand or OSC addresses, one of them")
    return mapping if read == sensor else None


def settle_seconds(emg) -> float:
    """How long an armband's levels take, through fresh filters, to come within 5 % of a gesture
    held steady: the envelope's window (an RMS fills once, a one-pole takes 3 time constants) and
    3 smoothing time constants."""
    return (emg.window if emg.envelope == "rms" else 3.0 * emg.window) + 3.0 * emg.smoothing


class LearnedControls:
    def __init__(self, mapping: Mapping, sink: LearnedSink | None = None):
        self.mapping, self.sink = mapping, sink
        self.predict = mapping.predictor()
        self.vector = np.zeros(len(mapping.inputs))  # the latest input vector
        self._emg = np.array([mapping.inputs.index(n) for n in EMG_INPUTS if n in mapping.inputs], dtype=int)
        self._smoothed: dict[str, float] = {}
        self._sent: dict = {}
        self._candidate: dict[str, tuple[object, float]] = {}  # class output -> (class, since)
        self._last_time: float | None = None
        self.processor: Processor | None = None
        self._lock = threading.Lock()
        self.predictions = 0
        self.listeners: list[Callable[[np.ndarray], object]] = []  # each new input vector (an ExampleRecorder's add)
        self._unsettled = 0  # armband samples still to come before the filters have settled

    def for_device(self, device, calibration: Calibration) -> "LearnedControls":
        """Process ``device``'s samples as the mapping was trained: its envelope, window and
        smoothing, with ``calibration`` (the user's)."""
        e = self.mapping.emg
        self.processor = Processor.for_device(device, EmgMapping(envelope=e.envelope, window=e.window,
                                                                 smoothing=e.smoothing), calibration)
        self._unsettled = math.ceil(settle_seconds(e) * device.nominal_rate_hz)
        return self

    def prime(self, samples: np.ndarray) -> None:
        """Raw samples the armband sent before this mapping was put on it: they settle its filters
        and reach no one."""
        if len(samples):
            self.processor.run(samples)
            self._unsettled = max(0, self._unsettled - len(samples))

    def feed_emg(self, block: np.ndarray, arrival: float, t: float | None = None) -> dict:
        """Raw samples from the armband; the outputs sent (if any). Each sample's levels reach the
        listeners, so a recorded take holds every sample however the device batched them; the
        mapping predicts from the newest."""
        levels = np.roll(self.processor.run(block), self.mapping.emg.rotate, axis=1)[:, :len(self._emg)]
        with self._lock:
            settling, self._unsettled = self._unsettled, max(0, self._unsettled - len(block))
            for row in levels[settling:-1]:
                self.vector[self._emg] = row
                self._tell()
            self.vector[self._emg] = levels[-1]
            return self._update(arrival, t, tell=len(block) > settling)

    def set_inputs(self, values: dict[str, float], now: float, t: float | None = None) -> dict:
        """New values of inputs by name (a camera's hand, an OSC address; those the mapping lacks
        are left out), ``now`` when they were taken (monotonic s); the outputs sent (if any)."""
        with self._lock:
            for name, value in values.items():
                if name in self.mapping.inputs:
                    self.vector[self.mapping.inputs.index(name)] = value
            return self._update(now, t)

    def _tell(self) -> None:
        for listener in self.listeners:
            listener(self.vector)

    def _update(self, now: float, t: float | None, tell: bool = True) -> dict:
        if tell:
            self._tell()
        values = self.predict(self.vector)
        self.predictions += 1
        dt = 0.0 if self._last_time is None else max(0.0, now - self._last_time)
        self._last_time = now
        changes = {}
        for name, value in values.items():
            output = self.mapping.outputs[name]
            if output.kind == "regress":
                previous = self._smoothed.get(name)
                if previous is not None and output.smoothing > 0:
                    value = previous + (1.0 - math.exp(-dt / output.smoothing)) * (value - previous)
                self._smoothed[name] = value
                if name not in self._sent or abs(value - self._sent[name]) >= PUBLISH_STEP:
                    changes[name] = value
            else:
                value = str(value)
                held, since = self._candidate.get(name, (None, now))
                if value != held:
                    self._candidate[name] = (value, now)
                    since = now
                if now - since >= output.smoothing and self._sent.get(name) != value:
                    changes[name] = value
        if changes:
            self._sent.update(changes)
            if self.sink is not None:
                self.sink(changes, t)
        return changes
