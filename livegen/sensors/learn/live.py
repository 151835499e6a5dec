"""A learned mapping playing live: sensor inputs in, smoothed outputs out to the control path.

Runs in the sensor's thread (an armband's reader, a camera's, OSC's server): ``feed_emg`` takes a
block of raw samples through the mapping's own EMG processing (its envelope and smoothing, the
user's calibration) and rolls the levels by the mapping's ``emg.rotate``; ``set_inputs`` takes a
camera's hand (``hand_x`` 0 left .. 1 right, ``hand_y`` 0 bottom .. 1 top of the image). Each new input vector is predicted (a few tens of µs), a regressed value
follows a one-pole smoothing with the output's ``smoothing`` time constant, a class must win for
``smoothing`` s before it is taken, and only what moved (by ``PUBLISH_STEP`` for numbers) goes to
``sink(values, t)``, values by output name; ``ControlHub.learned`` is that sink. ``listeners``
get each new input vector, e.g. an ``ExampleRecorder`` while examples are recorded; a mapping with
no outputs yet (``Mapping(inputs, {})``) only feeds them.
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


def preset_mapping(path: str, sensor: str) -> Mapping | None:
    """The preset's mapping (``[learn] mapping``) when it reads ``sensor``'s inputs ("emg",
    "camera"); None when there is none or it reads another sensor. A mapping played live reads one
    sensor: one that mixes them is a ``UserError``."""
    if not path:
        return None
    mapping = Mapping.load(Path(path).expanduser())
    read = {name for name, inputs in SENSORS.items() if set(mapping.inputs) & set(inputs)}
    if len(read) > 1 or set(mapping.inputs) - set(EMG_INPUTS) - set(HAND_INPUTS):
        raise UserError(f"mapping {path} reads {', '.join(mapping.inputs)}: a mapping played live reads the "
                        "armband's levels or the camera's hand, one of them")
    return mapping if sensor in read else None


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

    def for_device(self, device, calibration: Calibration) -> "LearnedControls":
        """Process ``device``'s samples as the mapping was trained: its envelope, window and
        smoothing, with ``calibration`` (the user's)."""
        e = self.mapping.emg
        self.processor = Processor.for_device(device, EmgMapping(envelope=e.envelope, window=e.window,
                                                                 smoothing=e.smoothing), calibration)
        return self

    def feed_emg(self, block: np.ndarray, arrival: float, t: float | None = None) -> dict:
        """Raw samples from the armband; the outputs sent (if any)."""
        levels = np.roll(self.processor.run(block)[-1], self.mapping.emg.rotate)
        with self._lock:
            self.vector[self._emg] = levels[:len(self._emg)]
            return self._update(arrival, t)

    def set_inputs(self, values: dict[str, float], now: float, t: float | None = None) -> dict:
        """New values of inputs by name (a camera's hand, an OSC address; those the mapping lacks
        are left out), ``now`` when they were taken (monotonic s); the outputs sent (if any)."""
        with self._lock:
            for name, value in values.items():
                if name in self.mapping.inputs:
                    self.vector[self.mapping.inputs.index(name)] = value
            return self._update(now, t)

    def _update(self, now: float, t: float | None) -> dict:
        for listener in self.listeners:
            listener(self.vector)
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
