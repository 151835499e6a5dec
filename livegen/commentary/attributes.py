"""What is being played, in a music writer's words: notes of the last ~15 s -> attribute labels.

Measured: tempo (onset autocorrelation, weighted by accents, with a prior around 120 bpm, unless
the tempo is known), note density, register (mean pitch), key and mode (Krumhansl-Kessler profiles
against the duration-weighted pitch-class histogram), dynamics (mean velocity), polyphony (notes
sounding at once) and the instruments (General MIDI programs; drums on channel 10). Each measure
maps onto the labels of ``text.CANDIDATES`` ("fast tempo", "minor key", "piano", "mellow", ...),
so the commentary model is conditioned on the same vocabulary it learnt from MusicCaps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from livegen.errors import UserError
from livegen.music.events import Note

WINDOW_SECONDS = 15.0
# thresholds (bpm, MIDI pitch, velocity, notes sounding, notes/s): where MusicCaps writers' words change
SLOW_BELOW, FAST_ABOVE = 84.0, 128.0
LOW_BELOW, HIGH_ABOVE = 55.0, 72.0
SOFT_BELOW, LOUD_ABOVE = 64.0, 96.0
SOLO_BELOW, CHORDS_ABOVE = 1.3, 2.5
SIMPLE_BELOW, COMPLEX_ABOVE = 2.0, 9.0
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl-Kessler key profiles
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class MusicFeatures:
    seconds: float  # length of the window that had notes
    notes: int
    notes_per_second: float
    bpm: float | None  # None: too few notes to tell
    mean_pitch: float
    key: str | None  # e.g. "C major"; None when the histogram fits no key well
    key_correlation: float
    mean_velocity: float
    polyphony: float  # mean number of notes sounding while any sounds

    def to_json(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def window(notes: Iterable[Note], end: float | None = None, seconds: float = WINDOW_SECONDS) -> list[Note]:
    """Notes sounding in the ``seconds`` before ``end`` (default: the last note's end)."""
    notes = list(notes)
    if not notes:
        return []
    end = max(n.end for n in notes) if end is None else end
    return [n for n in notes if n.end > end - seconds and n.start < end]


def estimate_bpm(notes: list[Note]) -> float | None:
    """Beat tempo from the autocorrelation of an accent-weighted onset train (40..240 bpm)."""
    if len(notes) < 4:
        return None
    step = 0.01
    t0 = min(n.start for n in notes)
    length = int((max(n.start for n in notes) - t0) / step) + 1
    if length * step < 1.5:
        return None
    train = np.zeros(length + 1)
    for n in notes:  # louder, lower and simultaneous notes accent the beat
        train[int(round((n.start - t0) / step))] += n.velocity / 127 * (1.5 if n.pitch < 55 else 1.0)
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    train = np.convolve(train, kernel, mode="same")
    lags = np.arange(int(60 / 240 / step), int(60 / 40 / step) + 1)
    lags = lags[lags < len(train) - 1]
    if not len(lags):
        return None
    ac = np.array([float(train[:-lag] @ train[lag:]) / (len(train) - lag) for lag in lags])
    if ac.max() <= 0:
        return None
    bpm = 60 / (lags * step)
    prior = np.exp(-0.5 * (np.log2(bpm / 120.0) / 0.9) ** 2)
    return float(bpm[int(np.argmax(ac * prior))])


def estimate_key(notes: list[Note]) -> tuple[str | None, float]:
    """(e.g. "A minor", correlation) from the duration-weighted pitch-class histogram."""
    hist = np.zeros(12)
    for n in notes:
        hist[n.pitch % 12] += min(n.end - n.start, 2.0)
    if hist.sum() <= 0 or np.count_nonzero(hist) < 3:
        return None, 0.0
    best, name = -2.0, None
    for tonic in range(12):
        for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best:
                best, name = r, f"{PITCH_NAMES[tonic]} {mode}"
    return (name if best >= 0.5 else None), best


def polyphony(notes: list[Note]) -> float:
    """Mean count of sounding notes over the time anything sounds."""
    points = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes])
    sounding, last, weighted, busy = 0, None, 0.0, 0.0
    for t, d in points:
        if last is not None and sounding > 0:
            weighted += sounding * (t - last)
            busy += t - last
        sounding += d
        last = t
    return weighted / busy if busy > 0 else 0.0


def measure(notes: list[Note], bpm: float | None = None) -> MusicFeatures:
    """Features of the notes of one window (``bpm`` when the tempo is known, e.g. the MIDI file's)."""
    if not notes:
        return MusicFeatures(0.0, 0, 0.0, bpm, 0.0, None, 0.0, 0.0, 0.0)
    start, end = min(n.start for n in notes), max(n.end for n in notes)
    seconds = max(end - start, 1e-3)
    key, r = estimate_key(notes)
    return MusicFeatures(
        seconds=seconds, notes=len(notes), notes_per_second=len(notes) / max(seconds, 1.0),
        bpm=bpm if bpm is not None else estimate_bpm(notes),
        mean_pitch=float(np.mean([n.pitch for n in notes])), key=key, key_correlation=r,
        mean_velocity=float(np.mean([n.velocity for n in notes])), polyphony=polyphony(notes))


