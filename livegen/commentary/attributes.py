"""What is being played, as a listener hears it: notes of the last ~15 s -> readings and labels.

Measured from the notes alone (never the engine's or the file's nominal tempo): the pace (heard
events, i.e. onsets with a chord counted once, per second; and the beat, by onset autocorrelation),
note density, register (mean pitch), key and mode (Krumhansl-Kessler profiles against the
pitch-class histogram), dynamics (mean velocity), texture (notes sounding at once) and the
instruments (General MIDI programs; drums on channel 10). Each measure becomes a ``Reading``: a
value ("slow", "minor", ...) and a confidence, low near the boundary between two values, with few
notes, or for a mode the relative key fits nearly as well. Only sure readings become the labels
of ``text.CANDIDATES`` the commentary model is conditioned on, and only they make a sentence's
claim true (``truth.py``): the commentary says nothing it is unsure of.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from livegen.errors import UserError
from livegen.music.events import Note

WINDOW_SECONDS = 15.0
SURE = 0.75  # a reading at least this confident is said (and a sentence may claim it)
FULL_NOTES = 12  # fewer notes than this in a window scale every confidence down
CHORD_SPREAD = 0.04  # s: onsets this close are one heard event (a chord, a spread chord)
# (measure, value below the low edge, between, above the high edge, low edge, high edge, margin, scale):
# at an edge a reading is 50 % sure, a margin inside its band 100 %; "log" scales measure ratios
SCALES = {
    "pace": ("events_per_second", ("slow", "medium", "fast"), 2.4, 3.8, math.log(1.25), "log"),
    "dynamics": ("mean_velocity", ("soft", "moderate", "loud"), 64.0, 96.0, 8.0, "linear"),
    "register": ("mean_pitch", ("low", "middle", "high"), 57.0, 68.0, 3.0, "linear"),
    "density": ("notes_per_second", ("sparse", "moderate", "busy"), 3.0, 9.0, math.log(1.25), "log"),
    "texture": ("polyphony", ("line", "mixed", "chords"), 1.3, 2.2, 0.3, "linear"),
}
MODE_MIN_CORRELATION, MODE_FULL_MARGIN = 0.7, 0.1  # best key's fit; its mode's lead over the other mode's
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl-Kessler key profiles
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class MusicFeatures:
    seconds: float  # length of the window that had notes
    notes: int
    notes_per_second: float
    events_per_second: float  # onsets heard apart (a chord is one) per second: the pace
    bpm: float | None  # the beat the onsets suggest; None: too few notes to tell
    mean_pitch: float
    key: str | None  # e.g. "C major"; None when the histogram fits no key well
    key_correlation: float
    mode_margin: float  # how much better the key's mode fits than the other mode (< 0: the weightings disagree)
    mean_velocity: float
    polyphony: float  # mean number of notes sounding while any sounds

    def to_json(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Reading:
    value: str
    confidence: float  # 0.5: on the edge between two values; 1: clearly this one

    @property
    def sure(self) -> bool:
        return self.confidence >= SURE

    def to_json(self) -> list:
        return [self.value, round(self.confidence, 2)]


def window(notes: Iterable[Note], end: float | None = None, seconds: float = WINDOW_SECONDS) -> list[Note]:
    """Notes sounding in the ``seconds`` before ``end`` (default: the last note's end)."""
    notes = list(notes)
    if not notes:
        return []
    end = max(n.end for n in notes) if end is None else end
    return [n for n in notes if n.end > end - seconds and n.start < end]


def heard_events(notes: list[Note]) -> np.ndarray:
    """Onset times a listener hears apart: notes starting within CHORD_SPREAD of the previous are one."""
    onsets = np.sort(np.array([n.start for n in notes]))
    if not len(onsets):
        return onsets
    return onsets[np.r_[True, np.diff(onsets) > CHORD_SPREAD]]


def events_per_second(notes: list[Note]) -> float:
    """The pace: heard events per second between the first and the last (at least a second)."""
    events = heard_events(notes)
    if len(events) < 2:
        return 0.0
    return (len(events) - 1) / max(events[-1] - events[0], 1.0)


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


def _key_fits(hist: np.ndarray) -> dict[str, tuple[float, str]]:
    """Per mode, (best correlation, key name) over the twelve tonics."""
    fits = {}
    for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
        fits[mode] = max((float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1]), f"{PITCH_NAMES[tonic]} {mode}")
                         for tonic in range(12))
    return fits


def estimate_key(notes: list[Note]) -> tuple[str | None, float, float]:
    """(e.g. "A minor", correlation, mode margin) from the duration-weighted pitch-class histogram.

    The mode margin is how much better the best key of that mode fits than the best of the other
    (a relative major and minor share their notes, so it is often small), and the smaller of that
    over the duration-weighted and the note-count histograms: negative when they pick different modes."""
    by_duration, by_count = np.zeros(12), np.zeros(12)
    for n in notes:
        by_duration[n.pitch % 12] += min(n.end - n.start, 2.0)
        by_count[n.pitch % 12] += 1
    if by_duration.sum() <= 0 or np.count_nonzero(by_duration) < 3:
        return None, 0.0, 0.0
    fits = _key_fits(by_duration)
    mode = max(fits, key=lambda m: fits[m][0])
    other = "minor" if mode == "major" else "major"
    counted = _key_fits(by_count)
    margin = min(fits[mode][0] - fits[other][0], counted[mode][0] - counted[other][0])
    best, name = fits[mode]
    return (name if best >= 0.5 else None), best, margin


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


