"""Examples to learn from: recordings (a Myo readings session folder, a Neuro-Breakout CSV) and
the examples files the panel records, read into the inputs and outputs of a mapping; a mapping's own TOML gives back
the examples it holds.

Recordings go through the same EMG processing as live input (``Processor``: high-pass, envelope,
calibration, smoothing), calibrated per session as ``livegen calibrate emg`` does live: rest from
the session's rest recording (``0.txt``, else its label-0 samples, else its quietest tenth), the
strongest contraction from a high percentile of the whole session. Each session is then turned
to the common orientation (``mapping.orientation``).

An examples file is CSV: a header ``take,INPUT...,OUTPUT...`` (input and output names as in a
mapping), then one example per line: the take it was recorded in, the input values, and the
outputs set while it was recorded (a number, a class name, or empty where that output was not
set). ``ExampleRecorder`` writes it.
"""
from __future__ import annotations

import csv
import io
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.errors import UserError
from livegen.sensors.emg.processing import Calibration, Mapping as EmgMapping, Processor, calibrate_from
from livegen.sensors.emg.replay import Recording, load_recording
from livegen.sensors.learn.mapping import (EMG_INPUTS, EmgSettings, Mapping, Output, check_input, orientation,
                                           output_kind)

PADDLE_WIDTH = 1400.0  # Neuro-Breakout's screen, in pixels: the paddle's x is normalised by it
REST_LABEL = 0


@dataclass
class Source:
    """Examples from one source: input vectors and the outputs' values (NaN / "" where unset)."""

    inputs: list[str]
    x: np.ndarray  # (n, inputs)
    outputs: dict[str, np.ndarray]  # name -> (n,) floats (NaN: unset) or text ("": unset)
    rotate: int | None = None  # the EMG orientation of a recorded session (None: not a recording)
    lengths: list[int] | None = None  # a session's samples per recording file, in order (time blocks per file)
    settings: dict[str, Output] | None = None  # a mapping's outputs: model, its settings, smoothing kept on a new fit


def read_sources(spec: str, settings: EmgSettings, output: str | None = None) -> list[Source]:
    """The examples of ``SRC[,SRC...]``; ``output`` names what a recording's label or paddle
    becomes (default: theme for gestures, density for a paddle)."""
    paths = [p.strip() for p in spec.split(",") if p.strip()]
    if not paths:
        raise UserError("--examples names no source: give a session folder, a recording or an examples file")
    sources = [read_source(Path(p), settings, output) for p in paths]
    for s in sources[1:]:
        if s.inputs != sources[0].inputs:
            raise UserError(f"the examples' inputs differ: {', '.join(sources[0].inputs)} in one source, "
                            f"{', '.join(s.inputs)} in another (mismatched input sizes)")
    return sources


def read_source(path: Path, settings: EmgSettings, output: str | None = None) -> Source:
    if path.is_dir():
        return read_session(path, settings, output or "theme")
    if not path.is_file():
        raise UserError(f"examples {path} do not exist" if not path.exists() else
                        f"examples {path} are not a file or folder")
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the examples {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if first.startswith("take,"):
        return read_examples_file(path)
    if path.suffix == ".toml":
        return mapping_source(Mapping.load(path))
    recording = load_recording(path)
    if recording.targets is None:
        raise UserError(f"{path}: a recording without a target to learn (no paddle column and no labels): "
                        "give a Myo readings session folder, a Neuro-Breakout CSV or an examples file")
    name = output or "density"
    if output_kind(name) != "regress":
        raise UserError(f"{path}: a paddle position is a number: it teaches pitch, density or z1..z8, not {name}")
    levels = _calibrated_levels([recording], settings, rest=None)
    rotate = orientation(levels[0])
    paddle = np.clip(recording.targets / PADDLE_WIDTH, 0.0, 1.0)
    return Source(list(EMG_INPUTS), np.roll(levels[0], rotate, axis=1), {name: paddle}, rotate, [len(paddle)])


def read_session(folder: Path, settings: EmgSettings, output: str) -> Source:
    """A Myo readings session: ``<label>.txt`` files of ``e1..e8,label`` lines."""
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".txt" and p.stem.isdigit())
    except OSError as exc:
        raise UserError(f"cannot read the session folder {folder}: {exc.strerror or exc}") from None
    if not files:
        raise UserError(f"{folder} holds no <label>.txt recordings (a Myo readings session folder)")
    if output_kind(output) != "classify":
        raise UserError(f"{folder}: gestures are classes: they teach theme or preset, not {output}")
    recordings = [load_recording(f) for f in files]
    for f, r in zip(files, recordings):
        if r.labels is None:
            raise UserError(f"{f}: lines must be e1,...,e8,label (a Myo readings session file)")
    rest_files = [r for f, r in zip(files, recordings) if f.stem == str(REST_LABEL)]
    levels = _calibrated_levels(recordings, settings, rest=rest_files or "labels")
    joined = np.concatenate(levels)
    rotate = orientation(joined)
    labels = np.concatenate([r.labels for r in recordings]).astype(str)
    return Source(list(EMG_INPUTS), np.roll(joined, rotate, axis=1), {output: labels}, rotate,
                  [len(r.samples) for r in recordings])


