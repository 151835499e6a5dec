"""Training data: the held-out split and the parsed-corpus cache, windows of a piece set (pieces.py)
in one deterministic global order shared by every process, and notes -> augmented tokens +
conditioning.

The order is what makes data parallelism exact and resumable: training sample ``g`` (counted over
the whole run, across processes) is always the same window with the same augmentation, whatever
the number of processes. Epoch ``g // N`` visits every one of the N windows once, in a permutation
computed on the fly (a keyed Feistel network), so nothing grows with the corpus but the piece table.
"""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen import paths
from livegen.errors import UserError
from livegen.music import conditioning, events
from livegen.music.corpus import Corpus, load_corpus, music_files
from livegen.music.events import Note


def is_held_out(name: str, fraction: float = 0.05) -> bool:
    """A stable split by file name (not its folder), so train and eval agree on any machine."""
    return zlib.crc32(Path(name).name.encode()) % 1000 < fraction * 1000


def load_cached(folder: str, workers: int = 2, log=None) -> Corpus:
    """Parse a corpus once (``log`` hears how far it has come); later runs read the cache in
    ``paths.cache_dir()`` (keyed by the files' names, sizes and times)."""
    files = music_files(folder)
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    cache = paths.cache_dir() / f"corpus-{h.hexdigest()[:16]}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        corpus = Corpus()
        offsets = z["offsets"]
        for i, name in enumerate(z["names"]):
            a = z["notes"][offsets[i]:offsets[i + 1]]
            corpus.pieces.append((str(name), [Note(float(s), float(e), int(p), int(v)) for s, e, p, v in a]))
        return corpus
    corpus = load_corpus(folder, workers=workers, log=log)
    arrays = [np.array([tuple(n) for n in notes], dtype=np.float64) for _, notes in corpus.pieces]
    offsets = np.cumsum([0] + [len(a) for a in arrays])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")  # processes side by side never share one
    np.savez(tmp, names=np.array([n for n, _ in corpus.pieces]), notes=np.concatenate(arrays), offsets=offsets)
    os.replace(tmp, cache)
    return corpus


@dataclass
class Augment:
    transpose: int = 3  # semitones either way: seven keys per piece, each near its own register
    octave_prob: float = 0.3  # chance of a further ±12, so the model meets high and low registers
    stretch: float = 0.05  # ±5 % time-stretch
    broad_stretch: tuple[float, float] = (0.6, 1.7)  # wide tempo range, so it meets sparse and dense music


def window_tokens(notes, start_index: int, seq_len: int, rng: np.random.Generator | None,
                  aug: Augment | None, cond_off_prob: float = 0.0, coarse_velocity: bool = True,
                  beats: np.ndarray | None = None):
    """(tokens[<= seq_len+1], cond[<= seq_len+1, C]) starting at a note, augmented when ``aug`` is given.

    ``notes``: a list of Note, or NOTE_DTYPE rows (a piece of a prepared corpus). With the piece's
    ``beats`` the window is written in beat time (``events.TIME_UNITS["beats"]``), and not stretched:
    a tempo is no longer something a model in beat time hears."""
    shift, factor = _draw_augmentation(rng, aug)
    tokens, cond = _encode(notes, start_index, seq_len, shift, 1.0 if beats is not None else factor,
                           coarse_velocity, beats)
    if rng is not None and cond_off_prob > 0:
        r = rng.random(4)
        if r[0] < cond_off_prob:
            cond[:] = 0.0
            cond[:, conditioning.OFF_FLAG] = 1.0
        else:  # drop groups independently so each control also works alone
            for j, group in enumerate((conditioning.DENSITY, conditioning.HISTOGRAM, conditioning.REGISTER)):
                if r[j + 1] < cond_off_prob / 2:
                    cond[:, group] = 0.0
    return tokens, cond


