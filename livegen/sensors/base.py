"""Control sources: where a gesture becomes control values for the engine.

A source runs in its own thread and publishes the latest value through ``publish``; it never
blocks the engine. Subclasses write ``_step``, one turn of that thread's work: an exception in a
turn is said once and counted (``faults``), and the next turn follows, so a bug met on one odd
frame never silences the source for the rest of the show. Values outside 0..1 are clamped with
one warning per field (``clamp_controls``), the one place raw values are turned into ``Controls``.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Callable

from livegen.faults import Faults, run_steps
from livegen.messages import say, warn
from livegen.music.conditioning import Controls, clamp_control, key_histogram, range_text

Sink = Callable[[Controls, "float | None"], object]


class ControlSource(ABC):
    name = "source"

    def __init__(self, say: Callable[[str], None] = warn):
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sink: Sink | None = None
        self._clock: Callable[[], float] | None = None
        self._warned: set[str] = set()
        self.current = Controls()
        self.faults = Faults(f"the {self.name} controls", "they hold their last values until it works again; "
                             "if this repeats, restart the source and report this line", say)

    def initial(self) -> Controls:
        """Controls at performance time 0, before the thread starts."""
        return self.current

    def start(self, sink: Sink, clock: Callable[[], float]) -> None:
        """``clock()`` returns performance time; ``sink(controls, t)`` steers the engine."""
        self._sink, self._clock = sink, clock
        self._thread = threading.Thread(target=self._run, name=f"livegen-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def publish(self, controls: Controls, t: float | None = None) -> None:
        self.current = controls
        if self._sink is not None:
            self._sink(controls, t)

    @classmethod
    @abstractmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "ControlSource":
        """Build from the text after ``KIND:`` in ``--controls KIND:ARGS``; ``initial`` holds the
        preset's and flags' controls, ``preset`` names the preset in use (None: the default)."""

    def _run(self) -> None:
        """The source's thread: ``_step`` until stopped or it has nothing more to do."""
        run_steps(self._step, self._stop, self.faults)

    def _step(self) -> bool:
        """One turn of the source's work (a frame, a check of the armband); True when there is
        nothing more to do."""
        return True

    def warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            say(f"warning: {text}")


def clamp_controls(values: dict, previous: Controls, warn: Callable[[str, str], None]) -> Controls:
    """Merge raw values (pitch, density, histogram, key, z, mix, bpm, temperature) over ``previous``, each
    clamped to its range in ``CONTROL_RANGES``, one warning per field."""
    def clamp(key: str, x: float) -> float:
        inside = clamp_control(key, x)
        if inside != x:
            warn(key, f"{key} {x} is outside {range_text(key)}; clamped (warned once)")
        return inside

    changes = {key: clamp(key, values[key]) for key in ("pitch", "density", "mix") if key in values}
    if values.get("bpm") is not None:
        changes["bpm"] = clamp("bpm", values["bpm"])
    if "temperature" in values:  # None: the engine's own temperature again
        changes["temperature"] = None if values["temperature"] is None else clamp("temperature", values["temperature"])
    if "histogram" in values:  # None: no histogram (a recorded session clearing the key)
        changes["histogram"] = None if values["histogram"] is None else tuple(
            clamp("histogram", v) for v in values["histogram"])
    if "key" in values:
        changes["histogram"] = tuple(key_histogram(values["key"]))
    if "z" in values:
        changes["z"] = None if values["z"] is None else tuple(clamp("z", v) for v in values["z"])
    return replace(previous, **changes)


class FixedControls(ControlSource):
    """Controls that never change (``--pitch 0.8 --density 0.2``)."""

    name = "fixed"

    def __init__(self, controls: Controls):
        super().__init__()
        self.current = controls

    @classmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "FixedControls":
        return cls(initial)
