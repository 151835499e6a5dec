"""``livegen bench --parts music``: is what the models play structured like music?

Six figures of a take (``music_stats``), as the issue on musical structure defines them:

- in_scale: share of notes in the best-fitting diatonic scale (any of its 12 rotations);
- grid_kappa: share of onsets within 30 ms of one 16th grid (the best tempo in 60-180 bpm, 0.5
  bpm apart, and phase, 12 tried), chance-corrected;
- rec8: share of 8-note pitch patterns (onsets in time order, a chord low to high) that occur
  more than once;
- stutter: notes that start within 15 ms of where a note of the same pitch ended;
- long / short: notes held >= 4 s / shorter than 0.1 s;
- spread: the standard deviation of the pitches, in semitones (a melody, an accompaniment and a
  bass spread far wider than one cluster).

Takes are rendered offline, faster than real time, but through what a live take goes through:
the generator stepped over a control timeline, messages at or after the end dropped, then the
clock's ``NoteGuard`` (re-triggers, stray note-offs, the note-length limit) and the notes still
sounding ended at the end, as the recorder writes them. The same seed and timeline give the same
messages live (the engine's determinism contract), so these are the notes ``perform --record``
writes.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np

from livegen.engine.engine import EngineSettings, make_generator
from livegen.engine.note_guard import NoteGuard
from livegen.music.conditioning import Controls, key_histogram

DIATONIC = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
GRID_TOLERANCE = 0.03  # s an onset may sit off the grid
GRID_BPMS = np.arange(60.0, 180.01, 0.5)
GRID_PHASES = 12
STUTTER_SECONDS = 0.015
LONG_SECONDS, SHORT_SECONDS = 4.0, 0.1
PATTERN = 8  # notes in a recurring pattern

Note = tuple[float, float, int]  # (start s, end s, pitch)


def midi_notes(path: str | Path) -> list[Note]:
    """The notes of a MIDI file (drums left out), a note-on of a sounding key ending the old note."""
    t, on, out = 0.0, {}, []
    for msg in mido.MidiFile(str(path)):
        t += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity:
            if key in on:
                out.append((on.pop(key), t, msg.note))
            on[key] = t
        elif key in on:
            out.append((on.pop(key), t, msg.note))
    return sorted(out)


def excerpt(notes: list[Note], start: float, seconds: float) -> list[Note]:
    """The notes that start in [start, start + seconds)."""
    return [n for n in notes if start <= n[0] < start + seconds]


def in_scale(pitches: np.ndarray) -> float:
    counts = np.bincount(pitches % 12, minlength=12)
    return float(max(counts[np.roll(DIATONIC, k)].sum() for k in range(12)) / max(len(pitches), 1))


def grid_kappa(onsets: np.ndarray) -> float:
    best = 0.0
    for bpm in GRID_BPMS:
        step = 60.0 / bpm / 4
        for phase in np.linspace(0.0, step, GRID_PHASES, endpoint=False):
            off = np.abs(((onsets - phase + step / 2) % step) - step / 2)
            best = max(best, float(np.mean(off <= GRID_TOLERANCE)))
    chance = min(1.0, 2 * GRID_TOLERANCE / (60.0 / GRID_BPMS[-1] / 4))
    return (best - chance) / (1 - chance)


def recurrence(onsets: np.ndarray, pitches: np.ndarray, length: int = PATTERN) -> float:
    seq = [int(x) for x in pitches[np.lexsort((pitches, np.round(onsets, 2)))]]
    grams = [tuple(seq[i:i + length]) for i in range(len(seq) - length + 1)]
    counts = Counter(grams)
    return sum(1 for g in grams if counts[g] > 1) / max(len(grams), 1)


def stutter(notes: list[Note]) -> float:
    ends: dict[int, list[float]] = {}
    hits = 0
    for start, end, pitch in notes:
        if any(abs(start - e) <= STUTTER_SECONDS for e in ends.get(pitch, ())):
            hits += 1
        ends.setdefault(pitch, []).append(end)
    return hits / max(len(notes), 1)


def music_stats(notes: list[Note]) -> dict:
    """The figures of one take's (or excerpt's) notes, sorted by start."""
    if not notes:
        return {"notes": 0, "in_scale": 0.0, "grid_kappa": 0.0, "rec8": 0.0, "stutter": 0.0, "long": 0.0,
                "short": 0.0, "spread": 0.0}
    start = np.array([n[0] for n in notes])
    dur = np.array([n[1] for n in notes]) - start
    pitches = np.array([n[2] for n in notes])
    return {"notes": len(notes), "in_scale": round(in_scale(pitches), 3), "grid_kappa": round(grid_kappa(start), 3),
            "rec8": round(recurrence(start, pitches), 3), "stutter": round(stutter(notes), 3),
            "long": round(float(np.mean(dur >= LONG_SECONDS)), 4), "short": round(float(np.mean(dur < SHORT_SECONDS)), 3),
            "spread": round(float(np.std(pitches)), 2)}


def played_notes(messages: list[tuple[float, int, list[int]]], end: float, max_seconds: float) -> list[Note]:
    """The notes a take's messages (time, step, bytes) sound, through the clock's note guard, up to ``end``."""
    guard = NoteGuard([max_seconds])
    sounding: dict[int, float] = {}
    notes: list[Note] = []

    def send(t: float, msg: list[int]) -> None:
        if msg[0] & 0xF0 == 0x90 and msg[2] > 0:
            sounding[msg[1]] = t
        elif msg[1] in sounding:
            notes.append((sounding.pop(msg[1]), t, msg[1]))

    queue = [(t, i, step, msg) for i, (t, step, msg) in enumerate(messages) if t < end]
    heapq.heapify(queue)
    while queue:
        t, _, step, msg = heapq.heappop(queue)
        for due, _, _, off in guard.expire(t):
            send(due, off)
        for out in guard.admit(t, 0, 0, step, msg):
            send(t, out)
    for due, _, _, off in guard.expire(end):
        send(due, off)
    notes += [(s, end, p) for p, s in sounding.items()]
    return sorted(notes)


def render(generator, seconds: float, max_seconds: float = 4.0) -> list[Note]:
    """The notes of a ``seconds``-long take of a live generator (its timeline already set)."""
    messages = []
    while generator.time < seconds:
        messages += generator.step()
    return played_notes(messages, seconds, max_seconds)


def mean_stats(takes: list[dict]) -> dict:
    keys = [k for k in takes[0] if k != "notes"]
    out = {k: round(float(np.mean([t[k] for t in takes])), 4) for k in keys}
    out["notes"] = int(np.mean([t["notes"] for t in takes]))
    out["takes"] = len(takes)
    return out


def real_stats(folder: str, seconds: float, limit: int, log=print) -> dict:
    """The figures of ``seconds``-long excerpts (from each file's first note) of up to ``limit`` MIDI
    files in ``folder``, spread evenly over its sorted files; spread as for a take at one level."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        return {}
    chosen = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(limit, len(files)))]
    log(f"bench: music of {len(chosen)} of the {len(files)} MIDI files in {folder}, {seconds:g}-s excerpts")
    takes = []
    for path in chosen:
        try:
            notes = midi_notes(path)
        except (OSError, ValueError, EOFError):
            continue
        if notes:
            takes.append(music_stats(excerpt(notes, notes[0][0], seconds)))
    return mean_stats(takes) if takes else {}


