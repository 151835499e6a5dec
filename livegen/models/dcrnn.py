"""The DCRNN on the live path: its config and the numpy runtime of its generator.

The generator takes a noise vector in and gives piano-roll frames out, one 16th note at a time:
z -> RNN-a over beats (coarse, sparse structure) -> each beat repeated ``steps_per_beat`` times ->
RNN-b over 16ths (refinement) -> a strip deconvolution along the pitch axis, whose kernel spans an
octave the way a hand spans a chord, giving a frame of two channels over ``pitches`` pitches:
"sounding" and "onset" (so a re-struck note is told from a held one). z enters both RNNs at every
step, not only their first state: a change of z is heard at the next 16th, and the whole beat
structure follows at the next beat. RNN-a starts every segment afresh from its z, so the same z
gives the same coarse structure again (the same gesture -> the same rhythm); RNN-b's state is
carried across segments, so bars join smoothly. Training windows span two segments with a z each,
exactly what the live engine does from segment to segment.

The torch modules it is trained as (generator, critic, encoder) are ``nets/dcrnn.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livegen.models.arrays import Weights, gru_cell, sigmoid


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

    def __post_init__(self):
        if (self.pitches - self.strip_kernel) % self.strip_stride:  # else the deconvolution misses top pitches
            raise ValueError("pitches - strip_kernel must be a multiple of strip_stride")

    @property
    def segment_steps(self) -> int:
        return self.steps_per_beat * self.beats_per_bar * self.bars_per_segment

    @property
    def strip_width(self) -> int:
        return (self.pitches - self.strip_kernel) // self.strip_stride + 1


def deconvolution_matrix(weight: np.ndarray, config: DCRNNConfig) -> np.ndarray:
    """The strip deconvolution (torch's ConvTranspose1d, ``weight`` (channels, 2, kernel)) as the
    matrix it is: a strip (channels x width, flattened) -> a frame (2 x pitches, flattened).

    Strip position i adds its kernel, weighted by each channel's value there, at pitches
    stride*i .. stride*i + kernel - 1 of both output channels."""
    c = config
    fold = np.zeros((2, c.pitches, c.strip_channels, c.strip_width), dtype=weight.dtype)
    taps = weight.transpose(1, 2, 0)  # (2, kernel, channels)
    for i in range(c.strip_width):
        fold[:, i * c.strip_stride:i * c.strip_stride + c.strip_kernel, :, i] = taps
    return fold.reshape(2 * c.pitches, c.strip_channels * c.strip_width)


class LiveDCRNN:
    """Batch-1 generator steps in numpy for the real-time path; states are plain arrays.

    The strip deconvolution is linear, so it is folded into one matrix at load time.
    """

    kind = "dcrnn"
    name = "dcrnn"  # what it was loaded as (``checkpoint.load_model``): a take records it, to replay with it

    def __init__(self, config: DCRNNConfig, arrays: dict[str, np.ndarray]):
        """From the torch module's state_dict as numpy arrays (a checkpoint's, or ``DCRNN.live()``);
        only the generator's weights are used."""
        self.config = c = config
        w = Weights(arrays, np.float64, "generator.")
        z, ch, fh, strip = c.z_dim, c.coarse_hidden, c.fine_hidden, c.strip_channels * c.strip_width
        self.init_coarse = w("init_coarse.weight", ch, z), w("init_coarse.bias", ch)
        self.init_fine = w("init_fine.weight", fh, z), w("init_fine.bias", fh)
        self.coarse = (w("coarse.weight_ih", 3 * ch, z + c.beats_per_bar), w("coarse.bias_ih", 3 * ch),
                       w("coarse.weight_hh", 3 * ch, ch), w("coarse.bias_hh", 3 * ch))
        self.fine = (w("fine.weight_ih", 3 * fh, ch + z + c.steps_per_beat), w("fine.bias_ih", 3 * fh),
                     w("fine.weight_hh", 3 * fh, fh), w("fine.bias_hh", 3 * fh))
        self.to_strip = w("to_strip.weight", strip, fh), w("to_strip.bias", strip)
        self.deconv = deconvolution_matrix(w("deconv.weight", c.strip_channels, 2, c.strip_kernel), c)
        self.deconv_bias = np.repeat(w("deconv.bias", 2), c.pitches)
        self.eye_beat, self.eye_step = np.eye(c.beats_per_bar), np.eye(c.steps_per_beat)

    def initial_state(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weight, bias = self.init_fine
        return self.segment_start(z), np.tanh(weight @ z + bias)

    def segment_start(self, z: np.ndarray) -> np.ndarray:
        """RNN-a's state at the start of a segment."""
        weight, bias = self.init_coarse
        return np.tanh(weight @ z + bias)

    def coarse_step(self, z: np.ndarray, beat_in_bar: int, h: np.ndarray) -> np.ndarray:
        return gru_cell(np.concatenate([z, self.eye_beat[beat_in_bar]]), h, *self.coarse)

    def fine_step(self, coarse_h: np.ndarray, z: np.ndarray, step_in_beat: int, h: np.ndarray):
        """(new RNN-b state, frame probabilities (2, pitches))."""
        h = gru_cell(np.concatenate([coarse_h, z, self.eye_step[step_in_beat]]), h, *self.fine)
        weight, bias = self.to_strip
        strip = weight @ h + bias
        strip = np.where(strip > 0, strip, 0.2 * strip)
        logits = self.deconv @ strip + self.deconv_bias
        return h, sigmoid(logits).reshape(2, self.config.pitches)
