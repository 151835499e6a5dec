"""``livegen bench``: the engine's numbers, each as p50/p99/max in milliseconds.

- step_ms: one token of live inference (numpy) incl. sampling and decoding; step_ms_torch the
  same model step through torch (the torch module of the same checkpoint), the path it replaced.
- realtime_factor: seconds of music generated per second of one core.
- control_to_midi_ms / timing_error_ms: a real engine run (output clock process, recording)
  with a control change every 0.25 s; latency is from a change's arrival until every message
  leaving the port was generated under it; timing error is send time minus deadline.
- fidelity: pitch and density swept over 7 levels each (20 s of music per level), Spearman rho
  between commanded and realised mean pitch / note rate; with the engine's steering (what
  performers get) and, for reference, the model's conditioning alone.
- layers (``--parts layers``): the same live run with the DCRNN playing beside the Char-RNN on
  channel 2, the changes alternating between the camera's pitch/density and the armband's z.

The live run under load (``--load N``) is in ``load.py``; the text report in ``report.py``.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from livegen.engine.charrnn_live import CharRNNGenerator, Steering
from livegen.engine.engine import Engine, EngineSettings, Layer, OutputChoice
from livegen.models import checkpoint
from livegen.music.conditioning import Controls

LEVELS = (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)


def _pct(values, scale=1000.0) -> dict:
    a = np.asarray(values, dtype=np.float64) * scale
    if not len(a):
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4)}


def realised(model, controls: Controls, seconds: float, seed: int, steering: bool, skip: float = 2.0):
    """(mean pitch, notes per second) of ``seconds`` of music generated offline under fixed controls."""
    gen = CharRNNGenerator(model, controls, seed=seed, steering=Steering(enabled=steering))
    onsets = []
    while gen.time < seconds + skip:
        for t, _, msg in gen.step():
            if msg[0] & 0xF0 == 0x90 and msg[2] > 0 and t >= skip:
                onsets.append(msg[1])
    return (float(np.mean(onsets)) if onsets else float("nan")), len(onsets) / seconds


def fidelity(model, steering: bool, seconds: float = 20.0, seeds=(1, 2)) -> dict:
    from scipy.stats import spearmanr  # scipy.stats takes 2 s to import: only the fidelity numbers use it

    pitch_real = [np.nanmean([realised(model, Controls(pitch=p), seconds, s, steering)[0] for s in seeds])
                  for p in LEVELS]
    rate_real = [np.mean([realised(model, Controls(density=d), seconds, s, steering)[1] for s in seeds])
                 for d in LEVELS]
    return {"pitch_rho": round(float(spearmanr(LEVELS, pitch_real).statistic), 3),
            "density_rho": round(float(spearmanr(LEVELS, rate_real).statistic), 3),
            "pitch_levels": [[lv, round(float(x), 1)] for lv, x in zip(LEVELS, pitch_real)],
            "density_levels": [[lv, round(float(x), 2)] for lv, x in zip(LEVELS, rate_real)]}


def step_times(model, count: int = 3000) -> tuple[list[float], float]:
    """Per-token times, and music seconds per wall second over the same run."""
    gen = CharRNNGenerator(model, Controls(), seed=3)
    times = []
    t_start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        gen.step()
        times.append(time.perf_counter() - t0)
    return times, gen.time / (time.perf_counter() - t_start)


def torch_step_times(path, count: int = 500) -> list[float]:
    """The same single step of the checkpoint at ``path`` through torch (1 thread, oneDNN off), for
    comparison with the numpy path."""
    import torch  # only this comparison runs torch: the live path is numpy

    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    model, _ = checkpoint.load(path)
    cond = torch.from_numpy(Controls().vector())[None]
    state = model.initial_state(cond)
    token = torch.tensor([0])
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        logits, state = model.step(token, cond, state)
        token = torch.multinomial(torch.softmax(logits, -1), 1)[:, 0]
        times.append(time.perf_counter() - t0)
    return times


def random_pitch_and_density(rng: np.random.Generator) -> Controls:
    return Controls(pitch=float(rng.uniform(0.1, 0.9)), density=float(rng.uniform(0.2, 0.9)))


def live_run(model, seconds: float, log, initial: Controls = Controls(), change=random_pitch_and_density,
             layers: list[Layer] = ()) -> dict:
    """A real engine run: clock process, recording, a control change (``change(rng)``) every 0.25 s."""
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(model, OutputChoice(), EngineSettings(seed=5), initial,
                        record=os.path.join(tmp, "bench.mid"), log=log, layers=layers)
        engine.start()
        while engine.now() < 0:
            time.sleep(0.01)
        next_change = 0.5
        while engine.now() < seconds and engine.running:
            if engine.now() >= next_change:
                engine.set_controls(change(rng))
                next_change += 0.25
            time.sleep(0.002)
        stats = engine.stop()
    return {"control_to_midi_ms": _pct(stats.control_to_midi), "timing_error_ms": _pct(stats.timing_error),
            "changes": len(stats.control_to_midi), "messages": stats.sent,
            "late_rollbacks": stats.late_rollbacks, "late_controls": stats.late_controls,
            "late_arrivals": stats.late_arrivals, "late_dropped": stats.late_dropped,
            "lookahead_ms_without_rollback": EngineSettings().lookahead * 1000}


def layered_run(model, dcrnn, seconds: float, log) -> dict:
    """``live_run`` with the DCRNN beside the Char-RNN: camera and armband changes take turns."""
    turn = [0]

    def camera_or_armband(rng: np.random.Generator) -> Controls:
        turn[0] += 1
        hand = random_pitch_and_density(rng)
        if turn[0] % 2:
            return hand
        return Controls(pitch=hand.pitch, density=hand.density, z=tuple(float(v) for v in rng.uniform(-1, 1, 8)))

    return live_run(model, seconds, log, change=camera_or_armband, layers=[Layer(dcrnn, OutputChoice(), channel=1)])


def run_bench(model, path, seconds: float = 20.0, log=print) -> dict:
    """The engine's numbers for ``model``, the live runtime of the Char-RNN checkpoint at ``path``."""
    log("bench: per-step inference and throughput")
    steps, factor = step_times(model)
    torch_steps = torch_step_times(path)
    log("bench: live engine run with control changes")
    live = live_run(model, seconds, log)
    log("bench: control fidelity sweeps")
    steered = fidelity(model, steering=True)
    model_only = fidelity(model, steering=False, seeds=(1,))
    return {
        "control_to_midi_ms": live["control_to_midi_ms"],
        "timing_error_ms": live["timing_error_ms"],
        "step_ms": _pct(steps),
        "step_ms_torch": _pct(torch_steps),
        "realtime_factor": round(factor, 1),
        "fidelity": steered,
        "fidelity_model_only": model_only,
        "live_run": {k: v for k, v in live.items() if not k.endswith("_ms") or k.startswith("lookahead")},
        "targets": {"control_to_midi_p99_ms": 10, "timing_error_p99_ms": 1, "realtime_factor": 20, "rho": 0.9},
    }
