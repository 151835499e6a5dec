"""The LC-GAN's actor and the attribute classifier at sampling time, in numpy.

The reward says how well a sentence speaks about the music it was conditioned on:

    reward(sentence, a) = mean over the attributes in a of P(attribute | sentence)

with P from the attribute classifier, a bag-of-words logistic regression trained on real MusicCaps
sentences and their attributes. A sentence that names the tempo, the mode and the instrument the
music actually has scores high; generic filler ("The song is played in the background.") scores low.
The commentary ranks its candidate sentences by it. The actor G(z, a) moves a prior sample z to
where the decoded sentences score well; how it learns that is in ``nets/lcgan.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livegen.models.arrays import Weights, sigmoid


@dataclass
class LCGANConfig:
    latent_dim: int = 32
    attr_dim: int = 0
    hidden: int = 256
    realism_weight: float = 1.0
    distance_weight: float = 0.05


def reward(probabilities: np.ndarray, attrs: np.ndarray) -> np.ndarray:
    """(B,) mean classifier probability of the conditioning attributes (B, A); 0 where a is empty."""
    return (probabilities * attrs).sum(1) / np.maximum(attrs.sum(1), 1)


class LiveAttributeClassifier:
    """P(attribute | sentence): the mean of its words' rows of a table, plus a bias, squashed."""

    def __init__(self, w: Weights, vocab_size: int, attr_dim: int, pad: int):
        self.table = w("weights.weight", vocab_size, max(attr_dim, 1))
        self.bias = w("bias", max(attr_dim, 1))
        self.pad = pad

    def probabilities(self, sentences: list[list[int]]) -> np.ndarray:
        """(B, A) for each sentence's word ids (padding ignored, as torch's EmbeddingBag does)."""
        rows = np.zeros((len(sentences), len(self.bias)), dtype=self.table.dtype)
        for row, ids in zip(rows, sentences):
            kept = [i for i in ids if i != self.pad]
            if kept:
                row[:] = self.table[kept].mean(0)
        return sigmoid(rows + self.bias)


class LiveLCGAN:
    """The actor G(z, a): a gated move of z (the gate lets it leave good codes where they are)."""

    def __init__(self, config: LCGANConfig, w: Weights):
        self.config = c = config
        sizes = (c.latent_dim + c.attr_dim, c.hidden, c.hidden, 2 * c.latent_dim)
        self.layers = [(w(f"actor.{2 * k}.weight", out, inp), w(f"actor.{2 * k}.bias", out))
                       for k, (inp, out) in enumerate(zip(sizes, sizes[1:]))]

    def steer(self, z: np.ndarray, attrs: np.ndarray) -> np.ndarray:
        """Moved codes (B, Z) for codes z (B, Z) under attributes (B, A)."""
        x = np.concatenate([z, attrs], -1)
        for k, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if k < len(self.layers) - 1:
                x = np.maximum(x, 0)
        delta, gate = np.split(x, 2, -1)
        gate = sigmoid(gate)
        return (1 - gate) * z + gate * delta
