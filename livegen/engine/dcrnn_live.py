"""The DCRNN on the engine's clock: one step is one 16th-note frame on the tempo map (the
configured bpm, or a followed MIDI clock / Ableton Link, as ``Controls.bpm`` changes).

z = a theme (seeded noise, named "A", "B", ...; held until the controls name another, linearly
interpolated toward a second one by ``mix``, recalled by name) with the external dims replaced by
the performer's ``z`` values (-1..1, scaled to the prior's range). z enters both RNNs at every
step, so after a rollback a change of z shapes the very next 16th, and the coarse (beat) RNN
follows at the next beat; the coarse RNN restarts from z at every segment (2 bars), the fine
one carries on, and each segment's theme dims vary a little (seeded by the segment), so a held
gesture keeps its character without repeating one segment note for note. A key struck again is
released ``RESTRIKE_RELEASE`` before it sounds again, so a step begins that much before its frame. The RNN states are saved before every step, so ``rollback(t)`` resumes
from the first frame at or after ``t``; the fine state is never reset, so bars join.
It keeps a key: the performer's pitch classes when they give some, else a diatonic scale latched
from its first ``KEY_AFTER`` onsets (kept when the performer lets their pitch classes go); each
out-of-key row of a frame is folded onto the nearest in-key row below or above it, so z moving
changes the gesture, not the key. There is no sampling: a frame is decoded with thresholds, and themes are drawn from
(seed, theme name), so the same seed and controls give the same notes with or without rollbacks.
"""
from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np

from livegen.engine.live_generator import ControlTimeline, LiveGenerator
from livegen.errors import UserError
from livegen.music.conditioning import Controls, best_diatonic, in_range, range_text
from livegen.music.roll import RollDecoder

EXTERNAL_SCALE = 1.5  # control -1..1 -> z in -1.5..1.5 (the prior is N(0, 1))
# each 2-bar segment's theme dims (not the played ones) move this far, times seeded N(0, 1) noise:
# a fixed gesture no longer loops one segment note for note, yet keeps its character (measured in
# docs/measurements.md: 0.1 still repeats, 0.5 blurs one gesture into the next)
SEGMENT_VARIATION = 0.2
RESTRIKE_RELEASE = 0.02  # s a re-struck key is released before it sounds again, as a player's key must rise
KEY_AFTER = 8  # onsets heard before the key is latched


@dataclass(frozen=True)
class Frame:
    """What is saved before a step: enough to generate it again."""

    index: int
    coarse: np.ndarray  # RNN-a state (= its output) for the current beat
    fine: np.ndarray
    decoder: RollDecoder
    key: int | None = None  # the key in force (12-bit mask of pitch classes): asked for, or latched
    heard: tuple[int, ...] = (0,) * 12  # pitch classes of the onsets before a key was latched


def theme_z(seed: int, name: str, z_dim: int) -> np.ndarray:
    """The theme's noise vector: a function of (seed, name) only, so a recalled theme is the same."""
    key = zlib.crc32(name.encode())
    return np.random.Generator(np.random.Philox(key=[seed, key])).standard_normal(z_dim)


def segment_noise(seed: int, segment: int, z_dim: int) -> np.ndarray:
    """The variation of one 2-bar segment: a function of (seed, segment) only."""
    return np.random.Generator(np.random.Philox(key=[seed, 1 << 32 | segment])).standard_normal(z_dim)


def heard_by_dcrnn(c: Controls) -> tuple:
    return c.z, c.theme, c.toward, c.mix, c.bpm, c.histogram


def asked_key(c: Controls) -> int | None:
    """The performer's pitch classes as a 12-bit mask; None when they give none."""
    if c.histogram is None or sum(c.histogram) <= 0:
        return None
    return sum(1 << pc for pc, w in enumerate(c.histogram) if w > 0)


def key_folding(key: int, low: int, rows: int) -> np.ndarray:
    """For each row of a frame, the in-key row it sounds as: itself, else the nearest in-key row,
    below before above at equal distance (every pitch outside a diatonic scale has both neighbours in it)."""
    pitches = low + np.arange(rows)
    in_key = (key >> (pitches % 12)) & 1 == 1
    target = np.arange(rows)
    for row in np.flatnonzero(~in_key):
        for d in range(1, 12):
            near = [r for r in (row - d, row + d) if 0 <= r < rows and in_key[r]]
            if near:
                target[row] = near[0]
                break
    return target


