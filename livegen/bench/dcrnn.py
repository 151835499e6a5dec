"""``livegen bench --parts dcrnn``: the DCRNN's numbers: time per bar, z-change latency (engine
rollback, and until the music differs), MuseGAN metrics of live output vs held-out real
segments, controllability.
"""
from __future__ import annotations

import time

import numpy as np

from livegen.bench.engine import _pct, live_run
from livegen.engine.dcrnn_live import DCRNNGenerator
from livegen.music.conditioning import Controls
from livegen.train.dcrnn import WindowSampler, load_rolls, roll_metrics


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
