"""``livegen bench``: the engine's numbers, each as p50/p99/max in milliseconds.

- step_ms: one token of live inference (numpy) incl. sampling and decoding; step_ms_torch the
  same model step through torch, the path it replaced.
- realtime_factor: seconds of music generated per second of one core.
- control_to_midi_ms / timing_error_ms: a real engine run (output clock process, recording)
  with a control change every 0.25 s; latency is from a change's arrival until every message
  leaving the port was generated under it; timing error is send time minus deadline.
- fidelity: pitch and density swept over 7 levels each (20 s of music per level), Spearman rho
  between commanded and realised mean pitch / note rate; with the engine's steering (what
  performers get) and, for reference, the model's conditioning alone.
- layers (``--parts layers``): the same live run with the DCRNN playing beside the Char-RNN on
  channel 2, the changes alternating between the camera's pitch/density and the armband's z.
- load (``--load N``): the stage's conditions, N busy processes beside the engine (a DAW, a
  browser, a video call): the live run above, and a scripted DCRNN take (z changing every 2 s,
  a fixed seed) played quiet and then loaded. For each: timing, late messages, re-triggered and
  unended notes in the recording, and whether the loaded take is note for note the quiet one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import numpy as np

from livegen.engine.engine import Engine, EngineSettings, Layer, OutputChoice
from livegen.engine.generator import Generator, Steering
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
    gen = Generator(model, controls, seed=seed, steering=Steering(enabled=steering))
    onsets = []
    while gen.time < seconds + skip:
        for t, _, msg in gen.step():
            if msg[0] & 0xF0 == 0x90 and msg[2] > 0 and t >= skip:
                onsets.append(msg[1])
    return (float(np.mean(onsets)) if onsets else float("nan")), len(onsets) / seconds


def fidelity(model, steering: bool, seconds: float = 20.0, seeds=(1, 2)) -> dict:
    from scipy.stats import spearmanr

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
    gen = Generator(model, Controls(), seed=3)
    times = []
    t_start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        gen.step()
        times.append(time.perf_counter() - t0)
    return times, gen.time / (time.perf_counter() - t_start)


def torch_step_times(model, count: int = 500) -> list[float]:
    """The same single step through torch (1 thread, oneDNN off), for comparison with the numpy path."""
    import torch

    torch.backends.mkldnn.enabled = False
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


@contextmanager
def busy_processes(count: int):
    """``count`` processes spinning at normal priority for the duration of the block."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0.0)
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def take_notes(path: str) -> list[tuple[float, int, int, int]]:
    """(seconds, channel, note, velocity; 0 for a note-off) of every note message in a recording."""
    import mido

    t, out = 0.0, []
    for msg in mido.MidiFile(path):
        t += msg.time
        if msg.type in ("note_on", "note_off"):
            out.append((round(t, 3), msg.channel, msg.note, msg.velocity if msg.type == "note_on" else 0))
    return out


def note_integrity(notes) -> dict:
    """Re-triggered keys (a note-on on a sounding key) and notes never ended, as a synth sees them."""
    sounding: dict[tuple[int, int], int] = {}
    retriggers = ons = 0
    for _, channel, note, velocity in notes:
        key = (channel, note)
        if velocity:
            ons += 1
            retriggers += sounding.get(key, 0) > 0
            sounding[key] = sounding.get(key, 0) + 1
        elif sounding.get(key):
            sounding[key] -= 1
    return {"note_ons": ons, "retriggers": retriggers, "unended": sum(sounding.values())}


Z_SCRIPT_SECONDS = 2.0  # one z change every this many seconds of the scripted DCRNN take


def scripted_dcrnn_take(dcrnn, seconds: float, folder: str, name: str, log) -> dict:
    """A DCRNN take steered by a z script with a fixed seed, recorded: its notes and timing."""
    from livegen.sensors.script import ScriptControls

    rng = np.random.default_rng(11)
    script = os.path.join(folder, "z.jsonl")
    with open(script, "w") as f:
        for k in range(int(seconds / Z_SCRIPT_SECONDS) + 1):
            f.write(json.dumps({"t": k * Z_SCRIPT_SECONDS, "z": [round(float(v), 2) for v in rng.uniform(-1, 1, 8)]})
                    + "\n")
    source = ScriptControls(script)
    record = os.path.join(folder, f"{name}.mid")
    engine = Engine(dcrnn, OutputChoice(), EngineSettings(seed=3), source.initial(), record=record, log=log,
                    end=seconds)
    engine.start()
    source.start(engine.set_controls, engine.now)
    try:
        while engine.now() < seconds + 0.02 and engine.running:
            time.sleep(0.01)
    finally:
        source.stop()
        stats = engine.stop()
    notes = take_notes(record)
    return {"timing_error_ms": _pct(stats.timing_error), "late_dropped": stats.late_dropped,
            "late_rollbacks": stats.late_rollbacks, "clock_restarts": stats.clock_restarts,
            **note_integrity(notes), "notes": notes}