REGISTER_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
Z_HOLD = 8.0  # s each z of the "z moving" takes holds


def _takes(make, seconds: float, seeds: int) -> dict:
    return mean_stats([music_stats(render(make(seed), seconds)) for seed in range(1, seeds + 1)])


def music_bench(charrnn, dcrnn, timing: str = "grid", seconds: float = 60.0, seeds: int = 2, real: str | None = None,
                real_limit: int = 40, key: str = "C major", log=print) -> dict:
    """The figures for the Char-RNN (default controls; keyed; at each register level) and the DCRNN
    (a fixed z; z moving every ``Z_HOLD`` s), ``seeds`` takes of ``seconds`` each, and for the real
    folder ``real``; the engine's settings are ``perform``'s defaults, with the Char-RNN's ``timing``."""
    settings = EngineSettings(timing=timing)
    def generator(model, controls, seed, changes=()):
        gen = make_generator(model, controls, replace(settings, seed=seed))
        for t, c in changes:
            gen.timeline.set(t, c)
        return gen

    def z_moving(seed):
        rng = np.random.default_rng(1000 + seed)
        zs = [Controls(z=tuple(float(x) for x in rng.uniform(-1, 1, 8))) for _ in range(int(seconds // Z_HOLD) + 1)]
        return generator(dcrnn, zs[0], seed, [(k * Z_HOLD, z) for k, z in enumerate(zs) if k])

    out = {"seconds": seconds, "seeds": seeds, "timing": settings.timing}
    log(f"bench: music, {seeds} takes of {seconds:g} s each, Char-RNN ({settings.timing} timing) and DCRNN")
    out["charrnn"] = _takes(lambda s: generator(charrnn, Controls(), s), seconds, seeds)
    keyed = Controls(histogram=tuple(key_histogram(key)))
    out["charrnn_keyed"] = {"key": key, **_takes(lambda s: generator(charrnn, keyed, s), seconds, seeds)}
    out["charrnn_spread_by_register"] = {
        str(level): _takes(lambda s: generator(charrnn, Controls(pitch=level), s), seconds, seeds)["spread"]
        for level in REGISTER_LEVELS}
    out["dcrnn_fixed_z"] = _takes(lambda s: generator(dcrnn, Controls(), s), seconds, seeds)
    out["dcrnn_z_moving"] = _takes(z_moving, seconds, seeds)
    if real:
        out["real"] = {"folder": real, **real_stats(real, seconds, real_limit, log)}
    return out


FIGURES = (("in_scale", "in the best scale"), ("grid_kappa", "16th-grid kappa"), ("rec8", "8-note recurrence"),
           ("stutter", "stutter"), ("long", "notes >= 4 s"), ("short", "notes < 0.1 s"), ("spread", "pitch spread (st)"),
           ("notes", "notes per take"))
COLUMNS = (("charrnn", "Char-RNN"), ("charrnn_keyed", "keyed"), ("dcrnn_fixed_z", "DCRNN z fixed"),
           ("dcrnn_z_moving", "DCRNN z moving"), ("real", "real"))


def music_rows(r: dict) -> list[str]:
    """The figures as a text table, a column per kind of take."""
    cols = [(k, name) for k, name in COLUMNS if r.get(k)]
    rows = [f"music: {r['seeds']} takes of {r['seconds']:g} s, Char-RNN timing {r['timing']}"
            + (f"; real: {r['real'].get('takes', 0)} excerpts of {r['real']['folder']}" if r.get("real") else ""),
            f"{'':<22}" + "".join(f"{name:>16}" for _, name in cols)]
    for key, name in FIGURES:
        rows.append(f"{name:<22}" + "".join(f"{r[k].get(key, float('nan')):>16g}" for k, _ in cols))
    spread = r["charrnn_spread_by_register"]
    rows.append(f"{'Char-RNN spread by register':<22} " + ", ".join(f"{lv}: {s:g}" for lv, s in spread.items()))
    return rows
