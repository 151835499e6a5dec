"""A learned mapping: named inputs -> named outputs, one small model per output, with the
examples it was fitted on, saved as TOML (``MAP.toml``).

Inputs: ``emg1``..``emg8`` (an armband's levels 0..1 after the mapping's EMG processing and the
user's calibration), ``hand_x``, ``hand_y`` (a camera's hand: 0 left .. 1 right, 0 bottom .. 1
top of the image; no tracker gives the hand's size or openness) and ``osc:/ADDRESS`` (a number
another tool sends, in an examples file; live, a mapping reads the armband or the camera). Outputs: ``pitch``, ``density``, ``z1``..``z8``
(regressed), ``theme`` and ``preset`` (classes, as text). EMG levels enter the models as
``log(level + 0.02)``: a muscle's envelope grows multiplicatively with effort, and the log keeps
the quiet channels' pattern from being drowned by one loud one.

An armband sits at another angle on every arm and every session, so EMG examples from a recording
are turned to a common orientation (``orientation``): the channels are rolled so that the first
circular harmonic of the session's active samples points at channel 1. Live levels are rolled by
the mapping's ``emg.rotate``, the turn of the session its first examples came from: the armband is
taken to sit as it did then.
"""
from __future__ import annotations

import math
import re
import time
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from livegen.errors import UserError
from livegen.models.learners import Knn, KnnConfig, Mlp, MlpConfig, config_dict
from livegen.sensors.emg.processing import CHANNELS

FORMAT = "livegen-mapping"
EMG_INPUTS = tuple(f"emg{i}" for i in range(1, CHANNELS + 1))
HAND_INPUTS = ("hand_x", "hand_y")  # where the trackers see the hand (none gives its size or openness)
REGRESSED = ("pitch", "density", *(f"z{i}" for i in range(1, 9)))
CLASSES = ("theme", "preset")
MODELS = ("knn", "mlp")
DEFAULT_MODEL = {"classify": "knn", "regress": "mlp"}  # the better of each on the real recordings (docs/measurements.md)
LOG_FLOOR = 0.02


def check_input(name: str) -> str:
    if name in EMG_INPUTS or name in HAND_INPUTS or re.fullmatch(r"osc:/[\x21-\x7e]{1,120}", name):
        return name
    raise UserError(f"mapping input {name!r} is not emg1..emg8, {', '.join(HAND_INPUTS)} or osc:/ADDRESS")


def output_kind(name: str) -> str:
    if name in REGRESSED:
        return "regress"
    if name in CLASSES:
        return "classify"
    raise UserError(f"mapping output {name!r} is not one of {', '.join(REGRESSED + CLASSES)}")


@dataclass
class EmgSettings:
    """How armband samples become the levels a mapping reads (as the preset's [emg] section)."""

    envelope: str = "rms"
    window: float = 0.075
    smoothing: float = 0.2  # s: steadier than the z path's, a class must not flicker
    rotate: int = 0  # live levels are rolled by this many channels (see the module's docstring)

    def check(self) -> None:
        if self.envelope not in ("rms", "ema") or not 0.01 <= self.window <= 1.0 or not 0 <= self.smoothing <= 2.0 \
                or not 0 <= self.rotate < CHANNELS:
            raise ValueError("emg needs envelope rms|ema, window 0.01..1 s, smoothing 0..2 s, rotate 0..7")


def orientation(levels: np.ndarray) -> int:
    """Channels to roll a session's levels (n, 8) by so that its active samples' pattern points at
    channel 1: the first circular harmonic of their log levels, averaged, rounded to a channel."""
    g = np.log(np.asarray(levels, dtype=np.float64) + LOG_FLOOR)
    total = g.sum(axis=1)
    active = g[total >= np.median(total)] if len(g) else g
    if not len(active):
        return 0
    first = np.fft.rfft(active - active.mean(axis=1, keepdims=True), axis=1)[:, 1].mean()
    return int(round(np.angle(first) * CHANNELS / (2 * np.pi))) % CHANNELS


def features(inputs: list[str], x: np.ndarray) -> np.ndarray:
    """What the models see of input vectors (n, inputs) or (inputs,): EMG levels as logs."""
    x = np.asarray(x, dtype=np.float64)
    emg = [i for i, name in enumerate(inputs) if name in EMG_INPUTS]
    if not emg:
        return x
    out = x.copy()
    out[..., emg] = np.log(np.maximum(x[..., emg], 0.0) + LOG_FLOOR)
    return out


