"""Small learners in numpy for mappings learned by demonstration: k-nearest neighbours and a
one- or two-hidden-layer network, each classifying (a theme, a preset) or regressing (pitch,
density, a z dim) from an input vector (EMG levels, a hand's position, OSC values).

Inputs are standardised with the training examples' mean and spread. Fitting is deterministic
given the config's seed; ``predict_one`` is the live path, one vector in a sensor's thread, kept
to a few tens of µs. ``state``/``from_state`` turn a fitted learner into plain lists and back (a
mapping's TOML); ``from_state`` refuses wrong sizes and non-finite numbers with ``ValueError``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

KINDS = ("classify", "regress")


@dataclass(frozen=True)
class KnnConfig:
    k: int = 15
    max_examples: int = 1000  # kept evenly from each class (in time order): prediction cost grows with them

    def check(self) -> None:
        if not (1 <= self.k <= 100 and 1 <= self.max_examples <= 20000):
            raise ValueError("knn: k must be 1..100 and max_examples 1..20000")


@dataclass(frozen=True)
class MlpConfig:
    hidden: tuple[int, ...] = (32,)  # one or two hidden layers
    epochs: int = 200  # full-batch Adam steps
    learning_rate: float = 0.02
    weight_decay: float = 1e-4
    seed: int = 0
    max_examples: int = 1000  # fitting grows with them: 1,000 take well under a second on one core

    def check(self) -> None:
        if not (1 <= len(self.hidden) <= 2 and all(1 <= h <= 256 for h in self.hidden)):
            raise ValueError("mlp: hidden must list one or two layer sizes 1..256")
        if not (1 <= self.epochs <= 5000 and 0 < self.learning_rate <= 1 and 0 <= self.weight_decay <= 1
                and 1 <= self.max_examples <= 20000 and 0 <= self.seed < 2**31):
            raise ValueError("mlp: epochs 1..5000, learning_rate 0..1, weight_decay 0..1, max_examples 1..20000")


def evenly_kept(y: np.ndarray, kind: str, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` examples, in order: for classes an even share of each (spread
    over its examples in time), for regression evenly spread over all."""
    n = len(y)
    if n <= limit:
        return np.arange(n)
    if kind == "regress":
        return np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    classes = np.unique(y)
    share = max(1, limit // len(classes))
    kept = []
    for c in classes:
        where = np.flatnonzero(y == c)
        kept.append(where[np.unique(np.linspace(0, len(where) - 1, min(share, len(where))).round().astype(int))])
    return np.sort(np.concatenate(kept))


class _Standardised:
    """Keeps the training inputs' mean and spread; inputs are scaled by them before use."""

    mean: np.ndarray
    scale: np.ndarray

    def _standardise_fit(self, x: np.ndarray) -> np.ndarray:
        self.mean = x.mean(axis=0)
        self.scale = 1.0 / np.maximum(x.std(axis=0), 1e-6)
        return (x - self.mean) * self.scale


class Knn(_Standardised):
    """Majority of the k nearest (classes; ties go to the nearest) or their mean (regression)."""

    name = "knn"

    def __init__(self, kind: str, config: KnnConfig = KnnConfig()):
        config.check()
        self.kind, self.config = kind, config

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Knn":
        keep = evenly_kept(y, self.kind, self.config.max_examples)
        self.points = self._standardise_fit(np.asarray(x, dtype=np.float64)[keep])
        self.targets = np.asarray(y)[keep]
        self.norms = (self.points ** 2).sum(axis=1)
        self._weighted = -2.0 * self.points * self.scale  # one product per vector in ``predict_one``
        self.k = min(self.config.k, len(self.points))
        if self.kind == "classify":
            self.classes, self.codes = np.unique(self.targets, return_inverse=True)
        else:
            self.targets = self.targets.astype(np.float64)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``predict_one`` for each row: exactly what the live path gives, ties and all."""
        out = [self.predict_one(row) for row in np.asarray(x, dtype=np.float64)]
        return np.array(out, dtype=np.float64 if self.kind == "regress" else self.targets.dtype)

    def predict_one(self, x: np.ndarray):
        distances = self.norms + self._weighted @ (x - self.mean)  # |p|^2 - 2 p.v, v = standardised x
        near = np.argpartition(distances, self.k - 1)[:self.k] if self.k < len(distances) else slice(None)
        if self.kind == "regress":
            return float(self.targets[near].mean())
        codes = self.codes[near]
        counts = np.bincount(codes, minlength=len(self.classes)) * 2.0
        counts[codes[distances[near].argmin()]] += 1.0  # a tie goes to the nearest example's class
        return self.classes[int(counts.argmax())]

    def state(self) -> dict:
        """Nothing beyond the examples: a kNN is its examples, fitted again on load."""
        return {}


class Mlp(_Standardised):
    """Tanh hidden layers; softmax with cross-entropy for classes, a linear output with mean squared
    error for regression (targets standardised too). Full-batch Adam."""

    name = "mlp"

    def __init__(self, kind: str, config: MlpConfig = MlpConfig()):
        config.check()
        self.kind, self.config = kind, config

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Mlp":
        c = self.config
        keep = evenly_kept(y, self.kind, c.max_examples)
        xs = self._standardise_fit(np.asarray(x, dtype=np.float64)[keep])
        y = np.asarray(y)[keep]
        if self.kind == "classify":
            self.classes, codes = np.unique(y, return_inverse=True)
            target = np.eye(len(self.classes))[codes]
            self.y_mean, self.y_scale = 0.0, 1.0
        else:
            self.classes = None
            self.y_mean, self.y_scale = float(y.mean()), float(max(y.std(), 1e-6))
            target = ((y - self.y_mean) / self.y_scale)[:, None]
        rng = np.random.default_rng(c.seed)
        sizes = [xs.shape[1], *c.hidden, target.shape[1]]
        xs, target = xs.astype(np.float32), target.astype(np.float32)  # float32: twice as fast, plenty here
        self.weights = [rng.normal(0.0, 1.0 / np.sqrt(a), (a, b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
        self.biases = [np.zeros(b, dtype=np.float32) for b in sizes[1:]]
        params = self.weights + self.biases
        moments = [np.zeros_like(p) for p in params]
        squares = [np.zeros_like(p) for p in params]
        beta1, beta2, n = 0.9, 0.999, len(xs)
        for step in range(1, c.epochs + 1):
            activations = [xs]
            for w, b in zip(self.weights[:-1], self.biases[:-1]):
                activations.append(np.tanh(activations[-1] @ w + b))
            out = activations[-1] @ self.weights[-1] + self.biases[-1]
            if self.kind == "classify":
                out = np.exp(out - out.max(axis=1, keepdims=True))
                out /= out.sum(axis=1, keepdims=True)
            delta = (out - target) / n  # softmax + cross-entropy and linear + squared error share it
            grads_w, grads_b = [], []
            for layer in range(len(self.weights) - 1, -1, -1):
                grads_w.append(activations[layer].T @ delta + c.weight_decay * self.weights[layer])
                grads_b.append(delta.sum(axis=0))
                if layer:
                    delta = (delta @ self.weights[layer].T) * (1.0 - activations[layer] ** 2)
            grads = grads_w[::-1] + grads_b[::-1]
            for p, g, m, v in zip(params, grads, moments, squares):
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                p -= c.learning_rate * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + 1e-8)
        self.weights = [w.astype(np.float64) for w in self.weights]  # float64 from here: what a file holds exactly
        self.biases = [b.astype(np.float64) for b in self.biases]
        return self

    def _outputs(self, x: np.ndarray) -> np.ndarray:
        h = (x - self.mean) * self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = np.tanh(h @ w + b)
        return h @ self.weights[-1] + self.biases[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._outputs(np.asarray(x, dtype=np.float64))
        if self.kind == "classify":
            return self.classes[out.argmax(axis=1)]
        return out[:, 0] * self.y_scale + self.y_mean

    def predict_one(self, x: np.ndarray):
        out = self._outputs(x)
        if self.kind == "classify":
            return self.classes[int(out.argmax())]
        return float(out[0] * self.y_scale + self.y_mean)

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "y_mean": self.y_mean,
                "y_scale": self.y_scale, "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases]}

    @classmethod
    def from_state(cls, kind: str, config: MlpConfig, state: dict, classes: list | None, inputs: int) -> "Mlp":
        """A fitted network from ``state`` (``ValueError`` on a wrong size or a non-finite number)."""
        mlp = cls(kind, config)
        try:
            mlp.mean = _finite(state["mean"], (inputs,), "mean")
            mlp.scale = _finite(state["scale"], (inputs,), "scale")
            mlp.y_mean, mlp.y_scale = float(state["y_mean"]), float(state["y_scale"])
            outputs = len(classes) if kind == "classify" else 1
            sizes = [inputs, *config.hidden, outputs]
            if len(state["weights"]) != len(sizes) - 1 or len(state["biases"]) != len(sizes) - 1:
                raise ValueError(f"weights for {len(sizes) - 1} layers expected")
            mlp.weights = [_finite(w, (a, b), "weights") for w, a, b in zip(state["weights"], sizes, sizes[1:])]
            mlp.biases = [_finite(b, (n,), "biases") for b, n in zip(state["biases"], sizes[1:])]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"mlp state incomplete ({exc})") from None
        if not np.isfinite([mlp.y_mean, mlp.y_scale]).all():
            raise ValueError("mlp y_mean/y_scale are not finite")
        mlp.classes = np.array(classes) if kind == "classify" else None
        return mlp


def _finite(values, shape: tuple, what: str) -> np.ndarray:
    try:
        a = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"mlp {what} is not a table of numbers") from None
    if a.shape != shape:
        raise ValueError(f"mlp {what} has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"mlp {what} holds a number that is not finite")
    return a


def config_dict(config) -> dict:
    d = asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