def _calibrated_levels(recordings: list[Recording], settings: EmgSettings, rest) -> list[np.ndarray]:
    """Levels (n, 8) of each recording, the session calibrated on itself: ``rest`` is its rest
    recordings, "labels" (its label-0 samples) or None (its quietest tenth)."""
    mapping = EmgMapping(envelope=settings.envelope, window=settings.window, smoothing=settings.smoothing)

    def processor(r: Recording, calibration: Calibration) -> Processor:
        return Processor(r.rate_hz, mapping, calibration, r.rectified, r.value_range)

    raw = [Calibration.default(r.value_range, 8, r.rectified) for r in recordings]
    envelopes = [processor(r, c).envelopes(r.samples) for r, c in zip(recordings, raw)]
    everything = np.concatenate(envelopes)
    if isinstance(rest, list):
        rest_envelopes = np.concatenate([envelopes[recordings.index(r)] for r in rest])
    elif rest == "labels":
        rest_envelopes = np.concatenate([e[r.labels == REST_LABEL] for e, r in zip(envelopes, recordings)])
    else:
        total = everything.sum(axis=1)
        rest_envelopes = everything[total <= np.percentile(total, 10)]
    calibration, _ = calibrate_from(rest_envelopes, everything, "session", mapping)
    return [processor(r, calibration).run(r.samples) for r in recordings]


def read_examples_file(path: Path) -> Source:
    """An examples file (see the module's docstring); a line that does not fit is one clear error."""
    return _read_examples(path)[0]


