"""Where every control source meets: one mixer, one merged value steering the playing take.

Each source changes only the fields it plays, so none undoes another's moves: the hand (XY pad,
camera) sets pitch and density, the armband or the z bars set z and recall themes, OSC sets pitch,
density, z and temperature, the panel sets the pitch-class histogram, a learned mapping sets the outputs it maps, a script
sets what its lines change and a replayed take sets everything. The merged value outlives a take: the next one starts from it.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

from livegen.engine.mixer import ControlMixer, Sink
from livegen.music.conditioning import Controls, clamp_control

MUSCLE_FIELDS = {"z", "theme", "toward", "mix"}
Z_DIMS = 8  # the z dims a learned mapping can name (z1..z8)


class ControlHub:
    def __init__(self, controls: Controls | None = None):
        self._lock = threading.Lock()
        self._engine = None
        self._t0 = time.monotonic()
        self.mixer = ControlMixer(controls or Controls(), self.clock)
        self.on_preset: Callable[[str], object] | None = None  # a learned mapping's preset class goes here

    @property
    def controls(self) -> Controls:
        """The merged controls in force now (a script's changes still ahead are not in them)."""
        return self.mixer.current()

    def attach(self, engine, controls: Controls | None = None) -> None:
        """Steer ``engine`` from now on (None: no take), starting from ``controls`` (None: as they
        are); what a script held for later belonged to the last take and is forgotten."""
        with self._lock:
            self._engine = engine
        self.mixer.reset(self.mixer.current() if controls is None else controls)

    def clock(self) -> float:
        """Performance time of the playing take (sources stamp their values with it)."""
        engine = self._engine
        return engine.now() if engine is not None else time.monotonic() - self._t0

    def gesture(self, controls: Controls, t: float | None = None) -> None:
        """Sink for the hand (pad, camera; thread-safe): pitch and density only, so the armband's z
        is never overwritten by a source that does not know it."""
        self._update(t, pitch=controls.pitch, density=controls.density)

    def muscles(self, t: float | None = None, **changes) -> None:
        """For the armband and the z bars (thread-safe): z, and the theme (with toward, mix)."""
        if not set(changes) <= MUSCLE_FIELDS:
            raise ValueError(f"not a muscles control: {sorted(set(changes) - MUSCLE_FIELDS)}")
        self._update(t, **changes)

    def armband(self) -> Sink:
        """A sink for an ``EmgControls``: it plays z; a theme it recalls (a held gesture) is taken
        too, but the theme chosen elsewhere is not overwritten by the one the source started with."""
        started = [self.controls.theme]

        def sink(controls: Controls, t: float | None = None) -> None:
            if controls.theme != started[0]:
                started[0] = controls.theme
                self.muscles(t, z=controls.z, theme=controls.theme, toward=None, mix=0.0)
            else:
                self.muscles(t, z=controls.z)
        return sink

    def learned(self, values: dict, t: float | None = None) -> None:
        """Sink for a learned mapping or MIDI binding (thread-safe): the outputs it maps and nothing
        else, by output name (pitch, density, z1..z8, temperature, theme; a preset goes to ``on_preset``)."""
        changes: dict = {}
        dims = {int(name[1:]) - 1: value for name, value in values.items() if name[:1] == "z" and name[1:].isdigit()}
        if dims:
            z = list(self.controls.z or ()) + [0.0] * Z_DIMS
            for dim, value in dims.items():
                z[dim] = clamp_control("z", value)
            changes["z"] = tuple(z[:max(Z_DIMS, len(self.controls.z or ()))])
        for name in ("pitch", "density", "temperature"):
            if name in values:
                changes[name] = clamp_control(name, values[name])
        if "theme" in values:
            changes.update(theme=str(values["theme"]), toward=None, mix=0.0)
        if changes:
            self._update(t, **changes)
        if "preset" in values and self.on_preset is not None:
            self.on_preset(str(values["preset"]))

    def script(self, offset: float = 0.0) -> Sink:
        """A sink for a control script started ``offset`` s into the take: it steers what the
        script's lines change, stamped on the take's clock, and leaves the rest to the other
        sources (a script's merged value would otherwise undo their moves)."""
        last = [self.controls]

        def sink(controls: Controls, t: float | None = None) -> None:
            changes = {f.name: getattr(controls, f.name) for f in dataclasses.fields(controls)
                       if getattr(controls, f.name) != getattr(last[0], f.name)}
            last[0] = controls
            if changes:
                self._update(None if t is None else t + offset, **changes)
        return sink

    def remote(self, controls: Controls, t: float | None = None) -> None:
        """Sink for OSC (thread-safe): the pitch, density, z and temperature it plays, never the key or theme."""
        self._update(t, pitch=controls.pitch, density=controls.density, z=controls.z, temperature=controls.temperature)

    def player(self, controls: Controls, t: float | None = None) -> None:
        """Sink for a player's MIDI in the accompany mode: the histogram and density of what they play."""
        self._update(t, histogram=controls.histogram, density=controls.density)

    def everything(self, controls: Controls, t: float | None = None) -> None:
        """Sink for a replayed take, which holds every control."""
        self._update(t, **{f.name: getattr(controls, f.name) for f in dataclasses.fields(controls)})

    def tempo(self, bpm: float, t: float | None = None) -> None:
        """Sink for a followed outside tempo (MIDI clock in, Ableton Link): the bpm alone, merged
        over what is in force at ``t``, never over a script's change still ahead."""
        self._update(t, bpm=clamp_control("bpm", bpm))

    def set_histogram(self, histogram: tuple[float, ...] | None) -> None:
        self._update(None, histogram=histogram)

    def sink_for(self, source) -> Sink | None:
        """Where a control source's values go, by what it plays (None: it plays nothing after its
        first value)."""
        kind = getattr(source, "name", "")
        if kind == "fixed":
            return None
        if kind == "script":
            return self.script()
        if kind == "camera":
            return self.gesture
        if kind == "emg":
            return self.armband()
        return self.everything

    def _update(self, t: float | None, **changes) -> None:
        engine = self._engine
        self.mixer.change(engine.set_controls if engine is not None and engine.running else None, t, **changes)