@dataclass
class Examples:
    """Input vectors with the value of one output for each (numbers, or class names as text)."""

    x: np.ndarray  # (n, inputs)
    y: np.ndarray  # (n,) float for regression, str for classes

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Output:
    name: str
    model: str = ""  # knn | mlp; "" = the default for its kind
    knn: KnnConfig = field(default_factory=KnnConfig)
    mlp: MlpConfig = field(default_factory=MlpConfig)
    smoothing: float = 0.1  # s, live: a regressed value's one-pole time constant; a class's hold
    examples: Examples | None = None
    weights: dict | None = None  # a fitted network's state, as read from a file
    learner: Knn | Mlp | None = None

    @property
    def kind(self) -> str:
        return output_kind(self.name)

    def fit(self, inputs: list[str]) -> float:
        """Fit the output's model on its examples (of ``inputs``); the seconds it took."""
        ex = self.examples
        if ex is None or len(ex) == 0:
            raise UserError(f"output {self.name}: no examples to learn from")
        if self.kind == "classify" and len(set(ex.y.tolist())) < 2:
            raise UserError(f"output {self.name}: the examples hold one class only ({ex.y[0]!r}); "
                            "a classifier needs examples of at least two")
        model = self.model or DEFAULT_MODEL[self.kind]
        started = time.perf_counter()
        learner = Knn(self.kind, self.knn) if model == "knn" else Mlp(self.kind, self.mlp)
        self.learner = learner.fit(features(inputs, ex.x), ex.y)
        return time.perf_counter() - started


@dataclass
class Mapping:
    inputs: list[str]
    outputs: dict[str, Output]
    emg: EmgSettings = field(default_factory=EmgSettings)

    def __post_init__(self):
        for name in self.inputs:
            check_input(name)
        if len(set(self.inputs)) != len(self.inputs) or not self.inputs:
            raise UserError("a mapping needs one or more inputs, each named once")
        for name in self.outputs:
            output_kind(name)

    @property
    def emg_inputs(self) -> list[int]:
        """Positions of the EMG inputs, in the order emg1..emg8."""
        return [self.inputs.index(n) for n in EMG_INPUTS if n in self.inputs]

    def fit(self) -> dict[str, float]:
        """Fit every output; seconds each took."""
        return {name: output.fit(self.inputs) for name, output in self.outputs.items()}

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output for input vectors (n, inputs)."""
        f = features(self.inputs, x)
        return {name: o.learner.predict(f) for name, o in self.outputs.items()}

    def predictor(self):
        """The live path: input vector (inputs,) -> {output: value}, one vector at a time."""
        emg = np.array([i for i, n in enumerate(self.inputs) if n in EMG_INPUTS], dtype=int)
        learners = [(name, o.learner) for name, o in self.outputs.items()]

        def predict(x: np.ndarray) -> dict:
            f = np.array(x, dtype=np.float64)
            if len(emg):
                f[emg] = np.log(np.maximum(f[emg], 0.0) + LOG_FLOOR)
            return {name: learner.predict_one(f) for name, learner in learners}
        return predict

    # --- TOML -----------------------------------------------------------------------------------

    def dumps(self) -> str:
        lines = ["# livegen learned mapping (`livegen learn fit`): inputs -> outputs, a model per output",
                 "# and the examples it learned from (edit them, then `livegen learn fit --examples THIS.toml`).",
                 f"kind = {_text(FORMAT)}", "version = 1", f"inputs = {_list(self.inputs)}", "",
                 "[emg]", f"envelope = {_text(self.emg.envelope)}", f"window = {self.emg.window!r}",
                 f"smoothing = {self.emg.smoothing!r}", f"rotate = {self.emg.rotate}"]
        for name, o in self.outputs.items():
            lines += ["", f"[outputs.{name}]", f"model = {_text(o.model or DEFAULT_MODEL[o.kind])}",
                      f"smoothing = {o.smoothing!r}"]
            for section, config in (("knn", o.knn), ("mlp", o.mlp)):
                lines += ["", f"[outputs.{name}.{section}]"]
                lines += [f"{k} = {_value(v)}" for k, v in config_dict(config).items()]
            if isinstance(o.learner, Mlp):
                lines += ["", f"[outputs.{name}.weights]"]
                lines += [f"{k} = {_value(v)}" for k, v in o.learner.state().items()]
            if o.examples is not None:
                lines += ["", f"[outputs.{name}.examples]", "x = ["]
                lines += [f"  {_list(row)}," for row in o.examples.x.tolist()]
                lines += ["]", f"y = {_list(o.examples.y.tolist())}"]
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(self.dumps(), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            raise UserError(f"cannot write the mapping {path}: {exc.strerror or exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "Mapping":
        """A mapping from its TOML, ready to predict; anything wrong in it is one ``UserError`` line."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the mapping {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.loads(text, f"mapping {path}")

    @classmethod
    def loads(cls, text: str, where: str = "mapping") -> "Mapping":
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
            raise UserError(f"{where} is not valid TOML ({exc})") from None
        try:
            return cls._from_data(data)
        except (ValueError, UserError) as exc:  # an unknown input or output name is a UserError already
            raise UserError(f"{where}: {exc}") from None

    @classmethod
    def _from_data(cls, data: dict) -> "Mapping":
        _keys(data, {"kind", "version", "inputs", "emg", "outputs"}, "")
        if data.get("kind") != FORMAT or data.get("version") != 1:
            raise ValueError(f"kind must be {FORMAT!r} and version 1: not a livegen mapping")
        inputs = data.get("inputs")
        if not (isinstance(inputs, list) and all(isinstance(i, str) for i in inputs)):
            raise ValueError("inputs must be a list of input names")
        emg = _section(data.get("emg", {}), EmgSettings, "emg")
        emg.check()
        raw = data.get("outputs")
        if not isinstance(raw, dict) or not raw:
            raise ValueError("[outputs] must hold one table per output")
        outputs = {}
        for name, table in raw.items():
            output_kind(name)
            outputs[name] = _output(name, table, len(inputs))
        mapping = cls(list(inputs), outputs, emg)
        for o in mapping.outputs.values():
            if o.examples is None:
                raise ValueError(f"output {o.name} has no examples")
            if (o.model or DEFAULT_MODEL[o.kind]) == "mlp" and o.weights is not None:
                classes = sorted(set(o.examples.y.tolist())) if o.kind == "classify" else None
                o.learner = Mlp.from_state(o.kind, o.mlp, o.weights, classes, len(inputs))
            else:
                o.fit(mapping.inputs)
        return mapping