def load_run(model, dcrnn, busy: int, seconds: float, log) -> dict:
    """The live run and a scripted DCRNN take with ``busy`` processes beside them; the DCRNN take
    is played quiet first, and the loaded one must be the same notes."""
    with tempfile.TemporaryDirectory() as tmp:
        log("bench load: the scripted DCRNN take, quiet")
        quiet = scripted_dcrnn_take(dcrnn, seconds, tmp, "quiet", log)
        log(f"bench load: the same take and the live run with {busy} busy processes beside them")
        with busy_processes(busy):
            loaded = scripted_dcrnn_take(dcrnn, seconds, tmp, "loaded", log)
            live = live_run(model, seconds, log)
    a, b = quiet.pop("notes"), loaded.pop("notes")
    first_difference = next((x[0] for x, y in zip(a, b) if x != y), None if len(a) == len(b) else min(len(a), len(b)))
    return {"busy_processes": busy, "cores": os.cpu_count(),
            "live": {"timing_error_ms": live["timing_error_ms"], "control_to_midi_ms": live["control_to_midi_ms"],
                     "late_dropped": live["late_dropped"], "late_rollbacks": live["late_rollbacks"],
                     "late_controls": live["late_controls"]},
            "dcrnn_quiet": quiet, "dcrnn_loaded": loaded,
            "identical_to_quiet": a == b, "first_difference_s": first_difference}


def run_bench(model, seconds: float = 20.0, log=print) -> dict:
    import torch

    torch.set_num_threads(1)
    log("bench: per-step inference and throughput")
    steps, factor = step_times(model)
    torch_steps = torch_step_times(model)
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


def format_report(r: dict) -> str:
    def row(name, d):
        return f"{name:<22} p50 {d['p50']:8.3f}  p99 {d['p99']:8.3f}  max {d['max']:8.3f} ms"

    f, m = r["fidelity"], r["fidelity_model_only"]
    return "\n".join([
        row("control -> MIDI", r["control_to_midi_ms"]) + "   (target p99 <= 10; without rollback: "
        f"{r['live_run']['lookahead_ms_without_rollback']:.0f} ms)",
        row("timing error", r["timing_error_ms"]) + "   (target p99 <= 1)",
        row("inference step", r["step_ms"]),
        row("  same step in torch", r["step_ms_torch"]) + "   (1 thread, oneDNN off; for comparison)",
        f"{'throughput':<22} {r['realtime_factor']:.0f}x real time on one core (target >= 20)",
        f"{'fidelity':<22} pitch rho {f['pitch_rho']:.2f}, density rho {f['density_rho']:.2f} (target >= 0.9); "
        f"model conditioning alone: {m['pitch_rho']:.2f} / {m['density_rho']:.2f}",
        f"{'':<22} pitch levels {f['pitch_levels']}",
        f"{'':<22} density levels (notes/s) {f['density_levels']}",
    ] + _optional_rows(r))


def _optional_rows(r: dict) -> list[str]:
    rows = []
    panel = r.get("timing_error_ms_panel_open")
    if panel:
        t = panel["timing_error_ms"]
        rows.append(f"{'timing, panel open':<22} p50 {t['p50']:8.3f}  p99 {t['p99']:8.3f}  max {t['max']:8.3f} ms"
                    f"   (repainting at {panel['panel_hz']} Hz, window moved {panel['window_moves']} times)")
    load = r.get("load")
    if load:
        t, c, lv = load["live"]["timing_error_ms"], load["live"]["control_to_midi_ms"], load["live"]
        d, q = load["dcrnn_loaded"], load["dcrnn_quiet"]
        rows.append(f"{'loaded (' + str(load['busy_processes']) + ' busy)':<22} timing p50 {t['p50']:.3f} "
                    f"p99 {t['p99']:.3f} max {t['max']:.3f} ms, control -> MIDI p99 {c['p99']:.3f} ms, "
                    f"{lv['late_dropped']} late notes left out")
        rows.append(f"{'  DCRNN take, loaded':<22} timing p99 {d['timing_error_ms']['p99']:.3f} ms, "
                    f"{d['note_ons']} notes ({q['note_ons']} quiet), {d['retriggers']} re-triggers, "
                    f"{d['unended']} unended, {d['late_dropped']} late, same as quiet: {load['identical_to_quiet']}")
    layered = r.get("layers")
    if layered:
        c, t = layered["control_to_midi_ms"], layered["timing_error_ms"]
        rows.append(f"{'layers (+ DCRNN)':<22} control -> MIDI p50 {c['p50']:.3f} p99 {c['p99']:.3f} ms, timing "
                    f"p50 {t['p50']:.3f} p99 {t['p99']:.3f} ms, {layered['messages']} messages, "
                    f"{layered['late_arrivals']} late")
    for part in ("dcrnn", "clock"):
        numbers = r.get(part)
        if numbers:
            rows.append(f"{part:<22} " + ", ".join(f"{k} {v}" for k, v in numbers.items()
                                                   if not isinstance(v, dict))[:400])
            for k, v in numbers.items():
                if isinstance(v, dict):
                    rows.append(f"{'  ' + k:<22} {v}"[:300])
    emg = r.get("emg")
    if emg:
        from livegen.sensors.emg.bench import report_rows

        rows += report_rows(emg)
    camera = r.get("camera")
    if camera:
        for name, sizes in camera["fps"].items():
            text = ", ".join(f"{size} {fps if isinstance(fps, str) else f'{fps:.0f} fps'}" for size, fps in sizes.items())
            rows.append(f"{'camera ' + name:<22} {text}")
        for name, rate in camera.get("detection", {}).items():
            if isinstance(rate, dict):
                rows.append(f"{'  on real hands ' + name:<22} found a hand in {rate['detected']:.0%} of "
                            f"{camera['detection']['photos']} photos, on the hand in {rate['on_hand']:.0%}")
    return rows
