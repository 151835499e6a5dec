"""The latent-constraints GAN (Engel et al. 2017, as deephypebot steered its CVAE) and its reward,
as torch trains them; sampling runs the actor and the classifier in numpy (``livegen/models/lcgan.py``,
where the reward is explained).

Decoding is not differentiable, so the LC-GAN learns in z-space:
- ``reward_model`` R(z, a) predicts the reward of the sentence decoded from ⟨z, a⟩ (fit on sampled
  sentences scored by the classifier);
- ``critic`` D(z, a) tells real posterior codes (μ of real sentences) from the actor's outputs;
- ``actor`` G(z, a) moves z (a stays as measured: it is what the music is) to maximise R while
  fooling D and staying near the prior sample: loss = -R(G) + w_real·softplus(-D(G)) + w_dist·|G-z|².
Sampling with the LC-GAN decodes from G(z, a) instead of z.
"""
from __future__ import annotations

import torch
from torch import nn

from livegen.models.lcgan import LCGANConfig


class AttributeClassifier(nn.Module):
    """Logistic regression from a sentence's bag of words to each attribute (multi-label)."""

    def __init__(self, vocab_size: int, attr_dim: int, pad: int = 0):
        super().__init__()
        self.weights = nn.EmbeddingBag(vocab_size, max(attr_dim, 1), mode="mean", padding_idx=pad)
        self.bias = nn.Parameter(torch.zeros(max(attr_dim, 1)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, A) for token ids (B, T) (padding ignored)."""
        return self.weights(ids) + self.bias


def reward(classifier: AttributeClassifier, ids: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """(B,) mean classifier probability of the conditioning attributes; 0 where a is empty."""
    with torch.no_grad():
        p = classifier(ids).sigmoid()
    count = attrs.sum(1)
    return (p * attrs).sum(1) / count.clamp(min=1)


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


class LCGAN(nn.Module):
    def __init__(self, config: LCGANConfig):
        super().__init__()
        self.config = c = config
        inp = c.latent_dim + c.attr_dim
        self.actor = _mlp(inp, c.hidden, 2 * c.latent_dim)
        self.critic = _mlp(inp, c.hidden, 1)
        self.reward_model = _mlp(inp, c.hidden, 1)

    def steer(self, z: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """G(z, a): a gated move of z (the gate lets the actor leave good codes where they are)."""
        delta, gate = self.actor(torch.cat([z, attrs], -1)).chunk(2, -1)
        gate = gate.sigmoid()
        return (1 - gate) * z + gate * delta

    def realism(self, z: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        return self.critic(torch.cat([z, attrs], -1))[:, 0]

    def predicted_reward(self, z: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        return self.reward_model(torch.cat([z, attrs], -1))[:, 0].sigmoid()

    def actor_loss(self, z: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        moved = self.steer(z, attrs)
        c = self.config
        return (-self.predicted_reward(moved, attrs).mean()
                + c.realism_weight * nn.functional.softplus(-self.realism(moved, attrs)).mean()
                + c.distance_weight * (moved - z).pow(2).sum(1).mean())
