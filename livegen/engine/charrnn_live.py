"""The Char-RNN live: token generation with rollback, the model's state saved before every step.

``CharRNNGenerator.step()`` samples one token (the one place a token is sampled is ``TokenSampler``,
at the temperature of the controls in force at that token's time, else the generator's) and
decodes it into timed note messages, or plays on a rest a sampled TIME_SHIFT began (``Rest``).
``rollback(t)`` restores the state saved at the first step at or after performance time ``t``, so a
control change is heard at once instead of after the lookahead drains. Randomness is
counter-based (one uniform per token sampled), so a rollback and a straight run with the same
controls produce the same notes.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from livegen.engine.live_generator import ControlTimeline, LiveGenerator
from livegen.errors import UserError
from livegen.music import events
from livegen.music.conditioning import Controls, best_diatonic, control_density_to_rate, control_pitch_to_midi
from livegen.music.events import StreamingDecoder

NOTE_ON = np.arange(events.token_range("NOTE_ON").start, events.token_range("NOTE_ON").stop)
NOTE_ON_FIRST = events.token_range("NOTE_ON").start
NOTE_OFF_FIRST = events.token_range("NOTE_OFF").start
TIME_SHIFT_FIRST = events.token_range("TIME_SHIFT").start
NOT_A_START = np.r_[np.arange(events.token_range("NOTE_OFF").start, events.token_range("NOTE_OFF").stop),
                    np.arange(TIME_SHIFT_FIRST, events.token_range("TIME_SHIFT").stop)]
SEED_TOKEN = events.encode("TIME_SHIFT", 10)
PHRASE_KEY_WEIGHT = 4.5  # logits per e-fold of a pitch class's share in a phrase of its own's histogram
PHRASE_QUOTA_WEIGHT = 1.5  # logits per note a pitch class is behind its share of the phrase so far
PHRASE_KEY_FLOOR = 0.05  # the share below which a pitch class is no less likely
PHRASE_RATE_PRIOR = 4.0  # s at the asked rate a phrase of its own starts as if it had played: its first
# chord (three onsets at once) would otherwise read as a rate three times too fast and stretch its time 4x


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

    def sample(self, logits: np.ndarray, index: int, temperature: float | None = None) -> int:
        """Token ``index``'s draw at ``temperature`` (None: the sampler's own)."""
        z = logits / max(self.temperature if temperature is None else temperature, 1e-3)
        p = np.exp(z - z.max())
        cdf = np.cumsum(p)
        return int(min(np.searchsorted(cdf, self.uniform(index) * cdf[-1], side="right"), len(cdf) - 1))


@dataclass
class Steering:
    """The engine's own control path, on top of the model's conditioning.

    A plain conditional LSTM trained on POP909 snaps back to the middle register and compresses
    density (see the README), so the engine also (1) biases NOTE_ON logits toward the target
    register and toward a key (the performer's pitch classes, else the one latched from the first
    notes played), and (2) stretches time so the realised note rate meets the target: the model's
    own onset rate (onsets per unscaled second, forgotten over real time so the estimate lags by
    the same second however far time is stretched) divided by the target gives the stretch.

    The register bias is wide, so it moves the music without squeezing its spread, and on its own
    too weak to pull the model out of the register it has been playing in: after a change the
    music stayed where it was for seconds. So the bias is centred beyond the target by ``lead``
    times how far the recent played pitches (their mean, forgotten over ``register_tau`` s of
    played time) lag it, at most ``reach`` semitones; once the music is there, it is centred on it.
    """

    enabled: bool = True
    register_sigma: float = 16.0  # semitones: wide, so the register moves the music rather than squeezing it
    lead: float = 2.0  # the bias centre's lead beyond the target, per semitone the played mean lags it
    reach: float = 24.0  # semitones: the most the centre leads the target
    register_tau: float = 1.0  # seconds of played time the recent played mean averages over
    scale_bonus: float = 3.0  # logits out-of-key pitches lose once a key is asked for or latched
    rate_tau: float = 1.0  # seconds of played (real) time the model's onset-rate estimate averages over
    min_scale: float = 0.25
    max_scale: float = 4.0

    def register_bias(self, target: float, played: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """The NOTE_ON bias toward MIDI pitch ``target``, led past it while the music lags:
        ``played`` is (pitches, onsets) of the recent note-ons, both forgotten alike."""
        centre = target
        pitches, onsets = played
        if onsets > PLAYED_MIN:
            lag = target - pitches / onsets
            centre += min(max(self.lead * lag, -self.reach), self.reach)
        return -0.5 * ((PITCHES - centre) / self.register_sigma) ** 2

    def scale_bias(self, key: int) -> np.ndarray:
        """Out-of-key pitches (``key`` a 12-bit mask of pitch classes) lose ``scale_bonus``."""
        in_key = (key >> (PITCHES.astype(int) % 12)) & 1
        return np.where(in_key == 1, 0.0, -self.scale_bonus)


PITCHES = np.arange(128, dtype=np.float64)
PLAYED_MIN = 0.5  # recent onsets (forgotten weight) below which the played mean is not trusted to lead
TIMINGS = ("grid", "free")
STEPS_PER_BEAT = 4  # the grid: 16th notes
LONGEST_BEAT_SHIFT = 24  # steps (2 beats) a beat-time model's one TIME_SHIFT lasts at most: its longest,
# 8 1/3 beats, stretched for a sparse density, is 16 s of silence, where a clock-time model's longest is 1 s
REST_CHUNK = 0.1  # s: a rest is played in steps this long at most (at least one model step each)
GRID_LATE = 0.01  # s after a 16th that a note-on may still sound, as a player a hair late is on the beat
FORBIDDEN = -1e9  # logit of a token the structure rules out


@dataclass(frozen=True)
class Structure:
    """What the engine adds to the Char-RNN's own music so it has a pulse, a key, ideas that
    come back and clean notes. Each is a little bookkeeping per token, kept in the saved state,
    so a rollback or a replayed take plays the same notes.

    - pulse: in ``grid`` timing a note-on waits for the next 16th of the engine's beat (its tempo
      map: the bpm, a MIDI clock in or Link) unless it is at most ``GRID_LATE`` past one, and the
      density loop counts that wait as time the model took; ``free`` keeps the model's own timing;
    - key: unless the performer gives pitch classes, the key is latched from the first notes;
    - clean notes: a pitch is not struck while it sounds or just after it ended, a note is not
      ended before ``min_note``, a note held past ``hold_soft`` grows likelier to end, and none
      is held past ``hold_limit`` (one TIME_SHIFT, stretched for a sparse density, can span 4 s);
    - motifs: phrases (``phrase_beats``) are remembered with the controls they were played under;
      at a phrase start, with chance ``recall``, an earlier phrase played under the same controls
      is fed to the model again as if it were sampled, re-priming it with that idea;
    - steering heard inside a rest: with ``retime_rests`` a rest is played ``REST_CHUNK`` at a
      time and what is left of it follows a density or tempo change made meanwhile (``Rest``);
      without, it plays whole at the stretch it began with, as takes recorded before were played.
    """

    timing: str = "grid"
    key_after: int = 8  # onsets heard before the key is latched
    min_note: float = 0.1  # s
    restrike_gap: float = 0.03  # s after a pitch ended before it may start again
    hold_soft: float = 1.5  # s
    hold_push: float = 3.0  # logits per second past hold_soft on the note's NOTE_OFF
    hold_limit: float = 3.0  # s: the decoder ends a note held this long (one long TIME_SHIFT can get there)
    phrase_beats: int = 8
    recall: float = 0.3
    bank: int = 4  # phrases remembered
    min_phrase_notes: int = 8  # a phrase with fewer note-ons is not remembered
    max_phrase_tokens: int = 400
    retime_rests: bool = True


@dataclass(frozen=True)
class Motif:
    """The phrase memory, as saved with each token."""

    phrase: int = -1  # the phrase the previous token was made in
    taking: tuple[int, ...] | None = ()  # this phrase's tokens so far (None: not one to remember)
    notes: int = 0  # note-ons among them
    under: tuple | None = None  # the controls heard when this phrase began
    bank: tuple = ()  # (tokens, controls heard) of earlier phrases, newest last
    replay: tuple[int, ...] = ()  # tokens of a recalled phrase still to play


@dataclass(frozen=True)
class Rest:
    """What is left of a rest a TIME_SHIFT began, played a chunk per step, each step a saved state:
    a control change rolls back into a rest rather than to its end, and what is left of it is
    stretched for the density in force then (and in beat time lasts as long as the tempo says),
    so a rest begun sparse does not hold the music silent after the hand asks for more."""

    steps: int  # model steps still to play
    scale: float  # the stretch they play at
    rate: float | None  # the target rate (notes/s) that stretch was set for; None: not steered (yet)
    before: tuple[tuple[float, float], tuple[float, float]]  # the rate and played memories when it began
    played: tuple[float, float] = (0.0, 0.0)  # (unscaled, real) seconds of it played so far


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
    key: int | None = None  # the latched key (12-bit mask of pitch classes)
    heard: tuple[int, ...] = (0,) * 12  # pitch classes of the onsets before the key was latched
    motif: Motif = Motif()
    played: tuple[float, float] = (0.0, 0.0)  # (pitches, onsets) of the recent note-ons, forgotten over real time
    answered: tuple[int, ...] = (0,) * 12  # pitch classes struck so far in a phrase of its own
    drawn: int = 0  # tokens sampled before this state: the index of the sampler's next draw
    rest: Rest | None = None  # a rest still playing: the next step plays on in it, sampling nothing


class CharRNNGenerator(LiveGenerator):
    """The Char-RNN (its numpy runtime, ``LiveCharRNN``), one event token per step."""

    def __init__(self, model, controls: Controls, seed: int = 0, temperature: float = 1.0,
                 steering: Steering | None = None, channel: int = 0,
                 max_note_seconds: float = 4.0, max_polyphony: int = 12, bpm: float = 120.0,
                 structure: Structure | None = None):
        self.model = model
        self.channel = channel
        self.sampler = TokenSampler(seed, temperature)
        self.phrase_draws = TokenSampler(seed + (1 << 64))  # its own stream: one uniform per phrase
        self.steering = steering or Steering()
        self.structure = structure or Structure()
        if self.structure.timing not in TIMINGS:
            raise UserError(f"timing {self.structure.timing!r} is not one of {', '.join(TIMINGS)}")
        self.timeline = ControlTimeline(controls, bpm)
        self.in_beats = model.config.time_unit == "beats"
        self._cache: dict[Controls, tuple] = {}
        self._scale_bias: dict[int, np.ndarray] = {}
        state = self.model.initial_state(controls.vector())
        self.decoder_limits = (min(max_note_seconds, self.structure.hold_limit), max_polyphony)
        decoder = StreamingDecoder(*self.decoder_limits)
        prior = self.steering.rate_tau / 2  # as if the model had played at the target rate for a while
        self.current = Snapshot(0, 0.0, SEED_TOKEN, state, decoder,
                                (prior * control_density_to_rate(controls.density), prior))
        self.history: deque[Snapshot] = deque()
        self.override: dict = {}  # controls a phrase of its own plays under, over the timeline's
        self.phrase_start = math.nan  # where that phrase begins: its first token strikes a note there
        self.phrase_bias = None  # its pitch classes' weights, as note logits: it keeps to the key it was given
        self.phrase_share = None  # its pitch classes' shares, which the notes it strikes keep up with

    def begin_phrase(self, at: float, override: dict, prime: list[int]) -> None:
        """Start a phrase of its own at performance time ``at`` (an answer to a player): the model
        state afresh, primed with ``prime`` tokens (a phrase to continue), under the timeline's
        controls with ``override``; its first notes sound at ``at``, not after a pause."""
        self.override = override
        histogram = override.get("histogram")
        self.phrase_bias = self.phrase_share = None
        if histogram is not None and self.steering.enabled:
            share = np.asarray(histogram, dtype=np.float64) / max(max(histogram), 1e-9)
            self.phrase_bias = PHRASE_KEY_WEIGHT * np.log(np.maximum(share, PHRASE_KEY_FLOOR))[np.arange(128) % 12]
            self.phrase_share = share / share.sum()
        controls = self.controls_at(at)
        cond, _, target_rate, _ = self._prepared(controls)
        lstm = self.model.initial_state(controls.vector())
        prev = SEED_TOKEN
        for token in prime:
            _, lstm = self.model.step(prev, cond, lstm)
            prev = token
        decoder = StreamingDecoder(*self.decoder_limits, time=at)
        prior = PHRASE_RATE_PRIOR
        motif = replace(self.current.motif, phrase=-1, taking=(), notes=0, replay=())  # its ideas are kept
        self.current = Snapshot(self.current.index, at, prev, lstm, decoder, (prior * target_rate, prior),
                                motif=motif, drawn=self.current.drawn)
        self.phrase_start = at

    def controls_at(self, t: float) -> Controls:
        controls = self.timeline.at(t)
        return replace(controls, **self.override) if self.override else controls

    def _time_of(self, state: Snapshot) -> float:
        return state.time

    def hears(self, before: Controls, after: Controls) -> bool:
        """Pitch, density, pitch classes and temperature, and the tempo on the grid or for a model in
        beat time; not the DCRNN's z."""
        tempo_heard = self.structure.timing == "grid" or self.in_beats
        if tempo_heard and before.bpm != after.bpm or before.temperature != after.temperature:
            return True
        return heard_by_charrnn(before) != heard_by_charrnn(after)

    def _prepared(self, controls: Controls):
        hit = self._cache.get(controls)
        if hit is None:
            if len(self._cache) > 256:
                self._cache.clear()
            target = None  # the register's MIDI pitch, when steered
            if self.steering.enabled and controls.conditioning:
                target = control_pitch_to_midi(controls.pitch)
            key = None
            if controls.histogram is not None and sum(controls.histogram) > 0:
                key = sum(1 << pc for pc, w in enumerate(controls.histogram) if w > 0)
            hit = (self.model.condition(controls.vector()), target, control_density_to_rate(controls.density), key)
            self._cache[controls] = hit
        return hit

    def _key_bias(self, key: int) -> np.ndarray:
        bias = self._scale_bias.get(key)
        if bias is None:
            bias = self._scale_bias[key] = self.steering.scale_bias(key)
        return bias

    def _onset_time(self, t: float) -> float:
        """When a note-on made at decoder time ``t`` sounds: on the grid, then or at most
        ``GRID_LATE`` after a 16th of the beat, else at the next 16th."""
        if self.structure.timing == "free":
            return t
        tempo = self.timeline.tempo
        grid = tempo.time_at_beat(math.floor(tempo.beat_at(t) * STEPS_PER_BEAT + 1e-6) / STEPS_PER_BEAT)
        if t - grid <= GRID_LATE:
            return t
        return max(t, tempo.time_at_beat(math.ceil(tempo.beat_at(t) * STEPS_PER_BEAT) / STEPS_PER_BEAT))

    def _phrase(self, motif: Motif, t: float, heard: tuple) -> Motif:
        """The motif memory at decoder time ``t``: at a new phrase, the last one is remembered
        and an earlier one may be recalled; a recall stops when the controls change."""
        st = self.structure
        phrase = int(self.timeline.tempo.beat_at(t) // st.phrase_beats)
        if phrase == motif.phrase:
            if motif.replay and heard != motif.under:
                return replace(motif, replay=())
            return motif
        bank = motif.bank
        if motif.taking is not None and motif.notes >= st.min_phrase_notes:
            bank = (bank + ((motif.taking, motif.under),))[-st.bank:]
        if motif.replay and heard == motif.under:  # a recalled phrase runs on into this one
            return Motif(phrase, None, 0, heard, bank, motif.replay)
        same = [tokens for tokens, under in bank if under == heard]
        u = self.phrase_draws.uniform(phrase) if same else 1.0
        if u < st.recall:
            return Motif(phrase, None, 0, heard, bank, same[int(u / st.recall * len(same))])
        return Motif(phrase, (), 0, heard, bank, ())

    def _shape(self, logits: np.ndarray, register, key: int | None, decoder: StreamingDecoder,
               onset: float, answered: tuple[int, ...]) -> np.ndarray:
        """The logits with the steering biases and the clean-note rules applied; in a phrase of
        its own, a pitch class behind its share of the player's phrase is pushed forward (a quota:
        a short answer's few notes follow the phrase's pitch classes, not just its scale)."""
        st = self.structure
        out = logits.astype(np.float64)
        pitch = np.zeros(128) if register is None else register
        if key is not None and register is not None:
            pitch += self._key_bias(key)
            if self.phrase_bias is not None:
                behind = (sum(answered) + 1) * self.phrase_share - np.asarray(answered)
                pitch += self.phrase_bias + PHRASE_QUOTA_WEIGHT * behind[np.arange(128) % 12]
        for p, started in decoder.active.items():
            pitch[p] = FORBIDDEN  # struck while sounding: it would cut itself off
            age = decoder.time - started
            if age < st.min_note:
                out[NOTE_OFF_FIRST + p] = FORBIDDEN
            elif age > st.hold_soft:
                out[NOTE_OFF_FIRST + p] += st.hold_push * (age - st.hold_soft)
        for p, ended in decoder.ended.items():
            if ended > onset - st.restrike_gap:
                pitch[p] = FORBIDDEN
        if register is None:
            out[NOTE_ON] += pitch
            return out
        return steer_pitch(out, pitch)

    @staticmethod
    def _replayed(motif: Motif, logits: np.ndarray) -> tuple[int, Motif]:
        """The next token of a recalled phrase that the clean-note rules allow now (-1: none);
        a note-on or note-off they forbid is left out."""
        replay = motif.replay
        while replay:
            token = replay[0]
            if logits[token] > FORBIDDEN / 2:
                return token, replace(motif, replay=replay[1:])
            replay = replay[1:]
        return -1, replace(motif, replay=())

    def step(self) -> list[tuple[float, int, list[int]]]:
        """Sample one token, or play on in a rest; returns (time, step index, MIDI bytes) for the
        messages it makes."""
        s = self.current
        self.history.append(s)
        controls = self.controls_at(s.time)
        cond, target, target_rate, asked_key = self._prepared(controls)
        if s.rest is not None:
            decoder = s.decoder.copy()
            own_rate = s.rate[0] / s.rate[1]
            messages, rest, rate, played = self._play_rest(s.rest, decoder, controls, target_rate, own_rate)
            self.current = replace(s, index=s.index + 1, time=decoder.time, decoder=decoder, rate=rate,
                                   played=played, rest=rest)
            return self._midi(messages, s.index)
        register = None if target is None else self.steering.register_bias(target, s.played)
        logits, lstm = self.model.step(s.prev_token, cond, s.lstm)
        decoder = s.decoder.copy()
        starts_phrase = s.time == self.phrase_start and not decoder.active
        onset = decoder.time if starts_phrase else self._onset_time(decoder.time)
        motif = self._phrase(s.motif, s.time, heard_by_charrnn(controls))
        key = asked_key if asked_key is not None else s.key
        onsets, span = s.rate
        pitches, played = s.played
        logits = self._shape(logits, register, key, decoder, onset, s.answered)
        if starts_phrase:  # an answer starts on a note, at the instant it was asked for
            logits[NOT_A_START] = FORBIDDEN
        token, motif = self._replayed(motif, logits)
        if token < 0:
            token = self.sampler.sample(logits, s.drawn, controls.temperature)  # the temperature in force then
        messages, rest = [], None
        heard, latched, answered = s.heard, key, s.answered
        shift = TIME_SHIFT_FIRST <= token < TIME_SHIFT_FIRST + events.MAX_SHIFT_STEPS
        if shift:
            steps = token - TIME_SHIFT_FIRST + 1
            rest = Rest(min(steps, LONGEST_BEAT_SHIFT) if self.in_beats else steps, 1.0, None,
                        ((onsets, span), (pitches, played)))
            messages, rest, (onsets, span), (pitches, played) = self._play_rest(
                rest, decoder, controls, target_rate, onsets / span)
        elif token < NOTE_ON[-1] + 1:
            if onset > decoder.time:  # the wait for the grid is time the model took
                wait = onset - decoder.time
                forget = math.exp(-wait / self.steering.rate_tau)
                onsets, span = onsets * forget, span * forget + wait / decoder.time_scale
                fade = math.exp(-wait / self.steering.register_tau)
                pitches, played = pitches * fade, played * fade
                messages = decoder.advance(onset)
            onsets += 1.0
            pitches, played = pitches + (token - NOTE_ON_FIRST), played + 1.0
            if self.phrase_share is not None:
                answered = tuple(c + (pc == token % 12) for pc, c in enumerate(answered))
            if key is None:
                heard = tuple(c + (pc == token % 12) for pc, c in enumerate(heard))
                if sum(heard) >= self.structure.key_after:
                    latched = best_diatonic(heard)
        if motif.taking is not None:
            if len(motif.taking) < self.structure.max_phrase_tokens:
                motif = replace(motif, taking=motif.taking + (token,), notes=motif.notes + (token < NOTE_ON[-1] + 1))
            else:
                motif = replace(motif, taking=None)
        if not shift:
            messages += decoder.feed(token)
        self.current = Snapshot(s.index + 1, decoder.time, token, lstm, decoder, (onsets, span), latched, heard, motif,
                                (pitches, played), answered, s.drawn + 1, rest)
        return self._midi(messages, s.index)

    def _stretch(self, controls: Controls, target_rate: float, own_rate: float,
                 rest: Rest | None = None) -> tuple[float, float | None]:
        """The stretch of rest steps played now, and the target rate it is set for (None: not
        steered): the model's own rate over the target, or for a rest already playing, its stretch
        times the change in the target rate (so a rest left alone keeps the stretch it began with)."""
        st = self.steering
        if not (st.enabled and controls.conditioning):
            return 1.0, None
        if rest is not None and rest.rate is not None:
            if rest.rate == target_rate:
                return rest.scale, rest.rate
            own_rate = rest.scale * rest.rate
        return min(max(own_rate / target_rate, st.min_scale), st.max_scale), target_rate

    def _play_rest(self, rest: Rest, decoder: StreamingDecoder, controls: Controls, target_rate: float,
                   own_rate: float):
        """Play the next chunk of ``rest`` on ``decoder``: its note messages (notes reaching the
        length guard), what is left of it (None: it is over), and the rate and played-pitch
        memories forgotten over the rest so far, as if it were one step: its time counts whole
        in the model's rate until it is forgotten. ``own_rate``: the model's rate now, for a
        stretch not set yet."""
        scale, target = self._stretch(controls, target_rate, own_rate, rest)
        t = decoder.time
        tempo = self.timeline.tempo

        def unscaled(steps: int) -> float:  # seconds of ``steps`` model steps from t, before the stretch
            if self.in_beats:  # 1/12 beat each at the tempo where they start: a tempo change made later
                return steps / events.GRID_STEPS_PER_BEAT * 60.0 / tempo.bpm_at(t)  # is heard from the next step
            return steps * decoder.step

        steps = rest.steps
        if self.structure.retime_rests:
            steps = min(steps, max(1, int(REST_CHUNK / (unscaled(1) * scale))))
        dt = unscaled(steps)
        decoder.time_scale = scale
        messages = decoder.advance(t + dt * scale)
        (onsets, span), (pitches, count) = rest.before
        dt, real = rest.played[0] + dt, rest.played[1] + dt * scale
        forget = math.exp(-real / self.steering.rate_tau)
        fade = math.exp(-real / self.steering.register_tau)
        left = replace(rest, steps=rest.steps - steps, scale=scale, rate=target, played=(dt, real))
        return (messages, left if left.steps else None, (onsets * forget, span * forget + dt),
                (pitches * fade, count * fade))

    def _midi(self, messages, index: int) -> list[tuple[float, int, list[int]]]:
        status_on, status_off = 0x90 | self.channel, 0x80 | self.channel
        return [(m.time, index, [status_on, m.pitch, m.velocity] if m.velocity else [status_off, m.pitch, 0])
                for m in messages]

    def release(self) -> list[tuple[float, int, list[int]]]:
        """Note-offs for everything the decoder holds (end of a performance)."""
        return [(m.time, self.current.index, [0x80 | self.channel, m.pitch, 0])
                for m in self.current.decoder.copy().release_all()]