class DCRNNGenerator(LiveGenerator):
    """The DCRNN (its numpy runtime, ``LiveDCRNN``), one 16th-note frame per step."""

    def __init__(self, model, controls: Controls, seed: int = 0, bpm: float = 120.0, channel: int = 0,
                 max_note_seconds: float = 4.0, max_polyphony: int = 12, external: tuple[int, ...] = tuple(range(8))):
        c = model.config
        if not in_range("bpm", bpm):
            raise UserError(f"bpm {bpm:g} is outside {range_text('bpm')}")
        if not external or any(not 0 <= d < c.z_dim for d in external) or len(set(external)) < len(external):
            raise UserError(f"external z dims must be distinct numbers in 0..{c.z_dim - 1}")
        self.model, self.config, self.seed, self.channel = model, c, seed, channel
        self.external = np.asarray(external)
        self.step_seconds = 60.0 / bpm / c.steps_per_beat  # at the starting tempo (the note-length guard)
        self.timeline = ControlTimeline(controls, bpm)
        self._themes: dict[str, np.ndarray] = {}
        self._varied: tuple[int, np.ndarray] = (-1, np.zeros(c.z_dim))  # the last segment's variation, cached
        self._foldings: dict[int, np.ndarray] = {}
        z = self.z_for(controls) + SEGMENT_VARIATION * self._variation(0)
        coarse, fine = self.model.initial_state(z)
        decoder = RollDecoder(c.threshold, c.onset_threshold, max(1, int(max_note_seconds / self.step_seconds)),
                              max_polyphony)
        self.current = Frame(0, coarse, fine, decoder)
        self.history: deque[Frame] = deque()
        self.steps = 0

    def _frame_time(self, index: int) -> float:
        """When frame ``index`` sounds: its 16th on the tempo map."""
        return self.timeline.tempo.time_at_beat(index / self.config.steps_per_beat)

    def _time_of(self, state: Frame) -> float:
        """A step begins a re-strike's release before its frame sounds: its earliest message."""
        return self._frame_time(state.index) - RESTRIKE_RELEASE

    def hears(self, before: Controls, after: Controls) -> bool:
        """z, its themes and the tempo; the camera's pitch and density are the Char-RNN's."""
        return heard_by_dcrnn(before) != heard_by_dcrnn(after)

    def _theme(self, name: str) -> np.ndarray:
        if name not in self._themes:
            self._themes[name] = theme_z(self.seed, name, self.config.z_dim)
        return self._themes[name]

    def z_for(self, controls: Controls) -> np.ndarray:
        """Theme (interpolated toward ``controls.toward`` by ``mix``) with the external dims played."""
        z = self._theme(controls.theme)
        if controls.toward is not None and controls.mix > 0:
            z = (1.0 - controls.mix) * z + controls.mix * self._theme(controls.toward)
        z = z.copy()
        if controls.z is not None:
            values = np.asarray(controls.z[:len(self.external)], dtype=np.float64)
            z[self.external[:len(values)]] = EXTERNAL_SCALE * values
        return z

    def step(self) -> list[tuple[float, int, list[int]]]:
        s = self.current
        self.history.append(s)
        c = self.config
        t = self._frame_time(s.index)
        segment = s.index // c.segment_steps
        controls = self.timeline.at(self._time_of(s))
        z = self.z_for(controls) + SEGMENT_VARIATION * self._variation(segment)
        step_in_beat = s.index % c.steps_per_beat
        coarse = s.coarse
        if s.index % c.segment_steps == 0:
            coarse = self.model.segment_start(z)
        if step_in_beat == 0:
            coarse = self.model.coarse_step(z, (s.index // c.steps_per_beat) % c.beats_per_bar, coarse)
        fine, frame = self.model.fine_step(coarse, z, step_in_beat, s.fine)
        key, heard = asked_key(controls) or s.key, s.heard
        if key is not None:
            frame = self._in_key(frame, key)
        decoder, ended, started = s.decoder.feed(frame, s.index)
        low = c.low_pitch
        if key is None and started:
            heard = tuple(n + sum((low + row) % 12 == pc for row, _ in started) for pc, n in enumerate(heard))
            if sum(heard) >= KEY_AFTER:
                key = best_diatonic(heard)
        self.current = Frame(s.index + 1, coarse, fine, decoder, key, heard)
        self.steps += 1
        off, on = 0x80 | self.channel, 0x90 | self.channel
        velocity = [int(np.clip(40 + 80 * strength, 1, 127)) for _, strength in started]  # firmer onset, louder
        struck = {row for row, _ in started}
        return ([(t - RESTRIKE_RELEASE if row in struck else t, s.index, [off, low + row, 0]) for row in ended]
                + [(t, s.index, [on, low + row, v]) for (row, _), v in zip(started, velocity)])

    def _in_key(self, frame: np.ndarray, key: int) -> np.ndarray:
        """The frame (sounding and onset strengths by row) with each out-of-key row's strengths moved
        onto the in-key row it folds to."""
        target = self._foldings.get(key)
        if target is None:
            target = self._foldings[key] = key_folding(key, self.config.low_pitch, frame.shape[-1])
        folded = np.zeros_like(frame)
        for strengths, into in zip(frame, folded):
            np.maximum.at(into, target, strengths)
        return folded

    def _variation(self, segment: int) -> np.ndarray:
        if segment != self._varied[0]:
            noise = segment_noise(self.seed, segment, self.config.z_dim)
            noise[self.external] = 0.0  # the dims the performer plays stay as played
            self._varied = (segment, noise)
        return self._varied[1]


    def release(self) -> list[tuple[float, int, list[int]]]:
        return [(self.time, self.current.index, [0x80 | self.channel, self.config.low_pitch + row, 0])
                for row in self.current.decoder.release()]
