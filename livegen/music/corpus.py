"""Load music for training and evaluation: MIDI with mido, **kern / ABC / MusicXML through music21,
and a piece's beat grid (its dataset's beat annotations, else the file's tempo).

A corpus is a folder searched recursively. Broken files are skipped and counted with their
reason, never fatal; a folder with no music at all is a user error.
"""
from __future__ import annotations

import functools
import os
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mido
import numpy as np

from livegen import extras
from livegen.errors import UserError
from livegen.music.events import Note

MIDI_SUFFIXES = {".mid", ".midi"}
MUSIC21_SUFFIXES = {".krn", ".abc", ".xml", ".musicxml", ".mxl"}
DRUM_CHANNEL = 9
PROGRESS_EVERY = 5.0  # seconds between the lines saying how far parsing a corpus has come


def read_midi(path: str | os.PathLike) -> list[Note]:
    """All pitched notes of a MIDI file, tracks merged, times in seconds (tempo map honoured)."""
    midi = mido.MidiFile(path, clip=True)
    now = 0.0
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    notes: list[Note] = []
    for msg in midi:  # merged tracks, delta times in seconds
        now += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == DRUM_CHANNEL:
            continue
        key = (msg.channel, msg.note)
        if key in sounding:
            start, velocity = sounding.pop(key)
            if now > start:
                notes.append(Note(start, now, msg.note, velocity))
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[key] = (now, msg.velocity)
    return sorted(notes)


def read_music21(path: str | os.PathLike) -> list[list[Note]]:
    """Pieces in a **kern, ABC or MusicXML file (an ABC file may hold many tunes)."""
    with extras.needed("train", "reading kern, ABC and MusicXML"):
        import music21  # 0.5 s to import: only for kern, ABC and MusicXML, never for MIDI
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = music21.converter.parse(str(path))
    scores = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    pieces = []
    for score in scores:
        notes: list[Note] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for element, seconds in _timed_elements(score):
                for pitch in element.pitches:
                    velocity = element.volume.velocity or 80
                    notes.append(Note(seconds[0], seconds[1], int(pitch.midi), int(velocity)))
        if notes:
            pieces.append(sorted(notes))
    return pieces


def _timed_elements(score):
    """(note or chord, (start s, end s)) pairs in written order, using the score's tempo marks.

    Repeats are not expanded: music21's expandRepeats deep-copies the score and takes ~90 % of
    the load time, and a repeat adds no material a model has not already seen.
    """
    from music21 import chord, harmony, note  # loaded by read_music21 already: only kern, ABC, MusicXML

    for item in score.flatten().secondsMap:
        element = item["element"]
        if isinstance(element, (note.Note, chord.Chord)) and not isinstance(element, harmony.ChordSymbol):
            start = item["offsetSeconds"]
            yield element, (start, start + max(item["durationSeconds"], 0.01))


