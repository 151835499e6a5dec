"""The DCRNN on the engine's clock: one step is one 16th-note frame on the tempo map (the
configured bpm, or a followed MIDI clock / Ableton Link, as ``Controls.bpm`` changes).

z = a theme (seeded noise, named "A", "B", ...; held until the controls name another, linearly
interpolated toward a second one by ``mix``, recalled by name) with the external dims replaced by
the performer's ``z`` values (-1..1, scaled to the prior's range). z enters both RNNs at every
step, so after a rollback a change of z shapes the very next 16th, and the coarse (beat) RNN
follows at the next beat; the coarse RNN restarts from z at every segment (2 bars), the fine
one carries on. The RNN states are saved before every step, so ``rollback(t)`` resumes
from the first frame at or after ``t``; the fine state is never reset, so bars join.
There is no sampling: a frame is decoded with thresholds, and themes are drawn from
(seed, theme name), so the same seed and controls give the same notes with or without rollbacks.
"""
from __future__ import annotations

import time
import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np

from livegen.engine.generator import ControlTimeline, LiveGenerator
from livegen.errors import UserError
from livegen.music.conditioning import Controls

EXTERNAL_SCALE = 1.5  # control -1..1 -> z in -1.5..1.5 (the prior is N(0, 1))


@dataclass(frozen=True)
class RollDecoder:
    """Frames of (sounding, onset) probabilities -> note-ons/offs, with the runaway guards.

    A note starts where its row crosses ``threshold`` (or is re-struck where the onset channel
    fires on a sounding row) and ends where the row falls below it, after ``max_steps`` frames,
    or at a re-strike. At most ``max_polyphony`` notes sound; when more would start, the most
    probable onsets win. Immutable, so saving it for rollback costs nothing.
    """

    threshold: float
    onset_threshold: float
    max_steps: int
    max_polyphony: int
    active: tuple[tuple[int, int], ...] = ()  # (row, start frame), oldest first
    was_on: frozenset = frozenset()  # rows above threshold in the previous frame

    def feed(self, frame: np.ndarray, index: int) -> tuple["RollDecoder", list[int], list[tuple[int, float]]]:
        """(next decoder, rows to end, (row, onset strength) to start) for the frame at ``index``."""
        on = frame[0] >= self.threshold
        strike = frame[1] >= self.onset_threshold
        ended, kept = [], []
        for row, start in self.active:
            if not on[row] or strike[row] or index - start >= self.max_steps:
                ended.append(row)
            else:
                kept.append((row, start))
        sounding = {row for row, _ in kept}
        candidates = [row for row in np.flatnonzero(on)
                      if row not in sounding and (strike[row] or row not in self.was_on)]
        room = max(self.max_polyphony - len(kept), 0)
        chosen = sorted(candidates, key=lambda r: (-frame[1][r], -frame[0][r], r))[:room]
        started = [(int(r), float(frame[1][r])) for r in sorted(chosen)]
        active = tuple(kept) + tuple((r, index) for r, _ in started)
        return (RollDecoder(self.threshold, self.onset_threshold, self.max_steps, self.max_polyphony, active,
                            frozenset(int(r) for r in np.flatnonzero(on))), ended, started)

    def release(self) -> list[int]:
        return [row for row, _ in self.active]


@dataclass(frozen=True)
class Frame:
    """What is saved before a step: enough to generate it again."""

    index: int
    coarse: np.ndarray  # RNN-a state (= its output) for the current beat
    fine: np.ndarray
    decoder: RollDecoder


def theme_z(seed: int, name: str, z_dim: int) -> np.ndarray:
    """The theme's noise vector: a function of (seed, name) only, so a recalled theme is the same."""
    key = zlib.crc32(name.encode())
    return np.random.Generator(np.random.Philox(key=[seed, key])).standard_normal(z_dim)


def heard_by_dcrnn(c: Controls) -> tuple:
    return c.z, c.theme, c.toward, c.mix, c.bpm


