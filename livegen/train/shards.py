"""Prepared corpora (``livegen prepare``): music parsed once, in parallel, into memory-mapped shards.

A shard holds the note events of up to ``SHARD_FILES`` files: exactly what the tokenizer reads
(times in float64 seconds, pitch, velocity; 18 bytes a note), so training tokenises each window
as it needs it, with augmentation (transposition, time-stretch) applied before tokenising and the
very tokens of the in-memory path, while the process reads only the pages it touches: memory
stays flat however large the corpus. The beat grid the DCRNN needs (from ``beat_midi.txt`` or the
file's tempo) is stored beside the notes, so training never opens the source files.

An output folder:

    index.json              format, sources, totals, skipped files by reason, the shards
    index.npy               one row per piece, in corpus order: where its notes and beats are,
                            and whether it is held out (``data.is_held_out``, the same split as
                            the in-memory path)
    shard-NNNNN.json        the shard's files (size, mtime, outcome) and pieces (name, offsets);
                            written last, so a shard without one is unfinished
    shard-NNNNN.notes.npy   NOTE_DTYPE rows
    shard-NNNNN.beats.npy   BEAT_DTYPE rows

Preparing again is incremental: shards whose files are unchanged are kept, shards with a changed
or vanished file are dropped, and only files in no kept shard are parsed. A killed run resumes
from its last finished shard.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from livegen import extras
from livegen.errors import UserError
from livegen.music.corpus import beat_grid, load_file, music_files
from livegen.train.data import is_held_out

FORMAT = "livegen-shards-1"
SHARD_FILES = 256
MIN_NOTES = 8  # as load_corpus: shorter pieces are skipped and counted
NOTE_DTYPE = np.dtype([("start", "<f8"), ("end", "<f8"), ("pitch", "u1"), ("velocity", "u1")])
BEAT_DTYPE = np.dtype([("time", "<f8"), ("downbeat", "u1")])
INDEX_DTYPE = np.dtype([("shard", "<i4"), ("entry", "<i4"), ("note_start", "<i8"), ("note_count", "<i8"),
                        ("beat_start", "<i8"), ("beat_count", "<i8"), ("held_out", "u1")])


def notes_array(notes) -> np.ndarray:
    """Note tuples -> NOTE_DTYPE rows (exact: times stay float64)."""
    return np.array([tuple(n) for n in notes], dtype=NOTE_DTYPE)


def is_prepared(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "index.json").is_file()


def _shard_stem(number: int) -> str:
    return f"shard-{number:05d}"


# --- preparing ------------------------------------------------------------------------------------

def _parse(path: Path):
    """One file in a worker process: (pieces [(name, notes, beats)], skipped Counter, error or None)."""
    skipped: Counter = Counter()
    try:
        pieces = load_file(path)
    except Exception as exc:  # a broken file is counted with its reason, never fatal
        skipped[f"{type(exc).__name__}: unreadable {path.suffix} file"] += 1
        return [], skipped, f"{type(exc).__name__}: {exc}"[:300]
    if not pieces:  # e.g. an ABC file whose tunes music21 reads as nothing
        skipped[f"no tune in the {path.suffix} file"] += 1
    out = []
    for name, notes in pieces:
        if len(notes) < MIN_NOTES:
            skipped[f"fewer than {MIN_NOTES} notes"] += 1
            continue
        try:
            times, downbeats = beat_grid(name, notes)
            beats = np.zeros(len(times), dtype=BEAT_DTYPE)
            beats["time"] = times
            beats["downbeat"][downbeats] = 1
        except Exception:  # no usable grid: the piece still trains the Char-RNN; the DCRNN skips it
            beats = np.zeros(0, dtype=BEAT_DTYPE)
        out.append((name, notes_array(notes), beats))
    return out, skipped, None


def _parse_with_stat(path: Path):
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns, *_parse(path))


def _write_shard(out: Path, number: int, results: list) -> dict:
    """Write the arrays, then the manifest (atomically): the manifest marks the shard finished."""
    stem = _shard_stem(number)
    notes = [p[1] for r in results for p in r[3]]
    beats = [p[2] for r in results for p in r[3]]
    note_offsets = np.concatenate([[0], np.cumsum([len(a) for a in notes], dtype=np.int64)])
    beat_offsets = np.concatenate([[0], np.cumsum([len(a) for a in beats], dtype=np.int64)])
    np.save(out / f"{stem}.notes.npy", np.concatenate(notes) if notes else np.zeros(0, NOTE_DTYPE))
    np.save(out / f"{stem}.beats.npy", np.concatenate(beats) if beats else np.zeros(0, BEAT_DTYPE))
    files, k = [], 0
    for path, size, mtime, pieces, skipped, error in results:
        entries = []
        for name, _, _ in pieces:
            entries.append({"name": name, "notes": [int(note_offsets[k]), int(note_offsets[k + 1] - note_offsets[k])],
                            "beats": [int(beat_offsets[k]), int(beat_offsets[k + 1] - beat_offsets[k])]})
            k += 1
        files.append({"path": path, "size": size, "mtime_ns": mtime, "pieces": entries, "skipped": dict(skipped),
                      **({"error": error} if error else {})})
    manifest = {"format": FORMAT, "files": files}
    tmp = out / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, out / f"{stem}.json")
    return manifest


def _remove_shard(out: Path, stem: str) -> None:
    for suffix in (".json", ".notes.npy", ".beats.npy"):
        (out / f"{stem}{suffix}").unlink(missing_ok=True)


def _kept_shards(out: Path, current: dict[str, os.stat_result]) -> dict[int, dict]:
    """Finished shards whose files are all still there, unchanged; the others are deleted."""
    kept = {}
    for manifest_path in sorted(out.glob("shard-*.json")):
        stem = manifest_path.name[:-len(".json")]
        try:
            manifest = json.loads(manifest_path.read_text())
            number = int(stem.split("-")[1])
            fresh = manifest["format"] == FORMAT and all(
                f["path"] in current and current[f["path"]].st_size == f["size"]
                and current[f["path"]].st_mtime_ns == f["mtime_ns"] for f in manifest["files"])
        except (ValueError, KeyError, TypeError, IndexError):
            fresh = False
        if fresh and all((out / f"{stem}{s}").is_file() for s in (".notes.npy", ".beats.npy")):
            kept[number] = manifest
        else:
            _remove_shard(out, stem)
    for leftover in list(out.glob("shard-*.npy")) + list(out.glob("shard-*.tmp")):  # from an unfinished shard
        if int(leftover.name.split(".")[0].split("-")[1]) not in kept:
            leftover.unlink()
    return kept


def prepare(data: str, out: str, workers: int | None = None, shard_files: int = SHARD_FILES, log=print,
            progress: bool = True) -> dict:
    """Parse every music file under the comma-separated folders ``data`` into shards in ``out``.

    Returns the summary that is also written to ``index.json``."""
    with extras.needed("train", "livegen prepare"):
        from tqdm import tqdm  # the progress bar: not loaded by the parsing processes, which import this module

    started = time.monotonic()
    sources = [Path(d).absolute() for d in data.split(",") if d]
    if not sources:
        raise UserError("--data names no folder")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the shards")
    if out_dir.is_dir() and any(not p.name.startswith(("shard-", "index.")) for p in out_dir.iterdir()):
        raise UserError(f"--out {out} holds other files; give an empty or new folder for the shards")
    if any(out_dir.absolute() == s or s in out_dir.absolute().parents for s in sources):
        raise UserError(f"--out {out} lies inside the data folder; put the shards elsewhere")
    per_source = [music_files(s) for s in sources]
    all_files = [f for files in per_source for f in files]
    if not all_files:
        raise UserError(f"no .mid/.midi/.krn/.abc/.xml/.musicxml/.mxl files under {data}")
    out_dir.mkdir(parents=True, exist_ok=True)
    current = {str(f): f.stat() for f in all_files}
    kept = _kept_shards(out_dir, current)
    done = {f["path"] for m in kept.values() for f in m["files"]}
    pending = [f for f in all_files if str(f) not in done]
    workers = max(1, workers or min(os.cpu_count() or 1, 8))

    number = max(kept, default=-1) + 1
    batch: list = []
    skipped_now = 0
    bar = tqdm(total=len(pending), unit="file", desc="prepare", file=sys.stderr, disable=not progress)

    def take(future) -> None:  # results in file order; a shard is written as soon as it is full
        nonlocal number, batch, skipped_now
        result = future.result()
        batch.append(result)
        skipped_now += sum(result[4].values())
        bar.update(1)
        bar.set_postfix_str(f"skipped {skipped_now}", refresh=False)
        if len(batch) == shard_files:
            kept[number] = _write_shard(out_dir, number, batch)
            number, batch = number + 1, []

    if pending:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            in_flight: list = []  # bounded, so memory does not grow with the corpus
            for f in pending:
                in_flight.append(pool.submit(_parse_with_stat, f))
                while len(in_flight) > workers * 4:
                    take(in_flight.pop(0))
            for future in in_flight:
                take(future)
        if batch:
            kept[number] = _write_shard(out_dir, number, batch)
    bar.close()
    seconds = time.monotonic() - started
    summary = _write_index(out_dir, sources, per_source, kept, is_held_out)
    summary.update({"files_parsed": len(pending), "files_already_prepared": len(done), "workers": workers,
                    "seconds": round(seconds, 2),
                    "files_per_second": round(len(pending) / seconds, 1) if pending else None})
    (out_dir / "index.json").write_text(json.dumps(summary, indent=1))
    log(f"prepared {len(pending)} files in {seconds:.1f} s"
        + (f" ({len(pending) / seconds:.1f} files/s, {workers} workers)" if pending else "")
        + (f", {len(done)} already prepared" if done else "")
        + f": {summary['pieces']} pieces, {summary['notes']} notes, {summary['held_out_pieces']} held out, "
        f"{len(summary['shards'])} shards in {out}")
    skipped = summary["skipped"]
    if skipped:
        log(f"skipped {sum(skipped.values())}: " + "; ".join(f"{n} x {why}" for why, n in
                                                            sorted(skipped.items(), key=lambda kv: -kv[1]))
            + f" (per file in {out}/shard-*.json)")
    if not summary["pieces"]:
        raise UserError(f"no usable music in {data} ({len(all_files)} music files; skipped: {skipped})")
    return summary


def _write_index(out: Path, sources: list[Path], per_source: list[list[Path]], kept: dict[int, dict],
                 is_held_out) -> dict:
    """index.npy in corpus order (source, then file order as music_files sorts it): the order the
    in-memory path reads, so both see the same pieces under the same window numbers."""
    rank = {str(f): i for i, f in enumerate(f for files in per_source for f in files)}
    rows, skipped = [], Counter()
    for number, manifest in sorted(kept.items()):
        entry = 0
        for f in manifest["files"]:
            skipped.update(f["skipped"])
            for j, piece in enumerate(f["pieces"]):
                rows.append((rank[f["path"]], j, (number, entry, piece["notes"][0], piece["notes"][1],
                                                  piece["beats"][0], piece["beats"][1],
                                                  int(is_held_out(piece["name"])))))
                entry += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    index = np.array([r[2] for r in rows], dtype=INDEX_DTYPE)
    tmp = out / "index.tmp.npy"
    np.save(tmp, index)
    os.replace(tmp, out / "index.npy")
    return {"format": FORMAT, "sources": [str(s) for s in sources], "files": sum(len(f) for f in per_source),
            "pieces": int(len(index)), "notes": int(index["note_count"].sum()),
            "held_out_pieces": int(index["held_out"].sum()), "skipped": dict(skipped),
            "shards": [_shard_stem(n) for n in sorted(kept)]}


# --- reading --------------------------------------------------------------------------------------

class ShardPieces:
    """A prepared corpus, memory-mapped: the piece table is read, notes and beats are paged in on use."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        try:
            self.info = json.loads((self.folder / "index.json").read_text())
            self.index = np.load(self.folder / "index.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise UserError(f"{folder} is not a complete prepared corpus ({exc.__class__.__name__}); "
                            "run livegen prepare again") from None
        if self.info.get("format") != FORMAT:
            raise UserError(f"{folder}: unknown shard format {self.info.get('format')!r} (expected {FORMAT}); "
                            "run livegen prepare again")
        self.lengths = np.asarray(self.index["note_count"])
        self.held_out = np.asarray(self.index["held_out"]).astype(bool)
        self.skipped = Counter(self.info.get("skipped", {}))
        self._notes: dict[int, np.ndarray] = {}
        self._beats: dict[int, np.ndarray] = {}
        self._names: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _shard(self, cache: dict, number: int, kind: str) -> np.ndarray:
        if number not in cache:
            path = self.folder / f"{_shard_stem(number)}.{kind}.npy"
            try:
                cache[number] = np.load(path, mmap_mode="r")
            except (OSError, ValueError):
                raise UserError(f"{path} is missing or corrupt; run livegen prepare again") from None
        return cache[number]

    def notes(self, i: int) -> np.ndarray:
        row = self.index[i]
        start = int(row["note_start"])
        return self._shard(self._notes, int(row["shard"]), "notes")[start:start + int(row["note_count"])]

    def beats(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.index[i]
        start = int(row["beat_start"])
        b = self._shard(self._beats, int(row["shard"]), "beats")[start:start + int(row["beat_count"])]
        return np.asarray(b["time"]), np.flatnonzero(b["downbeat"])

    def name(self, i: int) -> str:
        number = int(self.index[i]["shard"])
        if number not in self._names:
            manifest = json.loads((self.folder / f"{_shard_stem(number)}.json").read_text())
            self._names[number] = [p["name"] for f in manifest["files"] for p in f["pieces"]]
        return self._names[number][int(self.index[i]["entry"])]
