"""From notes to a sentence on screen: measure the music, condition the CVAE, keep what is fit to show.

``Commentator`` is what the CLI and the live worker share. It writes with the numpy runtime of the
CVAE (no torch), is deterministic for a seed (one seeded numpy generator drives every draw) and
only ever returns text that passed the booth filter.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.commentary import attributes as music_attributes
from livegen.commentary import filter as word_filter
from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.cvae import LiveCVAE, draws
from livegen.models.words import detokenize
from livegen.music.events import Note

MIN_WORDS = 5
CANDIDATES = 8  # drawn in one batch: as fast as one, and some always pass the checks
ATTEMPTS = 4


@dataclass
class Comment:
    text: str
    attributes: list[str]  # what the model was conditioned on: shown with the sentence
    time: float | None = None  # performance time (live) or position in the file (s) the window ends at
    features: dict = field(default_factory=dict)  # the measurements behind the attributes
    steered: bool = False  # decoded from the LC-GAN actor's z
    ms: float = 0.0  # time to generate

    def line(self) -> str:
        """The sentence, then its attributes in brackets (one line for a terminal or a log)."""
        return f"{self.text}  [{', '.join(self.attributes)}]" if self.attributes else self.text

    def to_json(self) -> dict:
        return {"time": None if self.time is None else round(self.time, 3), "text": self.text,
                "attributes": self.attributes, "features": self.features, "lcgan": self.steered,
                "ms": round(self.ms, 1)}


def commentary_checkpoint(path: str | Path | None = None) -> Path:
    """A commentary checkpoint's file (default: the shipped MusicCaps model), its header checked."""
    path = Path(path) if path is not None else checkpoint.DEFAULT_COMMENTARY
    if path == checkpoint.DEFAULT_COMMENTARY and not path.is_file():
        raise UserError(f"the shipped commentary model {path} is missing: reinstall livegen")
    kind = checkpoint.read_metadata(path)["kind"]
    if kind != "cvae":
        raise UserError(f"{path} is a {kind:.80} model, not a commentary model (train one with "
                        "`livegen train commentary`)")
    return path


def load_model(path: str | Path | None = None) -> LiveCVAE:
    """The commentary CVAE's numpy runtime (default: the shipped MusicCaps model)."""
    model, _ = checkpoint.load_live(commentary_checkpoint(path))
    return model


class Commentator:
    """Sentences for attribute labels. Of each batch of CANDIDATES samples, the showable one the
    attribute classifier finds most about the music (the LC-GAN's reward) is shown (``rerank``)."""

    def __init__(self, model: LiveCVAE | str | Path | None = None, seed: int = 0, use_lcgan: bool = True,
                 temperature: float = 0.8, top_k: int = 30, rerank: bool = True):
        self.model = model if isinstance(model, LiveCVAE) else load_model(model)
        self.rng = np.random.default_rng(seed)
        self.use_lcgan = use_lcgan and self.model.lcgan is not None
        self.temperature, self.top_k, self.rerank = temperature, top_k, rerank
        self.recent: deque[str] = deque(maxlen=32)  # not the same sentence twice in a row of 32
        words = self.model.config.words
        self.banned = [i for i, w in enumerate(words) if word_filter.is_blocked_word(w)]

    def known(self, labels: list[str]) -> list[str]:
        """The labels this model was trained with (others would be silently ignored)."""
        return [a for a in labels if a in self.model.config.attributes]

    def sentence(self, labels: list[str]) -> str:
        """One booth-safe sentence of at least MIN_WORDS words conditioned on ``labels``."""
        attrs = np.repeat(self.model.attribute_vector(labels)[None], CANDIDATES, 0)
        for _ in range(ATTEMPTS):
            z, uniforms = draws(self.rng, CANDIDATES, self.model.config)
            if self.use_lcgan:
                z = self.model.lcgan.steer(z, attrs)
            drawn = self.model.sample(attrs, z, uniforms, temperature=self.temperature, top_k=self.top_k,
                                      banned=self.banned)
            sentences = [detokenize(words) for words in drawn]
            ok = [i for i, (w, s) in enumerate(zip(drawn, sentences)) if self._showable(w, s)]
            if not ok:
                continue
            best = ok[0]
            if self.rerank and labels:
                best = ok[int(self.model.reward([drawn[i] for i in ok], attrs[:len(ok)]).argmax())]
            self.recent.append(sentences[best])
            return sentences[best]
        return self._plain(labels)

    def _showable(self, words: list[str], sentence: str) -> bool:
        return (sum(w[0].isalnum() for w in words) >= MIN_WORDS and bool(words) and words[-1] in (".", "!", "?")
                and word_filter.is_safe(sentence) and sentence not in self.recent)

    @staticmethod
    def _plain(labels: list[str]) -> str:
        """A plain description when no sampled sentence passed (rare; counted as not generated)."""
        shown = ", ".join(labels) if labels else "no clear tempo or key yet"
        return f"The music right now sounds like this: {shown}."

    def comment(self, notes: list[Note], end: float | None = None, programs=(0,), drums: bool = False,
                bpm: float | None = None, seconds: float = music_attributes.WINDOW_SECONDS) -> Comment:
        """A comment on the ``seconds`` of notes before ``end`` (default: the last note's end)."""
        t0 = time.perf_counter()
        recent = music_attributes.window(notes, end, seconds)
        features = music_attributes.measure(recent, bpm)
        labels = self.known(music_attributes.describe(features, programs, drums))
        sentence = self.sentence(labels)
        when = end if end is not None else (max(n.end for n in recent) if recent else None)
        return Comment(sentence, labels, when, features.to_json(), self.use_lcgan,
                       (time.perf_counter() - t0) * 1000)