def _output(name: str, table, width: int) -> Output:
    if not isinstance(table, dict):
        raise ValueError(f"outputs.{name} must be a table")
    _keys(table, {"model", "smoothing", "knn", "mlp", "weights", "examples"}, f"outputs.{name}.")
    model = table.get("model", DEFAULT_MODEL[output_kind(name)])
    if model not in MODELS:
        raise ValueError(f"outputs.{name}.model must be one of {', '.join(MODELS)}")
    smoothing = table.get("smoothing", 0.1)
    if not _number(smoothing) or not 0 <= smoothing <= 10:
        raise ValueError(f"outputs.{name}.smoothing must be 0..10 s")
    knn = _section(table.get("knn", {}), KnnConfig, f"outputs.{name}.knn")
    mlp = _section(table.get("mlp", {}), MlpConfig, f"outputs.{name}.mlp")
    knn.check()
    mlp.check()
    weights = table.get("weights")
    if weights is not None and not isinstance(weights, dict):
        raise ValueError(f"outputs.{name}.weights must be a table")
    output = Output(name, model, knn, mlp, float(smoothing), weights=weights)
    ex = table.get("examples")
    if ex is not None:
        if not isinstance(ex, dict) or set(ex) != {"x", "y"}:
            raise ValueError(f"outputs.{name}.examples needs exactly x and y")
        try:
            x = np.array(ex["x"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"outputs.{name}.examples.x must be rows of numbers") from None
        y = ex["y"]
        if x.ndim != 2 or x.shape[1] != width or not isinstance(y, list) or len(y) != len(x):
            raise ValueError(f"outputs.{name}.examples: x must be rows of {width} numbers (one per input) "
                             "and y one value per row")
        if not np.isfinite(x).all():
            raise ValueError(f"outputs.{name}.examples.x holds a number that is not finite")
        if output.kind == "classify":
            if not all(isinstance(v, str) for v in y):
                raise ValueError(f"outputs.{name}.examples.y must be class names (text)")
            y = np.array(y, dtype=str)
        else:
            if not all(_number(v) and math.isfinite(v) for v in y):
                raise ValueError(f"outputs.{name}.examples.y must be finite numbers")
            y = np.array(y, dtype=np.float64)
        output.examples = Examples(x, y)
    return output


def _section(values, cls, key: str):
    if not isinstance(values, dict):
        raise ValueError(f"{key} must be a table")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    _keys(values, known, f"{key}.")
    out = {}
    for k, v in values.items():
        want = getattr(defaults, k)
        if isinstance(want, tuple):
            if not (isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)):
                raise ValueError(f"{key}.{k} must be a list of whole numbers")
            v = tuple(v)
        elif isinstance(want, float):
            if not _number(v) or not math.isfinite(v):
                raise ValueError(f"{key}.{k} must be a finite number")
            v = float(v)
        elif not isinstance(v, type(want)) or isinstance(v, bool) != isinstance(want, bool):
            raise ValueError(f"{key}.{k} must be {type(want).__name__}")
        out[k] = v
    return replace(defaults, **out)


def _keys(table: dict, known: set, prefix: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"unknown key {prefix}{sorted(unknown)[0]} (known: {', '.join(sorted(known))})")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v) -> str:
    if isinstance(v, str):
        return _text(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return _list(v)
    return repr(v) if isinstance(v, int) else repr(float(v))  # repr: read back to the same float


def _list(values) -> str:
    return "[" + ", ".join(_value(v) for v in values) + "]"
