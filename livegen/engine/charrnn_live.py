"""The Char-RNN live: token generation with rollback, the model's state saved before every token.

``CharRNNGenerator.step()`` samples one token (the one place a token is sampled is ``TokenSampler``)
and decodes it into timed note messages. ``rollback(t)`` restores the state saved at the first
token at or after performance time ``t``, so a control change is heard at once instead of after
the lookahead drains. Randomness is counter-based (one uniform per token index), so a rollback
and a straight run with the same controls produce the same notes.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from livegen.engine.live_generator import ControlTimeline, LiveGenerator
from livegen.music import events
from livegen.music.conditioning import Controls, control_density_to_rate, control_pitch_to_midi
from livegen.music.events import StreamingDecoder

NOTE_ON = np.arange(events.token_range("NOTE_ON").start, events.token_range("NOTE_ON").stop)
TIME_SHIFT_FIRST = events.token_range("TIME_SHIFT").start
NOT_A_START = np.r_[np.arange(events.token_range("NOTE_OFF").start, events.token_range("NOTE_OFF").stop),
                    np.arange(TIME_SHIFT_FIRST, events.token_range("TIME_SHIFT").stop)]
SEED_TOKEN = events.encode("TIME_SHIFT", 10)
PHRASE_KEY_WEIGHT = 1.5  # logits per e-fold of a pitch class's share in a phrase of its own's histogram
PHRASE_KEY_FLOOR = 0.05  # the share below which a pitch class is no less likely


class TokenSampler:
    """Temperature sampling from logits with a reproducible uniform per token index."""

    BLOCK = 4096

    def __init__(self, seed: int, temperature: float = 1.0):
        self.seed, self.temperature = seed, temperature
        self._block_index, self._block = -1, None

    def uniform(self, index: int) -> float:
        block = index // self.BLOCK
        if block != self._block_index:
            bitgen = np.random.Philox(key=self.seed, counter=block)
            self._block, self._block_index = np.random.Generator(bitgen).random(self.BLOCK), block
        return float(self._block[index % self.BLOCK])

    def sample(self, logits: np.ndarray, index: int) -> int:
        z = logits / max(self.temperature, 1e-3)
        p = np.exp(z - z.max())
        cdf = np.cumsum(p)
        return int(min(np.searchsorted(cdf, self.uniform(index) * cdf[-1], side="right"), len(cdf) - 1))


@dataclass
class Steering:
    """The engine's own control path, on top of the model's conditioning.

    A plain conditional LSTM trained on POP909 snaps back to the middle register and compresses
    density (see the README), so the engine also (1) biases NOTE_ON logits toward the target
    register and, given a key, toward its scale, and (2) stretches time so the realised note rate
    meets the target: the model's own onset rate (onsets per unscaled second, forgotten over real
    time so the estimate lags by the same second however far time is stretched) divided by the
    target gives the stretch.
    """

    enabled: bool = True
    register_sigma: float = 4.5  # semitones
    scale_bonus: float = 1.5  # logit bonus for in-scale pitch classes when a key/histogram is set
    rate_tau: float = 1.0  # seconds of played (real) time the model's onset-rate estimate averages over
    min_scale: float = 0.25
    max_scale: float = 4.0

    def note_bias(self, controls: Controls) -> np.ndarray:
        pitches = np.arange(128, dtype=np.float64)
        bias = -0.5 * ((pitches - control_pitch_to_midi(controls.pitch)) / self.register_sigma) ** 2
        if controls.histogram is not None and sum(controls.histogram) > 0:
            in_scale = np.asarray(controls.histogram)[pitches.astype(int) % 12] > 0
            bias += np.where(in_scale, 0.0, -self.scale_bonus)
        return bias


def _logsumexp(x: np.ndarray) -> float:
    m = x.max()
    return float(m + np.log(np.exp(x - m).sum()))


def steer_pitch(logits: np.ndarray, note_bias: np.ndarray) -> np.ndarray:
    """Move the NOTE_ON probability toward the biased pitches, keeping its total.

    Steering chooses *which* pitch, never *whether* to play: an unnormalised bias would take
    probability from NOTE_ON whenever the model wanted other pitches, and the music would
    hesitate after every change of register.
    """
    out = logits.astype(np.float64)
    on = out[NOTE_ON]
    biased = on + note_bias
    out[NOTE_ON] = biased + (_logsumexp(on) - _logsumexp(biased))
    return out


def heard_by_charrnn(c: Controls) -> tuple:
    return c.pitch, c.density, c.histogram, c.conditioning


@dataclass
class Snapshot:
    index: int  # token index this state will produce next
    time: float  # decoder time before that token
    prev_token: int
    lstm: object
    decoder: StreamingDecoder
    rate: tuple[float, float]  # (onsets, unscaled seconds), both forgotten over real time: the model's own rate


class CharRNNGenerator(LiveGenerator):
    """The Char-RNN (its numpy runtime, ``LiveCharRNN``), one event token per step."""

    def __init__(self, model, controls: Controls, seed: int = 0, temperature: float = 1.0,
                 steering: Steering | None = None, channel: int = 0,
                 max_note_seconds: float = 4.0, max_polyphony: int = 12):
        self.model = model
        self.channel = channel
        self.sampler = TokenSampler(seed, temperature)
        self.steering = steering or Steering()
        self.timeline = ControlTimeline(controls)
        self._cache: dict[Controls, tuple] = {}
        state = self.model.initial_state(controls.vector())
        decoder = StreamingDecoder(max_note_seconds=max_note_seconds, max_polyphony=max_polyphony)
        prior = self.steering.rate_tau / 2  # as if the model had played at the target rate for a while
        self.current = Snapshot(0, 0.0, SEED_TOKEN, state, decoder,
                                (prior * control_density_to_rate(controls.density), prior))
        self.history: deque[Snapshot] = deque()
        self.steps = 0
        self.decoder_limits = (max_note_seconds, max_polyphony)
        self.override: dict = {}  # controls a phrase of its own plays under, over the timeline's
        self.phrase_start = math.nan  # where that phrase begins: its first token strikes a note there
        self.phrase_bias = None  # its pitch classes' weights, as note logits: it keeps to the key it was given

    def begin_phrase(self, at: float, override: dict, prime: list[int]) -> None:
        """Start a phrase of its own at performance time ``at`` (an answer to a player): the model
        state afresh, primed with ``prime`` tokens (a phrase to continue), under the timeline's
        controls with ``override``; its first notes sound at ``at``, not after a pause."""
        self.override = override
        histogram = override.get("histogram")
        self.phrase_bias = None
        if histogram is not None and self.steering.enabled:
            share = np.asarray(histogram, dtype=np.float64) / max(max(histogram), 1e-9)
            self.phrase_bias = PHRASE_KEY_WEIGHT * np.log(np.maximum(share, PHRASE_KEY_FLOOR))[np.arange(128) % 12]
        controls = self.controls_at(at)
        cond, _, target_rate = self._prepared(controls)
        lstm = self.model.initial_state(controls.vector())
        prev = SEED_TOKEN
        for token in prime:
            _, lstm = self.model.step(prev, cond, lstm)
            prev = token
        decoder = StreamingDecoder(*self.decoder_limits, time=at)
        prior = self.steering.rate_tau / 2
        self.current = Snapshot(self.current.index, at, prev, lstm, decoder, (prior * target_rate, prior))
        self.phrase_start = at

    def controls_at(self, t: float) -> Controls:
        controls = self.timeline.at(t)
        return replace(controls, **self.override) if self.override else controls

    def _time_of(self, state: Snapshot) -> float:
        return state.time

    def hears(self, before: Controls, after: Controls) -> bool:
        """Pitch, density and pitch classes; not the tempo (it keeps its own time) nor the DCRNN's z."""
        return heard_by_charrnn(before) != heard_by_charrnn(after)

    def _prepared(self, controls: Controls):
        hit = self._cache.get(controls)
        if hit is None:
            if len(self._cache) > 256:
                self._cache.clear()
            bias = None
            if self.steering.enabled and controls.conditioning:
                bias = self.steering.note_bias(controls)
            hit = (self.model.condition(controls.vector()), bias, control_density_to_rate(controls.density))
            self._cache[controls] = hit
        return hit

    def step(self) -> list[tuple[float, int, list[int]]]:
        """Sample one token; returns (time, token index, MIDI bytes) for the messages it makes."""
        s = self.current
        self.history.append(s)
        controls = self.controls_at(s.time)
        cond, bias, target_rate = self._prepared(controls)
        logits, lstm = self.model.step(s.prev_token, cond, s.lstm)
        if bias is not None:
            logits = steer_pitch(logits, bias if self.phrase_bias is None else bias + self.phrase_bias)
        if s.time == self.phrase_start and not s.decoder.active:  # a phrase of its own starts on a note
            logits = logits.copy()
            logits[NOT_A_START] = -np.inf
        token = self.sampler.sample(logits, s.index)
        decoder = s.decoder.copy()
        onsets, span = s.rate
        if token >= TIME_SHIFT_FIRST and token < TIME_SHIFT_FIRST + events.MAX_SHIFT_STEPS:
            dt = (token - TIME_SHIFT_FIRST + 1) * events.STEP_SECONDS
            scale = 1.0
            if self.steering.enabled and controls.conditioning:
                scale = min(max(onsets / span / target_rate, self.steering.min_scale), self.steering.max_scale)
            decoder.time_scale = scale
            forget = math.exp(-dt * scale / self.steering.rate_tau)
            onsets, span = onsets * forget, span * forget + dt
        elif token < NOTE_ON[-1] + 1:
            onsets += 1.0
        messages = decoder.feed(token)
        self.current = Snapshot(s.index + 1, decoder.time, token, lstm, decoder, (onsets, span))
        self.steps += 1
        status_on, status_off = 0x90 | self.channel, 0x80 | self.channel
        return [(m.time, s.index, [status_on, m.pitch, m.velocity] if m.velocity else [status_off, m.pitch, 0])
                for m in messages]

    def release(self) -> list[tuple[float, int, list[int]]]:
        """Note-offs for everything the decoder holds (end of a performance)."""
        return [(m.time, self.current.index, [0x80 | self.channel, m.pitch, 0])
                for m in self.current.decoder.copy().release_all()]