def _read_examples(path: Path) -> tuple[Source, list[int]]:
    """The examples in a file, and the take of each."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the examples {path}: {getattr(exc, 'strerror', None) or exc}") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]] if rows else []
    if not header or header[0] != "take":
        raise UserError(f"{path}: an examples file starts with a header take,INPUT...,OUTPUT...")
    names = header[1:]
    outputs = [n for n in names if _is_output(n)]
    inputs = [n for n in names if not _is_output(n)]
    for name in inputs:
        check_input(name)
    if not inputs or not outputs:
        raise UserError(f"{path}: the header names no {'input' if not inputs else 'output'}")
    x, takes, values = [], [], {n: [] for n in outputs}
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{path}: line {number} has {len(row)} values for {len(header)} columns")
        cells = dict(zip(names, (c.strip() for c in row[1:])))
        try:
            takes.append(int(row[0]))
            vector = [float(cells[n]) for n in inputs]
            for n in outputs:
                if output_kind(n) == "regress":
                    values[n].append(float(cells[n]) if cells[n] else math.nan)
                else:
                    values[n].append(cells[n])
        except ValueError:
            raise UserError(f"{path}: line {number} holds a value that is not a number where one must be (the take, an input or a regressed output)") from None
        if not all(map(math.isfinite, vector)):
            raise UserError(f"{path}: line {number} holds an input that is not a finite number")
        x.append(vector)
    columns = {n: np.array(v, dtype=np.float64 if output_kind(n) == "regress" else str) for n, v in values.items()}
    return Source(inputs, np.array(x, dtype=np.float64).reshape(len(x), len(inputs)), columns), takes


def mapping_source(mapping: Mapping) -> Source:
    """The examples a mapping holds (each output's rows, the other outputs unset in them), to fit
    it again after editing."""
    rows = [o.examples.x for o in mapping.outputs.values()]
    columns = {}
    for name, o in mapping.outputs.items():
        parts = [o.examples.y if other is o else np.full(len(other.examples), math.nan if o.kind == "regress" else "")
                 for other in mapping.outputs.values()]
        columns[name] = np.concatenate(parts)
    return Source(list(mapping.inputs), np.concatenate(rows), columns, mapping.emg.rotate,
                  settings=dict(mapping.outputs))


def _is_output(name: str) -> bool:
    try:
        output_kind(name)
    except UserError:
        return False
    return True


def examples_for(sources: list[Source], output: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every example that sets ``output``, over all sources."""
    xs, ys = [], []
    for s in sources:
        if output not in s.outputs:
            continue
        y = s.outputs[output]
        keep = ~np.isnan(y) if y.dtype.kind == "f" else y != ""
        xs.append(s.x[keep])
        ys.append(y[keep])
    if not xs or not sum(map(len, ys)):
        raise UserError(f"no examples set the output {output}")
    return np.concatenate(xs), np.concatenate(ys)


@dataclass
class ExampleRecorder:
    """Examples recorded live, in takes: while a take records, each ``add`` keeps the current input
    vector with the outputs set by hand. A take can be deleted or recorded again."""

    inputs: list[str]
    outputs: list[str]
    takes: dict[int, list[tuple[list[float], dict]]] = field(default_factory=dict)
    recording: int | None = None  # the take being recorded
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self):
        for name in self.inputs:
            check_input(name)
        for name in self.outputs:
            output_kind(name)

    def start(self, take: int | None = None) -> int:
        """Start recording a take (a number given: record it again, its old examples dropped)."""
        with self._lock:
            take = max(self.takes, default=0) + 1 if take is None else take
            self.takes[take] = []
            self.recording = take
        return take

    def stop(self) -> None:
        self.recording = None

    def add(self, inputs, outputs: dict) -> None:
        """One example, kept while a take records (thread-safe: a sensor's thread calls it)."""
        if self.recording is None:
            return
        vector = [float(v) for v in inputs]
        if len(vector) != len(self.inputs):
            raise UserError(f"an example has {len(vector)} inputs for {len(self.inputs)} ({', '.join(self.inputs)})")
        unknown = set(outputs) - set(self.outputs)
        if unknown:
            raise UserError(f"output {sorted(unknown)[0]} is not one this recorder records")
        with self._lock:
            if self.recording is not None:
                self.takes[self.recording].append((vector, dict(outputs)))

    def delete(self, take: int) -> None:
        with self._lock:
            self.takes.pop(take, None)
            if self.recording == take:
                self.recording = None

    def counts(self) -> dict[int, int]:
        return {take: len(rows) for take, rows in self.takes.items()}

    def source(self) -> Source:
        with self._lock:
            rows = [(vector, out) for take in sorted(self.takes) for vector, out in self.takes[take]]
        x = np.array([v for v, _ in rows], dtype=np.float64).reshape(len(rows), len(self.inputs))
        columns = {}
        for name in self.outputs:
            regress = output_kind(name) == "regress"
            values = [o.get(name, math.nan if regress else "") for _, o in rows]
            columns[name] = np.array([float(v) for v in values] if regress else [str(v) for v in values])
        return Source(list(self.inputs), x, columns)

    def save(self, path: str | Path) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["take", *self.inputs, *self.outputs])
        for take in sorted(self.takes):
            for vector, values in self.takes[take]:
                writer.writerow([take, *(repr(v) for v in vector),
                                 *(_cell(values.get(n)) for n in self.outputs)])
        try:
            Path(path).write_text(out.getvalue(), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write the examples {path}: {exc.strerror or exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "ExampleRecorder":
        """An examples file back as takes, to add to, delete from and record again."""
        source, takes_column = _read_examples(Path(path))
        recorder = cls(source.inputs, list(source.outputs))
        for i, take in enumerate(takes_column):
            values = {n: v[i].item() for n, v in source.outputs.items()
                      if not (v.dtype.kind == "f" and math.isnan(v[i])) and v[i] != ""}
            recorder.takes.setdefault(take, []).append((source.x[i].tolist(), values))
        return recorder


def _cell(value) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, (int, float)) else str(value)
