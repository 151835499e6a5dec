"""``livegen bench --load N``: the stage's conditions, N busy processes beside the engine (a DAW,
a browser, a video call): the live run of ``engine.py``, and a scripted DCRNN take (z changing
every 2 s, a fixed seed) played quiet and then loaded. For each: timing, late messages,
re-triggered and unended notes in the recording, and whether the loaded take is note for note
the quiet one.
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

from livegen.bench.engine import _pct, live_run
from livegen.engine.engine import Engine, EngineSettings, OutputChoice
from livegen.sensors.script import ScriptControls


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
    import mido  # reading a recording back: only the load bench does

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
