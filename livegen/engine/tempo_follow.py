"""Following an outside tempo: the engine's beat locked to a MIDI clock in or an Ableton Link session.

A ``BeatSource`` (livegen/music/tempo.py) says where the outside beat is at any instant (a
line under incoming MIDI clock ticks, or Link's session timeline). ``TempoFollow``
is a phase-locked loop on its own thread: every 16th it compares the engine's beat (the tempo map
it has commanded) with the source's a moment ahead, and sets the engine's tempo to the source's, bent by up to
``MAX_BEND`` to close a share of the phase error per update (errors within the jitter of
incoming ticks are left alone, so the tempo does not wobble). Tempo changes reach the music as
``Controls.bpm`` through the take's controls (or ``Engine.set_tempo``): the DCRNN rolls back and re-times its grid, the
MIDI clock out follows, and the session records them, so a followed take replays exactly.
"""
from __future__ import annotations

import threading

from livegen.engine.engine import CONTROL_DELAY
from livegen.music.conditioning import clamp_control
from livegen.music.tempo import BeatSource, TempoMap


class TempoFollow:
    UPDATE_BEATS = 0.25  # re-aim every 16th note
    GAIN = 0.7  # share of the phase error closed per update
    DEAD_BEATS = 0.004  # phase error left alone: the jitter of ticks arriving in audio periods
    MAX_BEND = 0.25  # at most this far off the source's tempo while catching up
    LEAD = 0.02  # s ahead of now a correction is made: past the engine's control delay
    QUIET_BEATS, QUIET_BPM = 0.004, 0.02  # below both, no change is sent (sessions stay small)

    def __init__(self, engine, source: BeatSource, log=None, steer=None):
        """``steer(bpm, t)`` carries each tempo change to the engine (default ``Engine.set_tempo``;
        a take's control hub, so the tempo merges with the other sources like any control)."""
        self.engine, self.source = engine, source
        self.steer = steer or engine.set_tempo
        self.log = log or (lambda text: None)
        self.mirror = TempoMap(engine.controls.bpm or engine.settings.bpm)  # what we commanded
        self.locked = False
        self.source_bpm: float | None = None  # the outside tempo itself, without the phase catch-up's bend
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-tempo-follow", daemon=True)

    def start(self) -> "TempoFollow":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def update(self) -> float:
        """One correction; returns seconds until the next."""
        made = max(0.0, self.engine.now() + self.LEAD)
        effective = made + CONTROL_DELAY
        outside = self.source.beat_at(self.engine.start_time + effective)
        if outside is None:
            if self.locked:
                self.locked = False
                self.log(f"lost the tempo of {self.source.name}: holding {self.mirror.bpm_at(effective):.1f} bpm")
            return 0.05
        beat, bpm = outside
        self.source_bpm = bpm
        error = self.mirror.beat_at(effective) - beat
        error -= round(error / self.source.quantum) * self.source.quantum  # wrapped: (-q/2, q/2]
        beyond = max(abs(error) - self.DEAD_BEATS, 0.0) * (1.0 if error > 0 else -1.0)
        bend = min(max(self.GAIN * beyond / self.UPDATE_BEATS, -self.MAX_BEND), self.MAX_BEND)
        wanted = clamp_control("bpm", bpm * (1.0 - bend))
        if abs(error) > self.QUIET_BEATS or abs(wanted - self.mirror.bpm_at(effective)) > self.QUIET_BPM:
            self.mirror.set(effective, wanted)
            self.mirror.forget_before(effective - 2.0)
            self.steer(wanted, made)
        if not self.locked:
            self.locked = True
            self.log(f"following {self.source.name} at {bpm:.1f} bpm")
        return self.UPDATE_BEATS * 60.0 / bpm

    def _run(self) -> None:
        while not self._stop.is_set() and self.engine.running:
            self._stop.wait(self.update())