class DCRNNGenerator(LiveGenerator):
    def __init__(self, model, controls: Controls, seed: int = 0, bpm: float = 120.0, channel: int = 0,
                 max_note_seconds: float = 4.0, max_polyphony: int = 12, external: tuple[int, ...] = tuple(range(8))):
        c = model.config
        if not 20.0 <= bpm <= 300.0:
            raise UserError(f"bpm {bpm:g} is outside 20..300")
        if not external or any(not 0 <= d < c.z_dim for d in external) or len(set(external)) < len(external):
            raise UserError(f"external z dims must be distinct numbers in 0..{c.z_dim - 1}")
        self.model, self.config, self.seed, self.channel = model.live(), c, seed, channel
        self.external = np.asarray(external)
        self.step_seconds = 60.0 / bpm / c.steps_per_beat  # at the starting tempo (the note-length guard)
        self.timeline = ControlTimeline(controls, bpm)
        self._themes: dict[str, np.ndarray] = {}
        z = self.z_for(controls)
        coarse, fine = self.model.initial_state(z)
        decoder = RollDecoder(c.threshold, c.onset_threshold, max(1, int(max_note_seconds / self.step_seconds)),
                              max_polyphony)
        self.current = Frame(0, coarse, fine, decoder)
        self.history: deque[Frame] = deque()
        self.steps = 0

    def _time_of(self, state: Frame) -> float:
        return self.timeline.tempo.time_at_beat(state.index / self.config.steps_per_beat)

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
        t = self._time_of(s)
        z = self.z_for(self.timeline.at(t))
        step_in_beat = s.index % c.steps_per_beat
        coarse = s.coarse
        if s.index % c.segment_steps == 0:
            coarse = self.model.segment_start(z)
        if step_in_beat == 0:
            coarse = self.model.coarse_step(z, (s.index // c.steps_per_beat) % c.beats_per_bar, coarse)
        fine, frame = self.model.fine_step(coarse, z, step_in_beat, s.fine)
        decoder, ended, started = s.decoder.feed(frame, s.index)
        self.current = Frame(s.index + 1, coarse, fine, decoder)
        self.steps += 1
        off, on = 0x80 | self.channel, 0x90 | self.channel
        low = c.low_pitch
        velocity = [int(np.clip(40 + 80 * strength, 1, 127)) for _, strength in started]  # firmer onset, louder
        return ([(t, s.index, [off, low + row, 0]) for row in ended]
                + [(t, s.index, [on, low + row, v]) for (row, _), v in zip(started, velocity)])


    def release(self) -> list[tuple[float, int, list[int]]]:
        return [(self.time, self.current.index, [0x80 | self.channel, self.config.low_pitch + row, 0])
                for row in self.current.decoder.release()]


# --- livegen bench --------------------------------------------------------------------------------

def take_notes(model, schedule: list[tuple[float, Controls]], seconds: float, seed: int = 0,
               bpm: float = 120.0) -> list[tuple[float, float, int]]:
    """(start s, end s, pitch) of an offline take under a timeline of (time, controls)."""
    gen = DCRNNGenerator(model, schedule[0][1], seed=seed, bpm=bpm)
    for t, controls in schedule[1:]:
        gen.timeline.set(t, controls)
    sounding: dict[int, float] = {}
    notes = []
    while gen.time < seconds:
        for t, _, (status, pitch, velocity) in gen.step():
            if status & 0xF0 == 0x90:
                sounding[pitch] = t
            elif pitch in sounding:
                notes.append((sounding.pop(pitch), t, pitch))
    notes += [(s, gen.time, p) for p, s in sounding.items()]
    return sorted(notes)


def span_features(notes, a: float, b: float, steps_per_bar: int, step_seconds: float) -> np.ndarray:
    """Rate, register, duration and pitch classes (as the acceptance check), plus where in the bar
    the onsets fall (the rhythm), of the notes starting in [a, b)."""
    sel = [n for n in notes if a <= n[0] < b]
    if not sel:
        return np.zeros(15 + steps_per_bar)
    pcs = np.bincount([n[2] % 12 for n in sel], minlength=12) / len(sel)
    slots = np.bincount([int(round(n[0] / step_seconds)) % steps_per_bar for n in sel], minlength=steps_per_bar)
    return np.concatenate([[len(sel) / (b - a) / 10, np.mean([n[2] for n in sel]) / 60,
                            np.mean([n[1] - n[0] for n in sel])], pcs, slots / len(sel)])


def controllability(model, settings: int = 5, hold: float = 8.0, seed: int = 3) -> dict:
    """Five z settings, played in order twice in one take: the spread of per-setting features
    between settings over the spread between the two plays of one setting (all features, and the
    rhythm alone); and whether a second take with the same seed repeats every note."""
    c = model.config
    rng = np.random.default_rng(11)
    zs = [tuple(float(x) for x in rng.uniform(-1, 1, 8)) for _ in range(settings)]
    schedule = [(k * hold, Controls(z=zs[k % settings])) for k in range(2 * settings)]
    notes = take_notes(model, schedule, 2 * settings * hold, seed)
    steps_per_bar = c.steps_per_beat * c.beats_per_bar
    step_seconds = 60.0 / 120.0 / c.steps_per_beat
    feats = np.array([span_features(notes, t + 1.0, t + hold, steps_per_bar, step_seconds) for t, _ in schedule])
    out = {"settings": settings, "notes": len(notes),
           "same_seed_identical": take_notes(model, schedule, 2 * settings * hold, seed) == notes}
    for name, cols in (("all", slice(None)), ("rhythm", slice(15, None))):
        f = feats[:, cols]
        within = np.mean([np.linalg.norm(f[i] - f[i + settings]) for i in range(settings)])
        between = np.mean([np.linalg.norm(f[i] - f[j]) for i in range(settings) for j in range(i + 1, settings)])
        out[f"ratio_{name}"] = round(float(between / max(within, 1e-9)), 2)
    return out


def heard_after(model, changes: int = 20, seed: int = 5) -> list[float]:
    """Seconds from a z change to the first note that differs from the take without it."""
    rng = np.random.default_rng(seed)
    delays = []
    for k in range(changes):
        before = Controls(z=tuple(float(x) for x in rng.uniform(-1, 1, 8)))
        after = Controls(z=tuple(float(x) for x in rng.uniform(-1, 1, 8)))
        t = float(rng.uniform(4.0, 8.0))
        plain = take_notes(model, [(0.0, before)], t + 4.0, seed + k)
        changed = take_notes(model, [(0.0, before), (t, after)], t + 4.0, seed + k)
        diff = [n[0] for n in set(changed) ^ set(plain) if n[0] >= t]
        if diff:
            delays.append(min(diff) - t)
    return delays


def notes_to_windows(notes, model, bars: int, step_seconds: float) -> np.ndarray:
    """Notes -> binary (sounding, onset) windows of ``bars`` bars, for the roll metrics."""
    c = model.config
    steps = bars * c.steps_per_beat * c.beats_per_bar
    end = max((n[1] for n in notes), default=0.0)
    frames = int(end / step_seconds) // steps * steps
    roll = np.zeros((2, max(frames, steps), c.pitches), dtype=np.float32)
    for s, e, p in notes:
        a, b = int(round(s / step_seconds)), int(round(e / step_seconds))
        if a < frames:
            roll[0, a:max(b, a + 1), p - c.low_pitch] = 1.0
            roll[1, a, p - c.low_pitch] = 1.0
    return roll[:, :frames].reshape(2, -1, steps, c.pitches).transpose(1, 0, 2, 3)


def dcrnn_bench(model, data: str | None = None, seconds: float = 20.0, log=print) -> dict:
    """The DCRNN's numbers: time per bar, z-change latency (engine rollback, and until the music
    differs), MuseGAN metrics of live output vs held-out real segments, controllability."""
    from livegen.engine.bench import _pct, live_run
    from livegen.train.dcrnn import WindowSampler, load_rolls, roll_metrics

    c = model.config
    steps_per_bar = c.steps_per_beat * c.beats_per_bar
    log("bench dcrnn: time per bar")
    gen = DCRNNGenerator(model, Controls(z=(0.0,) * 8), seed=1)
    bar_times = []
    for _ in range(200):
        t0 = time.perf_counter()
        for _ in range(steps_per_bar):
            gen.step()
        bar_times.append(time.perf_counter() - t0)
    log("bench dcrnn: live engine run with a z change every 0.25 s")
    live = live_run(model, seconds, log, Controls(z=(0.0,) * 8),
                    lambda rng: Controls(z=tuple(float(x) for x in rng.uniform(-1, 1, 8))))
    rng = np.random.default_rng(7)
    log("bench dcrnn: when a z change is heard, metrics, controllability")
    step_seconds = 60.0 / 120.0 / c.steps_per_beat
    generated = []
    for k in range(16):  # 16 takes of 8 bars, each with its own theme and a z per 2 bars
        schedule = [(4.0 * j, Controls(z=tuple(float(x) for x in rng.uniform(-1, 1, 8)), theme=f"bench{k}"))
                    for j in range(4)]
        generated.append(notes_to_windows(take_notes(model, schedule, 16.0, seed=k), model, 2, step_seconds))
    result = {
        "bar_ms": _pct(bar_times),
        "z_to_midi_ms": live["control_to_midi_ms"],
        "z_heard_after_ms": _pct(heard_after(model)),
        "step_ms_at_120_bpm": round(step_seconds * 1000, 1),
        "changes": live["changes"], "late_rollbacks": live["late_rollbacks"],
        "metrics_generated": roll_metrics(np.concatenate(generated), steps_per_bar),
        "controllability": controllability(model),
    }
    if data:
        _, held = load_rolls(data, c, log=lambda _: None, held_out_only=True)
        result["metrics_real"] = roll_metrics(WindowSampler(held, c.segment_steps, 0, transpose=0).fixed(256),
                                               steps_per_bar)
    return result
