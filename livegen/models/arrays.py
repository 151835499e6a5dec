"""What the numpy runtimes of the models share: a checkpoint's named weights, each taken with the
shape its config implies (so a config that does not fit the weights is caught when the model
loads, not mid-performance), and the two nonlinearities their recurrent cells are made of.
"""
from __future__ import annotations

import numpy as np


class WeightsMismatch(ValueError):
    """A weight the runtime needs is missing, or has another shape than its config implies."""


class Weights:
    """Named arrays (a state_dict's names) handed out as ``dtype``, their shapes checked."""

    def __init__(self, arrays: dict[str, np.ndarray], dtype=np.float32, prefix: str = ""):
        self.arrays, self.dtype, self.prefix = arrays, dtype, prefix

    def __call__(self, name: str, *shape: int) -> np.ndarray:
        full = self.prefix + name
        array = self.arrays.get(full)
        if array is None:
            raise WeightsMismatch(f"no weight {full!r}")
        if array.shape != shape:
            raise WeightsMismatch(f"weight {full!r} is {_dims(array.shape)}, the config implies {_dims(shape)}")
        return array.astype(self.dtype)

    def under(self, prefix: str, dtype=None) -> "Weights":
        """The weights of a submodule (``lcgan.actor.``), named as inside it."""
        return Weights(self.arrays, dtype or self.dtype, self.prefix + prefix)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def gru_cell(x: np.ndarray, h: np.ndarray, w_ih, b_ih, w_hh, b_hh) -> np.ndarray:
    """torch's GRU cell (gates in its order: reset, update, new) for one input (I,) or a batch (B, I)."""
    return gru_gates(x @ w_ih.T + b_ih, h, w_hh, b_hh)


def gru_gates(gi: np.ndarray, h: np.ndarray, w_hh, b_hh) -> np.ndarray:
    """``gru_cell`` from the input's share of the gates, ``gi`` = x @ w_ih.T + b_ih, computed already."""
    gh = h @ w_hh.T + b_hh
    n = h.shape[-1]
    r = sigmoid(gi[..., :n] + gh[..., :n])
    u = sigmoid(gi[..., n:2 * n] + gh[..., n:2 * n])
    cand = np.tanh(gi[..., 2 * n:] + r * gh[..., 2 * n:])
    return (1.0 - u) * cand + u * h