def _draw_augmentation(rng, aug) -> tuple[int, float]:
    if aug is None or rng is None:
        return 0, 1.0
    shift = int(rng.integers(-aug.transpose, aug.transpose + 1))
    if rng.random() < aug.octave_prob:
        shift += 12 * int(rng.choice([-1, 1]))
    factor = float(np.exp(rng.uniform(np.log(aug.broad_stretch[0]), np.log(aug.broad_stretch[1]))))
    factor *= float(rng.uniform(1 - aug.stretch, 1 + aug.stretch))
    return shift, factor


def _encode(notes, start_index: int, seq_len: int, shift: int, factor: float, coarse_velocity: bool, beats):
    chunk = notes[start_index:start_index + seq_len + 256]  # ample tokens, and 5 s of future beyond them
    if isinstance(chunk, np.ndarray):
        chunk = [Note(*row) for row in chunk.tolist()]
    step = events.TIME_UNITS["seconds"]
    if beats is not None:
        chunk, step = events.to_beat_time(chunk, beats), events.TIME_UNITS["beats"]
    t0 = chunk[0].start if start_index > 0 else 0.0
    moved = []
    for n in chunk:
        p = n.pitch + shift
        if not 0 <= p < 128:
            continue
        v = n.velocity
        if coarse_velocity:  # 8 levels: velocity changes on nearly every POP909 note otherwise
            v = events.bin_to_velocity(min(events.velocity_to_bin(v) // 4 * 4 + 2, events.VELOCITY_BINS - 1))
        moved.append(Note((n.start - t0) * factor, (n.end - t0) * factor, p, v))
    tokens, times = events.notes_to_tokens(moved, step)
    q = events.quantize_notes(moved, step)
    onsets = np.array([n.start for n in q])
    pitches = np.array([n.pitch for n in q], dtype=np.int64)
    cond = conditioning.future_conditions(times, onsets, pitches)
    return tokens[:seq_len + 1].astype(np.int64), cond[:seq_len + 1]


# --- the global window order ----------------------------------------------------------------------

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def permute(positions: np.ndarray, n: int, seed: int, epoch: int) -> np.ndarray:
    """A keyed bijection of 0..n-1 evaluated at ``positions``, in O(1) memory: a 4-round Feistel
    network on the smallest even number of bits that holds n, cycle-walked back into range."""
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask, shift = np.uint64((1 << half) - 1), np.uint64(half)
    keys = np.random.SeedSequence([seed, epoch]).generate_state(4, dtype=np.uint64)
    x = np.asarray(positions, dtype=np.uint64).copy()
    todo = np.ones(len(x), dtype=bool)
    while todo.any():
        left, right = x[todo] >> shift, x[todo] & mask
        for key in keys:
            left, right = right, left ^ (_mix(right ^ key) & mask)
        x[todo] = (left << shift) | right
        todo = x >= np.uint64(n)
    return x.astype(np.int64)


class WindowOrder:
    """Training sample g -> (piece, window within the piece, epoch): every window once per epoch.

    ``counts[i]`` windows of piece i (0 for held-out pieces). Process ``rank`` of ``world`` takes
    the ``rank``-th slice of each global batch (``local``), so the processes of a step together see
    exactly the global batch a single process would."""

    def __init__(self, counts: np.ndarray, seed: int):
        self.first = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.total = int(self.first[-1])
        if self.total == 0:
            raise UserError("no training window fits in any piece of the corpus")
        self.seed = seed

    def locate(self, g: int) -> tuple[int, int, int]:
        epoch, j = divmod(int(g), self.total)
        w = int(permute(np.array([j]), self.total, self.seed, epoch)[0])
        piece = int(np.searchsorted(self.first, w, side="right") - 1)
        return piece, w - int(self.first[piece]), epoch

    def rng(self, g: int) -> np.random.Generator:
        """The augmentation of sample g, the same in every process and every run."""
        return np.random.default_rng([self.seed, int(g)])

    @staticmethod
    def local(first_sample: int, global_batch: int, rank: int, world: int) -> range:
        per_rank = global_batch // world
        start = first_sample + rank * per_rank
        return range(start, start + per_rank)


def training_pieces(pieces) -> np.ndarray:
    """Which pieces train: all but the held-out ones (all of them when every piece is held out)."""
    train = ~pieces.held_out
    return train if train.any() else np.ones(len(pieces), dtype=bool)


PAD = -100  # a padded target: ignored by the loss


class TokenWindows:
    """The Char-RNN's training windows: window k of a piece starts at a random note in
    [k * stride, (k + 1) * stride), stride a quarter of ``seq_len`` notes (a window of tokens spans
    about a third as many notes), so an epoch covers every piece in proportion to its length. A
    window that runs out of notes is moved back; only a piece shorter than a window is padded."""

    def __init__(self, pieces, seq_len: int, seed: int, aug: Augment | None = None, cond_off_prob: float = 0.15,
                 time_unit: str = "seconds"):
        self.pieces, self.seq_len, self.cond_off_prob = pieces, seq_len, cond_off_prob
        self.in_beats = time_unit == "beats"
        self.aug = aug or Augment()
        self.stride = max(1, seq_len // 4)
        counts = np.where(training_pieces(pieces), -(-pieces.lengths // self.stride), 0)
        self.order = WindowOrder(counts, seed)

    def sample(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens[seq_len+1] padded with PAD, cond[seq_len+1, C]) of training sample g."""
        piece, k, _ = self.order.locate(g)
        rng = self.order.rng(g)
        notes = self.pieces.notes(piece)
        beats = self.pieces.beats(piece)[0] if self.in_beats else None
        start = min(k * self.stride + int(rng.integers(self.stride)), max(0, len(notes) - 16))
        aug_state = rng.bit_generator.state
        for _ in range(4):
            rng.bit_generator.state = aug_state  # the same augmentation however far the window moves
            tokens, cond = window_tokens(notes, start, self.seq_len, rng, self.aug, self.cond_off_prob, beats=beats)
            missing = self.seq_len + 1 - len(tokens)
            if missing <= 0 or start == 0:
                break
            start = max(0, start - missing)
        return pad_window(tokens, cond, self.seq_len)

    def batch(self, positions) -> tuple[np.ndarray, np.ndarray]:
        samples = [self.sample(g) for g in positions]
        return np.stack([t for t, _ in samples]), np.stack([c for _, c in samples])


def pad_window(tokens: np.ndarray, cond: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    if len(tokens) == seq_len + 1:
        return tokens, cond
    out = np.full(seq_len + 1, PAD, dtype=np.int64)
    out[:len(tokens)] = tokens
    full = np.zeros((seq_len + 1, cond.shape[1]), dtype=cond.dtype)
    full[:len(cond)] = cond
    return out, full


def validation_windows(pieces, seq_len: int, count: int = 64, time_unit: str = "seconds") -> tuple[np.ndarray, np.ndarray]:
    """The same held-out windows every time, so NLLs compare (padded only when no piece is long enough)."""
    held = np.flatnonzero(pieces.held_out)
    if not len(held):
        held = np.flatnonzero(training_pieces(pieces))[:1]
    windows = []
    for allow_short in (False, True):
        rng = np.random.default_rng(1234)
        for _ in range(count * 4):
            piece = int(held[rng.integers(len(held))])
            notes = pieces.notes(piece)
            beats = pieces.beats(piece)[0] if time_unit == "beats" else None
            t, c = window_tokens(notes, int(rng.integers(0, max(1, len(notes) - 16))), seq_len, None, None, beats=beats)
            if allow_short or len(t) == seq_len + 1:
                windows.append(pad_window(t, c, seq_len))
            if len(windows) == count:
                break
        if windows:
            break
    return np.stack([t for t, _ in windows]), np.stack([c for _, c in windows])
