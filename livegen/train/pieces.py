"""Piece sets: a corpus as training reads it, whether parsed folders held in memory or prepared
shards memory-mapped (shards.py), each piece's notes, beat grid, name and held-out flag."""
from __future__ import annotations

from collections import Counter

import numpy as np

from livegen.errors import UserError
from livegen.music.corpus import Corpus, beat_grid
from livegen.train.data import is_held_out, load_cached
from livegen.train.shards import ShardPieces, is_prepared, notes_array


class MemoryPieces:
    """Parsed folders held in memory (the path without ``livegen prepare``)."""

    def __init__(self, corpora: list[Corpus]):
        self._names = [name for c in corpora for name, _ in c.pieces]
        self._notes = [notes_array(notes) for c in corpora for _, notes in c.pieces]
        self.lengths = np.array([len(a) for a in self._notes], dtype=np.int64)
        self.held_out = np.array([is_held_out(n) for n in self._names], dtype=bool)
        self.skipped = sum((c.skipped for c in corpora), Counter())
        self._beats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._notes)

    def notes(self, i: int) -> np.ndarray:
        return self._notes[i]

    def beats(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._beats:
            self._beats[i] = beat_grid(self._names[i], self._notes[i])
        return self._beats[i]

    def name(self, i: int) -> str:
        return self._names[i]


class ConcatPieces:
    """Several piece sets as one, in the order given."""

    def __init__(self, parts: list):
        self.parts = parts
        self.first = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        self.lengths = np.concatenate([p.lengths for p in parts])
        self.held_out = np.concatenate([p.held_out for p in parts])
        self.skipped = sum((p.skipped for p in parts), Counter())

    def __len__(self) -> int:
        return int(self.first[-1])

    def _locate(self, i: int):
        k = int(np.searchsorted(self.first, i, side="right") - 1)
        return self.parts[k], i - int(self.first[k])

    def notes(self, i: int) -> np.ndarray:
        part, j = self._locate(i)
        return part.notes(j)

    def beats(self, i: int):
        part, j = self._locate(i)
        return part.beats(j)

    def name(self, i: int) -> str:
        part, j = self._locate(i)
        return part.name(j)


def open_pieces(data: str, workers: int = 2, log=None):
    """The pieces of comma-separated ``data``: prepared shard folders are memory-mapped, plain folders
    parsed (through the cache; ``log`` hears how far parsing has come) and held in memory."""
    folders = [d for d in data.split(",") if d]
    if not folders:
        raise UserError("--data names no folder")
    parts = [ShardPieces(d) if is_prepared(d) else MemoryPieces([load_cached(d, workers, log)]) for d in folders]
    pieces = parts[0] if len(parts) == 1 else ConcatPieces(parts)
    if not len(pieces):
        raise UserError(f"no usable music in {data}")
    return pieces


def load_pieces(dist, data: str, log=None):
    """The corpus on every process; rank 0 parses (and caches) plain folders first, telling ``log``
    how far it has come, so processes never write the same cache file."""
    if not dist.main:
        dist.barrier()
    pieces = open_pieces(data, log=log if dist.main else None)
    if dist.main:
        dist.barrier()
    return pieces
