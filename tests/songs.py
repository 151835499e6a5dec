"""Small songs the tests write themselves with mido, so that preparing, training and evaluating
run on a fresh clone without ../shared/data: a melody in eighths over block chords, one bar per
chord, in a key and at a tempo drawn from a seed; optionally with a POP909-style
``beat_midi.txt`` beside it (beat time, beat parity, downbeat flag)."""
from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

TICKS = 480
MAJOR = (0, 2, 4, 5, 7, 9, 11)


def write_song(path: Path, seed: int, beats: int = 160, beat_file: bool = False) -> Path:
    """A two-track type-1 MIDI file of ``beats`` beats of 4/4 (a melody and chords) at ``path``."""
    rng = np.random.default_rng(seed)
    tonic = 60 + int(rng.integers(-5, 6))
    bpm = float(rng.choice([84, 96, 108, 120, 132]))
    scale = [tonic + 12 * octave + step for octave in (-1, 0, 1) for step in MAJOR]
    melody: list[tuple[int, int, int, int]] = []  # (start tick, length, pitch, velocity)
    degree = 7
    for eighth in range(beats * 2):
        if rng.random() < 0.15:
            continue  # a rest
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(scale) - 1))
        melody.append((eighth * TICKS // 2, TICKS // 2 - 10, scale[degree], int(rng.integers(60, 110))))
    chords = []
    for bar in range(beats // 4):
        root = tonic - 12 + MAJOR[int(rng.choice([0, 3, 4, 5]))]
        chords += [(bar * 4 * TICKS, 4 * TICKS - 20, root + step, 70) for step in (0, 4, 7)]

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS)
    for notes, program, tempo in ((melody, 0, True), (chords, 48, False)):
        track = mido.MidiTrack()
        if tempo:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
        track.append(mido.Message("program_change", program=program))
        events = sorted([(s, 1, p, v) for s, _, p, v in notes] + [(s + d, 0, p, 0) for s, d, p, _ in notes])
        now = 0
        for tick, on, pitch, velocity in events:
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - now))
            now = tick
        mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    if beat_file:
        seconds = 60.0 / bpm
        (path.parent / "beat_midi.txt").write_text(
            "".join(f"{i * seconds:.6f} {float(i % 2)} {float(i % 4 == 0)}\n" for i in range(beats)))
    return path


def write_songs(folder: Path, count: int, first_seed: int = 0, beats: int = 160, pop909: bool = False) -> Path:
    """``count`` songs in ``folder``: as ``NNN.mid``, or with ``pop909`` each in a folder of its own
    with its beat annotations, as POP909 lays them out."""
    for i in range(count):
        name = f"{first_seed + i + 1:03d}"
        path = folder / name / f"{name}.mid" if pop909 else folder / f"{name}.mid"
        write_song(path, first_seed + i, beats, beat_file=pop909)
    return folder
