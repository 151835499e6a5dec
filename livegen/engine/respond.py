"""Call and response: the main Char-RNN layer listens while the player plays, answers when they stop.

The ``Responder`` runs on the engine's generator thread and owns layer 0 in the ``continue`` and
``answer`` modes. While the player plays, the layer is silent. Before the silence threshold
elapses (``PREPARE_AHEAD``), the answer is made ready: a fresh model state (``answer``) or one
primed with the player's phrase (``continue``), conditioned on the key, density and register
estimated from the phrase, its first notes generated and handed to the clock for the instant the
silence elapses, so the first answering note is not held up by the lookahead. A note the player
strikes before then moves the deadline and the prepared answer is replaced; one struck while the
answer plays cuts it there, its sounding notes ended at the cut. Every decision is a function of
the player's note times (performance seconds), so a replayed take answers the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from livegen.engine.charrnn_live import CharRNNGenerator
from livegen.music.phrase import PlayerPhrase, estimate_controls, phrase_tokens

PREPARE_AHEAD = 0.3  # s before the deadline the answer is made (priming takes ~0.1 s on a laptop)
LATE_MARGIN = 0.015  # s: an answer made after its deadline starts this far after it was made
KEY_SECONDS = 10.0  # s of the player's playing the key is heard from (a phrase alone may hold a few notes)
PRIME_TOKENS = 96  # the phrase's last tokens the Char-RNN is primed with (continue)
FIRST_NOTES_AHEAD = 0.1  # s of the answer made before it is handed over, at least its first note
MAX_PREPARE_STEPS = 200
PEDAL_DOWN = 64  # a trigger CC at or above this is pressed


@dataclass(frozen=True)
class RespondSettings:
    mode: str = "answer"  # continue | answer | accompany
    answer_after: float = 0.5  # s of silence that end the player's phrase
    answer_bars: float = 2.0  # bars the answer lasts (4 beats at the take's bpm)
    trigger_cc: int | None = None  # a pedal or CC that ends the phrase at once when pressed

    @property
    def answers(self) -> bool:
        """Whether livegen waits for the player's silence (continue, answer) rather than plays along."""
        return self.mode in ("continue", "answer")

    def describe(self) -> dict:
        return {"mode": self.mode, "answer_after": self.answer_after, "answer_bars": self.answer_bars,
                "trigger_cc": self.trigger_cc}


class Responder:
    """Layer 0 in the continue and answer modes. Its methods return the commands for the clock."""

    def __init__(self, settings: RespondSettings, gen: CharRNNGenerator, bpm: float):
        self.settings = settings
        self.gen = gen
        self.bar_seconds = 4 * 60.0 / bpm
        self.phrase = PlayerPhrase()
        self.state = "idle"  # idle (nothing to answer) | listening | ready (answer handed over) | answering
        self.answer_at = math.inf  # performance time of the answer's first note
        self.answer_end = math.inf
        self.answer_from = -1  # the answer's first token index
        self.deadline = math.inf  # when the silence threshold elapses (or the pedal was pressed)
        self.phrase_from = -math.inf  # the player's phrase begins after the last answer was cut
        self.ended = False  # the answer is made to its end (it may still be playing)
        self.answers = 0
        self.last_answer: dict = {}  # when the last answer began and what it was made from

    @property
    def holding(self) -> bool:
        """Whether the main loop must leave layer 0 alone (silent, or its answer made to the end)."""
        return self.state != "answering" and self.state != "ready" or self.gen.time >= self.answer_end

    def hear(self, t: float, msg: list[int], now: float) -> list[tuple]:
        """The player's message at performance time ``t``."""
        kind = msg[0] & 0xF0
        if kind == 0xB0 and msg[1] == self.settings.trigger_cc:
            if msg[2] >= PEDAL_DOWN and self.state == "listening":
                self.deadline = t  # the pedal ends the phrase: answer now
            return []
        heard = self.phrase.hear(t, msg)
        if heard is None:
            return []
        commands = []
        if heard == "on" and self.state != "listening":
            self.phrase_from = t  # a new phrase
        if self.state in ("ready", "answering"):
            commands = self._cut(t, now)
        self.state = "listening"
        self.deadline = self.phrase.quiet_from() + self.settings.answer_after
        return commands

    def poll(self, now: float, lookahead: float) -> list[tuple]:
        """Prepare the answer when its deadline is near; end it when it has played its bars."""
        if self.state == "listening" and now >= self.deadline - PREPARE_AHEAD:
            return self._prepare(now, lookahead)
        commands = []
        if self.state in ("ready", "answering") and self.gen.time >= self.answer_end and not self.ended:
            self.ended = True  # made to its end: its last notes end there
            commands = [("schedule", 0, [(min(t, self.answer_end), i, m) for t, i, m in self.gen.release()])]
        if self.state == "ready" and now >= self.answer_at:
            self.state = "answering"
        if self.state == "answering" and now >= self.answer_end:
            self.state = "idle"
        return commands

    def _prepare(self, now: float, lookahead: float) -> list[tuple]:
        gen = self.gen
        at = max(self.deadline, now + LATE_MARGIN)
        notes = self.phrase.between(self.phrase_from, self.deadline)
        recent = self.phrase.between(self.deadline - KEY_SECONDS, self.deadline)
        estimated = estimate_controls(notes, gen.timeline.at(at))
        override = {"histogram": estimate_controls(recent, estimated).histogram, "density": estimated.density,
                    "pitch": estimated.pitch, "conditioning": True}
        prime = []
        if self.settings.mode == "continue":
            prime = phrase_tokens(recent, PRIME_TOKENS, gen.timeline.tempo if gen.in_beats else None)
        self.answer_from = gen.current.index
        gen.begin_phrase(at, override, prime)
        batch = []
        for _ in range(MAX_PREPARE_STEPS):
            batch += gen.step()
            if gen.time >= at + min(lookahead, FIRST_NOTES_AHEAD) and any(m[2] > 0 and m[0] & 0xF0 == 0x90
                                                                             for _, _, m in batch):
                break
        self.answer_at, self.answer_end = at, at + self.settings.answer_bars * self.bar_seconds
        batch = [e for e in batch if e[0] < self.answer_end]
        self.state, self.ended = "ready", False
        self.answers += 1
        self.last_answer = {"at": at, "deadline": self.deadline, "notes": len(notes), "controls": estimated}
        return [("replace", 0, self.answer_from, batch, 0)]

    def _cut(self, t: float, now: float) -> list[tuple]:
        """The player plays again: the answer stops at ``t``, its sounding notes ended there."""
        gen = self.gen
        cut = max(t, now + 0.001)
        first = gen.rollback(cut)
        if first is None and gen.history and gen.history[-1].time < cut <= gen.time:
            first = gen.rollback(gen.history[-1].time)  # the step that spans the cut (a pause)
        self.state = "listening"
        self.answer_end = math.inf
        if first is None:  # not made that far: end what it holds where it stopped
            return [("schedule", 0, gen.release())]
        return [("replace", 0, first, [(cut, first, m) for _, _, m in gen.release()], 0)]
