"""The DCRNN as torch trains it: the generator (described with its numpy runtime in
``livegen/models/dcrnn.py``), and beside it the critic and encoder only training uses.

Critic: a CNN over a window (strip convolution over pitch, then over time), for WGAN-GP.
Encoder: used only to pretrain the generator as a VAE decoder (see the DCRNN trainer in livegen/train/).
"""
from __future__ import annotations

import torch
from torch import nn

from livegen.models.dcrnn import DCRNNConfig, LiveDCRNN
from livegen.models.nets import state_arrays


class Generator(nn.Module):
    def __init__(self, c: DCRNNConfig):
        super().__init__()
        self.c = c
        self.init_coarse = nn.Linear(c.z_dim, c.coarse_hidden)
        self.init_fine = nn.Linear(c.z_dim, c.fine_hidden)
        self.coarse = nn.GRUCell(c.z_dim + c.beats_per_bar, c.coarse_hidden)
        self.fine = nn.GRUCell(c.coarse_hidden + c.z_dim + c.steps_per_beat, c.fine_hidden)
        self.to_strip = nn.Linear(c.fine_hidden, c.strip_channels * c.strip_width)
        self.deconv = nn.ConvTranspose1d(c.strip_channels, 2, c.strip_kernel, stride=c.strip_stride)

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.init_coarse(z)), torch.tanh(self.init_fine(z))

    def frame(self, fine_h: torch.Tensor) -> torch.Tensor:
        """RNN-b output (B, H) -> logits (B, 2, pitches)."""
        c = self.c
        strip = nn.functional.leaky_relu(self.to_strip(fine_h), 0.2).view(-1, c.strip_channels, c.strip_width)
        return self.deconv(strip)

    def forward(self, z_beats: torch.Tensor, state=None, first_beat: int = 0):
        """z per beat (B, beats, Z) -> logits (B, beats * r, 2, pitches), final (coarse, fine) state."""
        c = self.c
        b, beats, _ = z_beats.shape
        coarse_h, fine_h = self.initial_state(z_beats[:, 0]) if state is None else state
        eye_beat = torch.eye(c.beats_per_bar, device=z_beats.device, dtype=z_beats.dtype)  # on z's device (GPU training)
        eye_step = torch.eye(c.steps_per_beat, device=z_beats.device, dtype=z_beats.dtype)
        frames = []
        beats_per_segment = c.beats_per_bar * c.bars_per_segment
        for k in range(beats):
            z = z_beats[:, k]
            if (first_beat + k) % beats_per_segment == 0:  # a segment's structure comes from its z alone
                coarse_h = torch.tanh(self.init_coarse(z))
            beat_pos = eye_beat[(first_beat + k) % c.beats_per_bar].expand(b, -1)
            coarse_h = self.coarse(torch.cat([z, beat_pos], -1), coarse_h)
            for j in range(c.steps_per_beat):
                fine_h = self.fine(torch.cat([coarse_h, z, eye_step[j].expand(b, -1)], -1), fine_h)
                frames.append(fine_h)
        logits = self.frame(torch.stack(frames, 1).flatten(0, 1))
        return logits.view(b, len(frames), 2, c.pitches), (coarse_h, fine_h)


class Critic(nn.Module):
    """Window (B, 2, steps, pitches) -> a score; no normalisation layers (gradient penalty)."""

    def __init__(self, c: DCRNNConfig):
        super().__init__()
        ch = c.critic_channels
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(2, ch, (1, c.strip_kernel), (1, c.strip_stride)), act,  # chord shapes
            nn.Conv2d(ch, ch, (c.steps_per_beat, 1), (c.steps_per_beat, 1)), act,  # 16ths -> beats
            nn.Conv2d(ch, ch, (c.beats_per_bar, 3), (c.beats_per_bar, 2)), act,  # beats -> bars
        )
        self.out = nn.LazyLinear(1)

    def forward(self, roll: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(roll).flatten(1))[:, 0]


class Encoder(nn.Module):
    """Segment (B, 2, segment_steps, pitches) -> (mu, logvar) of its z; pretraining only."""

    def __init__(self, c: DCRNNConfig):
        super().__init__()
        ch = c.critic_channels
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(2, ch, (1, c.strip_kernel), (1, c.strip_stride)), act,
            nn.Conv2d(ch, ch, (c.steps_per_beat, 1), (c.steps_per_beat, 1)), act,
            nn.Conv2d(ch, ch, (c.beats_per_bar, 3), (c.beats_per_bar, 2)), act,
        )
        bars = c.bars_per_segment
        width = (c.strip_width - 3) // 2 + 1
        self.out = nn.Linear(ch * bars * width, 2 * c.z_dim)

    def forward(self, roll: torch.Tensor):
        mu, logvar = self.out(self.net(roll).flatten(1)).chunk(2, -1)
        return mu, logvar.clamp(-8, 4)


class DCRNN(nn.Module):
    kind = "dcrnn"

    def __init__(self, config: DCRNNConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.critic = Critic(config)
        self.encoder = Encoder(config)
        with torch.no_grad():  # materialise the lazy layer so state_dicts load
            self.critic(torch.zeros(1, 2, config.segment_steps * 2, config.pitches))

    def live(self) -> LiveDCRNN:
        """The numpy runtime of the generator's weights, as the live engine runs them."""
        return LiveDCRNN(self.config, state_arrays(self))