def beat_grid(name: str, notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
    """(beat times in seconds, indices of downbeat beats) of a piece from ``load_file``: from a
    ``beat_midi.txt`` beside its MIDI file (POP909: beat time, and a 4/4 downbeat flag in the third
    column), else from the file's tempo map (a MIDI file's tempo changes, a score's tempo marks;
    120 bpm without any), counted in 4/4 from time 0."""
    path = Path(name.split("#")[0])
    beat_file = path.parent / "beat_midi.txt"
    if beat_file.is_file():
        rows = np.loadtxt(beat_file, ndmin=2)
        if len(rows) >= 8 and rows.shape[1] >= 3:
            return rows[:, 0], np.flatnonzero(rows[:, 2] > 0.5)
    end = float(notes["end"].max()) if isinstance(notes, np.ndarray) else max(n.end for n in notes)
    tempo_map = [(0.0, 0.5)]  # (beat, seconds per beat from there)
    if path.is_file() and path.suffix.lower() in MIDI_SUFFIXES:
        tempo_map = _midi_tempo_map(path)
    elif path.is_file() and path.suffix.lower() in MUSIC21_SUFFIXES:
        tempo_map = _score_tempo_map(path, int(name.split("#")[1]) if "#" in name else 0)
    beats = [0.0]
    change = 0
    while beats[-1] <= end + 1.0:
        while change + 1 < len(tempo_map) and tempo_map[change + 1][0] <= len(beats) - 1:
            change += 1
        beats.append(beats[-1] + tempo_map[change][1])
    beats = np.array(beats)
    return beats, np.arange(0, len(beats), 4)


def _midi_tempo_map(path: Path) -> list[tuple[float, float]]:
    midi = mido.MidiFile(path, clip=True)
    changes: dict[int, int] = {}
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes[tick] = msg.tempo
    if not changes:
        return [(0.0, 0.5)]
    first = changes[min(changes)]
    return [(0.0, first / 1e6)] + [(tick / midi.ticks_per_beat, tempo / 1e6) for tick, tempo in sorted(changes.items())]


TEMPO_MARKS = {".krn": b"*MM", ".abc": b"Q:", ".xml": b"tempo", ".musicxml": b"tempo"}  # text that may hold one


def _score_tempo_map(path: Path, index: int) -> list[tuple[float, float]]:
    """A score's tempo marks as a tempo map, quarters counted as beats (as read_music21 timed it).
    A text score without a tempo mark is not parsed again (an ABC file holds hundreds of tunes)."""
    mark = TEMPO_MARKS.get(path.suffix.lower())
    if mark is not None and mark not in path.read_bytes():
        return [(0.0, 0.5)]
    maps = _score_tempo_maps(str(path))
    return maps[index] if index < len(maps) else [(0.0, 0.5)]


@functools.lru_cache(maxsize=4)
def _score_tempo_maps(path: str) -> list[list[tuple[float, float]]]:
    import music21  # loaded by read_music21 already: only kern, ABC and MusicXML

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = music21.converter.parse(path)
        scores = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
        bounds = [score.flatten().metronomeMarkBoundaries() for score in scores]
    return [[(0.0, 0.5)] + [(float(start), float(mark.secondsPerQuarter())) for start, _, mark in b] for b in bounds]


@dataclass
class Corpus:
    pieces: list[tuple[str, list[Note]]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def note_count(self) -> int:
        return sum(len(n) for _, n in self.pieces)


def music_files(folder: str | os.PathLike) -> list[Path]:
    root = Path(folder)
    if not root.exists():
        raise UserError(f"data folder {folder} does not exist")
    if root.is_file():
        if root.suffix.lower() not in MIDI_SUFFIXES | MUSIC21_SUFFIXES:
            raise UserError(f"{folder} is not a music file ({', '.join(sorted(MIDI_SUFFIXES | MUSIC21_SUFFIXES))}): "
                            "give one, or a folder of them")
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES | MUSIC21_SUFFIXES)


def load_file(path: Path) -> list[tuple[str, list[Note]]]:
    if path.suffix.lower() in MIDI_SUFFIXES:
        return [(str(path), read_midi(path))]
    return [(f"{path}#{i}", notes) for i, notes in enumerate(read_music21(path))]


def load_corpus(folder: str | os.PathLike, min_notes: int = 8, workers: int = 1,
                log: Callable[[str], None] | None = None) -> Corpus:
    """Every readable piece under ``folder``; raises UserError when nothing is usable. ``log`` hears
    how far parsing has come, every ``PROGRESS_EVERY`` seconds (a big corpus takes a minute)."""
    files = music_files(folder)
    if workers > 1 and len(files) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = _with_progress(pool.map(_load_or_reason, files, chunksize=4), len(files), folder, log)
    else:
        results = _with_progress(map(_load_or_reason, files), len(files), folder, log)
    corpus = Corpus()
    for result in results:
        if isinstance(result, str):
            corpus.skipped[result] += 1
            continue
        for name, notes in result:
            if len(notes) < min_notes:
                corpus.skipped["fewer than %d notes" % min_notes] += 1
            else:
                corpus.pieces.append((name, notes))
    if not corpus.pieces:
        found = f"{len(files)} music files" if files else "no .mid/.midi/.krn/.abc/.xml/.musicxml/.mxl files"
        raise UserError(f"no usable music in {folder} ({found}; skipped: {dict(corpus.skipped) or 'none'})")
    return corpus


def _with_progress(results, total: int, folder, log: Callable[[str], None] | None) -> list:
    """``results`` read to the end, saying every ``PROGRESS_EVERY`` s how many of ``total`` files are parsed."""
    if log is None or not total:
        return list(results)
    log(f"parsing {total} music files in {folder}")
    started = said = time.monotonic()
    done = []
    for result in results:
        done.append(result)
        if time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            log(f"parsed {len(done)} of {total} files ({100 * len(done) // total} %)")
    log(f"parsed {total} files in {time.monotonic() - started:.1f} s")
    return done


def _load_or_reason(path: Path):
    try:
        return load_file(path)
    except Exception as exc:  # a broken file in a corpus is counted, not fatal
        return f"{type(exc).__name__}: unreadable {path.suffix} file"