def instrument_label(program: int) -> str | None:
    """General MIDI program (0..127) -> instrument label."""
    families = ((0, 7, "piano"), (16, 23, "organ"), (24, 31, "guitar"), (32, 39, "bass"), (40, 51, "strings"),
                (56, 63, "brass"), (64, 79, "woodwinds"), (80, 103, "synth"))
    for lo, hi, label in families:
        if lo <= program <= hi:
            return label
    return None


def describe(f: MusicFeatures, programs: Iterable[int] = (0,), drums: bool = False) -> list[str]:
    """Attribute labels for measured features, in the order a viewer reads them."""
    if f.notes == 0:
        return []
    labels = []
    tempo = None
    if f.bpm is not None:
        tempo = "slow" if f.bpm < SLOW_BELOW else "fast" if f.bpm > FAST_ABOVE else "medium"
        labels.append(f"{tempo} tempo")
    mode = f.key.split()[1] if f.key else None
    if mode:
        labels.append(f"{mode} key")
    soft, loud = f.mean_velocity < SOFT_BELOW, f.mean_velocity > LOUD_ABOVE
    if soft or loud:
        labels.append("soft" if soft else "loud")
    if f.mean_pitch < LOW_BELOW or f.mean_pitch > HIGH_ABOVE:
        labels.append("low register" if f.mean_pitch < LOW_BELOW else "high register")
    instruments = sorted({lb for p in programs if (lb := instrument_label(p))})
    if f.polyphony >= CHORDS_ABOVE:
        labels.append("chords")
    elif f.polyphony < SOLO_BELOW and len(instruments) <= 1 and not drums:
        labels.append("solo")
    if f.notes_per_second < SIMPLE_BELOW:
        labels.append("simple")
    elif f.notes_per_second > COMPLEX_ABOVE:
        labels.append("complex")
    labels += _moods(tempo, mode, soft, loud, f)
    labels += instruments + (["drums"] if drums else [])
    return labels


def _moods(tempo: str | None, mode: str | None, soft: bool, loud: bool, f: MusicFeatures) -> list[str]:
    """At most two mood words, from the tempo, mode and dynamics a listener hears them in."""
    moods = []
    if mode == "minor":
        moods.append({"slow": "sad", "fast": "intense"}.get(tempo or "", "emotional"))
        if soft and tempo != "fast":
            moods.append("dark")
    elif mode == "major":
        if tempo == "fast" or (loud and tempo != "slow"):
            moods.append("energetic")
        moods.append("happy" if tempo != "slow" else "calm")
    if soft and tempo != "fast" and "dark" not in moods:
        moods.append("mellow")
    elif loud and "energetic" not in moods and "intense" not in moods:
        moods.append("intense" if mode == "minor" else "energetic")
    return list(dict.fromkeys(moods))[:2]


def notes_from_messages(messages: Iterable[tuple[float, list[int]]], now: float | None = None):
    """(notes, programs, drums) from sent MIDI messages (t, [status, d1, d2]); notes still sounding
    end at ``now``. Programs default to 0 (piano) on channels that never got a program change."""
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    notes: list[Note] = []
    programs: dict[int, int] = {}
    drums = False
    channels = set()
    last = 0.0
    for t, msg in messages:
        if not msg:
            continue
        last = max(last, t)
        kind, channel = msg[0] & 0xF0, msg[0] & 0x0F
        if kind == 0xC0 and len(msg) > 1:
            programs[channel] = msg[1]
        elif kind in (0x80, 0x90) and len(msg) > 2:
            if channel == 9:
                drums = drums or (kind == 0x90 and msg[2] > 0)
                continue
            channels.add(channel)
            key = (channel, msg[1])
            if key in sounding:
                start, velocity = sounding.pop(key)
                if t > start:
                    notes.append(Note(start, t, msg[1], velocity))
            if kind == 0x90 and msg[2] > 0:
                sounding[key] = (t, msg[2])
    end = last if now is None else now
    notes += [Note(s, max(end, s + 0.01), p, v) for (_, p), (s, v) in sounding.items()]
    used = {programs.get(c, 0) for c in channels} or {0}
    return sorted(notes), sorted(used), drums


def read_midi_file(path: str):
    """(notes, programs, drums, bpm or None) of a MIDI file; unreadable files are a UserError."""
    import mido  # MIDI files: only `livegen comment --midi` reads one; live commentary hears the engine

    from livegen.music.corpus import read_midi  # mido too (see above)

    try:
        notes = read_midi(path)
        midi = mido.MidiFile(path, clip=True)
    except FileNotFoundError:
        raise UserError(f"MIDI file {path} does not exist") from None
    except Exception as exc:  # mido raises many kinds on a damaged file
        raise UserError(f"{path} is not a readable MIDI file ({type(exc).__name__}: {exc})") from None
    programs: dict[int, int] = {}
    channels, drums, tempos = set(), False, []
    for track in midi.tracks:
        for msg in track:
            if msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                if msg.channel == 9:
                    drums = True
                else:
                    channels.add(msg.channel)
            elif msg.type == "set_tempo":
                tempos.append(mido.tempo2bpm(msg.tempo))
    used = sorted({programs.get(c, 0) for c in channels} or {0})
    # a single stated tempo is trusted; none (the 120 default) or a changing one is estimated
    bpm = tempos[0] if len(set(round(t, 1) for t in tempos)) == 1 else None
    return notes, used, drums, bpm
