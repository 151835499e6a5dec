"""The commentary's cost: wall time of one shown sentence (measure the window, constrained decoding
of a batch of candidates, the truth check and rerank) on one core, as the live worker pays it in
its own thread, and the CPU time it took (what it costs whatever else the machine runs). Target: at
most 150 ms.

Takes: the first files of a MIDI folder (POP909) as played and as the contrasting takes ``livegen
eval --midi`` judges; without the folder, scales written here, slow and soft and fast and loud.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from livegen.commentary.attributes import WINDOW_SECONDS, read_midi_file
from livegen.commentary.commentator import Commentator
from livegen.commentary.truth import TAKES, variant
from livegen.music.events import Note

TARGET_MS = 150.0
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@contextmanager
def one_core():
    """Pin this process to one CPU while measuring (where the OS allows), so BLAS threads cannot help."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _scale_takes() -> list[tuple[list[Note], tuple[int, ...]]]:
    pitches = [60, 62, 64, 65, 67, 69, 71, 72] * 6
    slow = [Note(i * 0.8, i * 0.8 + 0.7, p - 12, 40) for i, p in enumerate(pitches)]
    fast = [Note(i * 0.15, i * 0.15 + 0.12, p + 12, 110) for i, p in enumerate(pitches * 3)]
    return [(slow, (0,)), (fast, (0,))]


def commentary_bench(data: str | None = None) -> dict:
    """``measure`` in a fresh process whose BLAS has one thread (set before numpy loads: a BLAS
    thread pool pinned to one core would spin against itself)."""
    code = f"import json; from livegen.bench.commentary import measure; print(json.dumps(measure({data!r})))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **ONE_THREAD},
                         timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"the commentary bench failed: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure(data: str | None = None, files: int = 2, per_take: int = 6, seed: int = 0) -> dict:
    """Median, p95 and max ms per shown sentence on one core (wall and CPU), and how many were
    written by the model."""
    takes = []
    paths = sorted(Path(data).rglob("*.mid"))[:files] if data else []
    for path in paths:
        notes, programs, _ = read_midi_file(str(path))
        takes += [(variant(notes, stretch, velocity, shift), tuple(programs)) for _, stretch, velocity, shift in TAKES]
    takes = [(notes, programs) for notes, programs in takes if notes] or _scale_takes()
    commentator = Commentator(seed=seed)
    times, cpu, written = [], [], 0
    with one_core():
        commentator.comment(takes[0][0], None, takes[0][1])  # first use: caches warm, not counted
        for notes, programs in takes:
            start, end = notes[0].start, max(n.end for n in notes)
            for k in range(per_take):
                at = start + min(WINDOW_SECONDS, end - start) + (end - start) * k / per_take
                t0, c0 = time.perf_counter(), time.process_time()
                c = commentator.comment(notes, min(at, end), programs)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                written += c.written
    def spread(ms):
        return {"p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95)), "max": float(np.max(ms))}

    return {"ms_per_sentence": spread(times), "cpu_ms_per_sentence": spread(cpu),
            "sentences": len(times), "written_by_model": written, "target_ms": TARGET_MS,
            "takes": f"{len(paths)} files x {len(TAKES)} takes" if paths else "generated scales"}
