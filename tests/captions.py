"""MusicCaps-style captions the tests write themselves, so the commentary trains on a fresh
clone without ../shared/data: each clip's aspect list and a caption of several sentences drawn
from it (genre, mood, tempo, instruments, mode, dynamics), seeded."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

GENRES = ("rock", "jazz", "pop", "folk", "classical", "electronic")
MOODS = ("sad", "happy", "mellow", "energetic", "calm", "dark")
TEMPOS = ("slow tempo", "medium tempo", "fast tempo")
INSTRUMENTS = ("piano", "acoustic guitar", "electric guitar", "drums", "bass", "strings", "violin", "synth")
MODES = ("minor key", "major key")
LOUDNESS = ("loud", "soft", "quiet")


def write_captions(path: Path, count: int = 120, seed: int = 0) -> Path:
    """``count`` rows of ytid, aspect_list and caption at ``path``, as MusicCaps' CSV has them."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        genre, mood, tempo, mode, loudness = (str(rng.choice(c)) for c in (GENRES, MOODS, TEMPOS, MODES, LOUDNESS))
        first, second = (str(x) for x in rng.choice(INSTRUMENTS, 2, replace=False))
        aspects = [f"{genre} song", first, second, mood, tempo, mode, loudness]
        sentences = [f"This is a {mood} {genre} song played on {first} with {second}.",
                     f"The {first} plays a melody in a {mode} at a {tempo}.",
                     f"It sounds {loudness} and {mood}.", f"The {second} keeps a steady rhythm."]
        order = rng.permutation(len(sentences) - 1) + 1
        caption = " ".join([sentences[0]] + [sentences[j] for j in order[: int(rng.integers(1, 4))]])
        rows.append({"ytid": f"clip{seed}-{i:04d}", "aspect_list": repr(aspects), "caption": caption})
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["ytid", "aspect_list", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return path
