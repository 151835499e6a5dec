"""Training windows: notes -> augmented tokens + conditioning, and a cache of parsed corpora."""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen.music import conditioning, events
from livegen.music.corpus import Corpus, load_corpus, music_files
from livegen.music.events import Note

CACHE_DIR = Path(os.environ.get("LIVEGEN_CACHE", Path.home() / ".cache" / "livegen"))


def is_held_out(name: str, fraction: float = 0.05) -> bool:
    """A stable split by file name (not its folder), so train and eval agree on any machine."""
    return zlib.crc32(Path(name).name.encode()) % 1000 < fraction * 1000


def load_cached(folder: str, workers: int = 2) -> Corpus:
    """Parse a corpus once; later runs read the cache (keyed by the files' names, sizes and times)."""
    files = music_files(folder)
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    cache = CACHE_DIR / f"corpus-{h.hexdigest()[:16]}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        corpus = Corpus()
        offsets = z["offsets"]
        for i, name in enumerate(z["names"]):
            a = z["notes"][offsets[i]:offsets[i + 1]]
            corpus.pieces.append((str(name), [Note(float(s), float(e), int(p), int(v)) for s, e, p, v in a]))
        return corpus
    corpus = load_corpus(folder, workers=workers)
    arrays = [np.array([tuple(n) for n in notes], dtype=np.float64) for _, notes in corpus.pieces]
    offsets = np.cumsum([0] + [len(a) for a in arrays])
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array([n for n, _ in corpus.pieces]), notes=np.concatenate(arrays), offsets=offsets)
    os.replace(tmp, cache)
    return corpus


@dataclass
class Augment:
    transpose: int = 3  # semitones either way (the issue's ±3)
    octave_prob: float = 0.3  # chance of a further ±12, so the model meets high and low registers
    stretch: float = 0.05  # ±5 % time-stretch
    broad_stretch: tuple[float, float] = (0.6, 1.7)  # wide tempo range, so it meets sparse and dense music


def window_tokens(notes: list[Note], start_index: int, seq_len: int, rng: np.random.Generator | None,
                  aug: Augment | None, cond_off_prob: float = 0.0, coarse_velocity: bool = True):
    """(tokens[seq_len+1], cond[seq_len+1, C]) starting at a note, augmented when ``aug`` is given."""
    chunk = notes[start_index:start_index + seq_len + 256]  # ample tokens, and 5 s of future beyond them
    t0 = chunk[0].start if start_index > 0 else 0.0
    shift, factor = 0, 1.0
    if aug is not None and rng is not None:
        shift = int(rng.integers(-aug.transpose, aug.transpose + 1))
        if rng.random() < aug.octave_prob:
            shift += 12 * int(rng.choice([-1, 1]))
        factor = float(np.exp(rng.uniform(np.log(aug.broad_stretch[0]), np.log(aug.broad_stretch[1]))))
        factor *= float(rng.uniform(1 - aug.stretch, 1 + aug.stretch))
    moved = []
    for n in chunk:
        p = n.pitch + shift
        if not 0 <= p < 128:
            continue
        v = n.velocity
        if coarse_velocity:  # 8 levels: velocity changes on nearly every POP909 note otherwise
            v = events.bin_to_velocity(min(events.velocity_to_bin(v) // 4 * 4 + 2, events.VELOCITY_BINS - 1))
        moved.append(Note((n.start - t0) * factor, (n.end - t0) * factor, p, v))
    tokens, times = events.notes_to_tokens(moved)
    q = events.quantize_notes(moved)
    onsets = np.array([n.start for n in q])
    pitches = np.array([n.pitch for n in q], dtype=np.int64)
    cond = conditioning.future_conditions(times, onsets, pitches)
    tokens, cond = tokens[:seq_len + 1], cond[:seq_len + 1]
    if rng is not None and cond_off_prob > 0:
        r = rng.random(4)
        if r[0] < cond_off_prob:
            cond[:] = 0.0
            cond[:, conditioning.OFF_FLAG] = 1.0
        else:  # drop groups independently so each control also works alone
            for j, group in enumerate((conditioning.DENSITY, conditioning.HISTOGRAM, conditioning.REGISTER)):
                if r[j + 1] < cond_off_prob / 2:
                    cond[:, group] = 0.0
    return tokens.astype(np.int64), cond


class WindowSampler:
    """Random training windows, pieces drawn in proportion to their length."""

    def __init__(self, pieces: list[list[Note]], seq_len: int, seed: int, aug: Augment | None,
                 cond_off_prob: float):
        self.pieces = [p for p in pieces if len(p) > 8]
        weights = np.array([len(p) for p in self.pieces], dtype=np.float64)
        self.p = weights / weights.sum()
        self.seq_len, self.aug, self.cond_off_prob = seq_len, aug, cond_off_prob
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int):
        toks, conds = [], []
        while len(toks) < size:
            piece = self.pieces[self.rng.choice(len(self.pieces), p=self.p)]
            start = int(self.rng.integers(0, max(1, len(piece) - 16)))
            t, c = window_tokens(piece, start, self.seq_len, self.rng, self.aug, self.cond_off_prob)
            if len(t) == self.seq_len + 1:
                toks.append(t)
                conds.append(c)
        return np.stack(toks), np.stack(conds)