def measure(notes: list[Note]) -> MusicFeatures:
    """Features of the notes of one window, from the notes alone."""
    if not notes:
        return MusicFeatures(0.0, 0, 0.0, 0.0, None, 0.0, None, 0.0, 0.0, 0.0, 0.0)
    start, end = min(n.start for n in notes), max(n.end for n in notes)
    seconds = max(end - start, 1e-3)
    key, r, margin = estimate_key(notes)
    return MusicFeatures(
        seconds=seconds, notes=len(notes), notes_per_second=len(notes) / max(seconds, 1.0),
        events_per_second=events_per_second(notes), bpm=estimate_bpm(notes),
        mean_pitch=float(np.mean([n.pitch for n in notes])), key=key, key_correlation=r, mode_margin=margin,
        mean_velocity=float(np.mean([n.velocity for n in notes])), polyphony=polyphony(notes))


def _scale_reading(x: float, values: tuple[str, str, str], low: float, high: float, margin: float,
                   kind: str) -> Reading:
    if kind == "log":
        x, low, high = math.log(max(x, 1e-6)), math.log(low), math.log(high)
    value = values[0] if x < low else values[2] if x > high else values[1]
    inside = min(abs(x - low), abs(x - high)) if value == values[1] else abs(x - (low if x < low else high))
    return Reading(value, 0.5 + 0.5 * min(1.0, inside / margin))


def hear(f: MusicFeatures) -> dict[str, Reading]:
    """The readings of measured features: pace, dynamics, register, density, texture and mode."""
    if f.notes == 0:
        return {}
    few = min(1.0, f.notes / FULL_NOTES)
    readings = {}
    for name, (attribute, values, low, high, margin, kind) in SCALES.items():
        r = _scale_reading(getattr(f, attribute), values, low, high, margin, kind)
        readings[name] = Reading(r.value, r.confidence * few)
    if f.key is not None:
        fit = 1.0 if f.key_correlation >= MODE_MIN_CORRELATION else 0.0
        lead = max(0.0, min(1.0, f.mode_margin / MODE_FULL_MARGIN))
        readings["mode"] = Reading(f.key.split()[1], (0.5 + 0.5 * lead) * fit * few)
    return readings


def instrument_label(program: int) -> str | None:
    """General MIDI program (0..127) -> instrument label."""
    families = ((0, 7, "piano"), (16, 23, "organ"), (24, 31, "guitar"), (32, 39, "bass"), (40, 51, "strings"),
                (56, 63, "brass"), (64, 79, "woodwinds"), (80, 103, "synth"))
    for lo, hi, label in families:
        if lo <= program <= hi:
            return label
    return None


def describe(f: MusicFeatures, programs: Iterable[int] = (0,), drums: bool = False) -> list[str]:
    """Attribute labels for the sure readings of measured features, in the order a viewer reads them."""
    if f.notes == 0:
        return []
    readings = {name: r.value for name, r in hear(f).items() if r.sure}
    pace, mode, dynamics = readings.get("pace"), readings.get("mode"), readings.get("dynamics")
    labels = [f"{pace} tempo"] if pace else []
    labels += [f"{mode} key"] if mode else []
    labels += [dynamics] if dynamics in ("soft", "loud") else []
    register = readings.get("register")
    labels += [f"{register} register"] if register in ("low", "high") else []
    instruments = sorted({lb for p in programs if (lb := instrument_label(p))})
    texture = readings.get("texture")
    if texture == "chords":
        labels.append("chords")
    elif texture == "line" and len(instruments) <= 1 and not drums:
        labels.append("solo")
    density = readings.get("density")
    labels += [{"sparse": "simple", "busy": "complex"}[density]] if density in ("sparse", "busy") else []
    labels += _moods(pace, mode, dynamics == "soft", dynamics == "loud")
    labels += instruments + (["drums"] if drums else [])
    return labels


def _moods(tempo: str | None, mode: str | None, soft: bool, loud: bool) -> list[str]:
    """At most two mood words, from the tempo, mode and dynamics a listener hears them in; a mood
    word that says a pace or a loudness ("energetic", "calm", "intense") only when that is heard."""
    moods = []
    if mode == "minor":
        moods.append("sad" if tempo == "slow" else "emotional")
        if soft and tempo != "fast":
            moods.append("dark")
    elif mode == "major":
        if tempo == "fast":
            moods.append("energetic")
        if tempo != "slow":
            moods.append("happy")
        elif soft:
            moods.append("calm")
    if soft and "dark" not in moods:
        moods.append("mellow")
    elif loud:
        moods.append("intense")
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
    """(notes, programs, drums) of a MIDI file; unreadable files are a UserError. Its stated tempo is
    not read: the pace is heard from the notes, as a listener hears it."""
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
    channels, drums = set(), False
    for track in midi.tracks:
        for msg in track:
            if msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                if msg.channel == 9:
                    drums = True
                else:
                    channels.add(msg.channel)
    return notes, sorted({programs.get(c, 0) for c in channels} or {0}), drums
