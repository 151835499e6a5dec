"""The DCRNN: a noise vector in, piano-roll frames out, one 16th note at a time.

Generator: z -> RNN-a over beats (coarse, sparse structure) -> each beat repeated ``steps_per_beat``
times -> RNN-b over 16ths (refinement) -> a strip deconvolution along the pitch axis, whose kernel
spans an octave the way a hand spans a chord, giving a frame of two channels over ``pitches``
pitches: "sounding" and "onset" (so a re-struck note is told from a held one). z enters both RNNs
at every step, not only their first state: a change of z is heard at the next 16th, and the whole
beat structure follows at the next beat. RNN-a starts every segment afresh from its z, so the same
z gives the same coarse structure again (the same gesture -> the same rhythm); RNN-b's state is
carried across segments, so bars join smoothly. Training windows span two segments with a z each,
exactly what the live engine does from segment to segment.

Critic: a CNN over a window (strip convolution over pitch, then over time), for WGAN-GP.
Encoder: used only to pretrain the generator as a VAE decoder (see the DCRNN trainer in livegen/train/).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class DCRNNConfig:
    z_dim: int = 16
    low_pitch: int = 36  # MIDI pitch of the roll's first row
    pitches: int = 60
    steps_per_beat: int = 4  # r: the coarse step is a beat, the fine step a 16th note
    beats_per_bar: int = 4
    bars_per_segment: int = 2  # one z per segment in training
    coarse_hidden: int = 96
    fine_hidden: int = 128
    strip_channels: int = 24
    strip_kernel: int = 12  # semitones one deconvolution tap spans
    strip_stride: int = 4
    critic_channels: int = 48
    threshold: float = 0.5  # sounding probability that starts/holds a note (calibrated after training)
    onset_threshold: float = 0.5  # onset probability that re-strikes a sounding note (calibrated)

    @property
    def segment_steps(self) -> int:
        return self.steps_per_beat * self.beats_per_bar * self.bars_per_segment

    @property
    def strip_width(self) -> int:
        return (self.pitches - self.strip_kernel) // self.strip_stride + 1


class Generator(nn.Module):
    def __init__(self, c: DCRNNConfig):
        super().__init__()
        if (c.pitches - c.strip_kernel) % c.strip_stride:
            raise ValueError("pitches - strip_kernel must be a multiple of strip_stride")
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

    def live(self) -> "LiveDCRNN":
        return LiveDCRNN(self)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _gru(x: np.ndarray, h: np.ndarray, w_ih, b_ih, w_hh, b_hh) -> np.ndarray:
    gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
    n = len(h)
    r = _sigmoid(gi[:n] + gh[:n])
    u = _sigmoid(gi[n:2 * n] + gh[n:2 * n])
    cand = np.tanh(gi[2 * n:] + r * gh[2 * n:])
    return (1.0 - u) * cand + u * h


class LiveDCRNN:
    """Batch-1 generator steps in numpy for the real-time path; states are plain arrays.

    The strip deconvolution is linear, so it is folded into one matrix at load time.
    """

    def __init__(self, model: DCRNN):
        self.config = c = model.config
        g = model.generator
        w = {k: v.detach().numpy().astype(np.float64) for k, v in g.state_dict().items()}
        self.w = w
        with torch.no_grad():  # the deconvolution applied to every unit input = its matrix
            basis = torch.eye(c.strip_channels * c.strip_width).view(-1, c.strip_channels, c.strip_width)
            out = nn.functional.conv_transpose1d(basis, g.deconv.weight, None, stride=c.strip_stride)
        self.deconv = out.reshape(len(basis), -1).T.numpy().astype(np.float64)  # (2*P, C*W)
        self.deconv_bias = np.repeat(w["deconv.bias"], c.pitches)
        self.eye_beat, self.eye_step = np.eye(c.beats_per_bar), np.eye(c.steps_per_beat)

    def initial_state(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.segment_start(z), np.tanh(self.w["init_fine.weight"] @ z + self.w["init_fine.bias"])

    def segment_start(self, z: np.ndarray) -> np.ndarray:
        """RNN-a's state at the start of a segment."""
        return np.tanh(self.w["init_coarse.weight"] @ z + self.w["init_coarse.bias"])

    def coarse_step(self, z: np.ndarray, beat_in_bar: int, h: np.ndarray) -> np.ndarray:
        w = self.w
        return _gru(np.concatenate([z, self.eye_beat[beat_in_bar]]), h, w["coarse.weight_ih"], w["coarse.bias_ih"],
                    w["coarse.weight_hh"], w["coarse.bias_hh"])

    def fine_step(self, coarse_h: np.ndarray, z: np.ndarray, step_in_beat: int, h: np.ndarray):
        """(new RNN-b state, frame probabilities (2, pitches))."""
        w = self.w
        h = _gru(np.concatenate([coarse_h, z, self.eye_step[step_in_beat]]), h, w["fine.weight_ih"],
                 w["fine.bias_ih"], w["fine.weight_hh"], w["fine.bias_hh"])
        strip = w["to_strip.weight"] @ h + w["to_strip.bias"]
        strip = np.where(strip > 0, strip, 0.2 * strip)
        logits = self.deconv @ strip + self.deconv_bias
        return h, _sigmoid(logits).reshape(2, self.config.pitches)
