"""From notes to a sentence on screen: measure the music, condition the CVAE, keep what is fit to show.

``Commentator`` is what the CLI and the live worker share. It writes with the numpy runtime of the
CVAE (no torch), is deterministic for a seed (one seeded numpy generator drives every draw) and
only ever returns text that passed the booth filter. About music, it also only returns sentences
the truth checker (``truth.py``) finds no false claim in: of CANDIDATES drawn at once, those that
claim nothing false are kept, and the one that says the most that is true is shown.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.commentary import attributes as music_attributes
from livegen.commentary import filter as word_filter
from livegen.commentary import truth
from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.cvae import LiveCVAE, draws
from livegen.models.words import detokenize
from livegen.music.events import Note

MIN_WORDS = 5
CANDIDATES = 16  # drawn in one batch: as fast per sentence as fewer, and enough say something true
ATTEMPTS = 2  # batches at most, while none says something true beyond the instrument


@dataclass
class Comment:
    text: str
    attributes: list[str]  # what the model was conditioned on: shown with the sentence
    time: float | None = None  # performance time (live) or position in the file (s) the window ends at
    features: dict = field(default_factory=dict)  # the measurements behind the attributes
    steered: bool = False  # decoded from the LC-GAN actor's z
    ms: float = 0.0  # time to generate
    heard: dict = field(default_factory=dict)  # reading -> [value, confidence]
    claims: list[truth.Claim] = field(default_factory=list)  # what the sentence claims, each judged
    written: bool = True  # False: no drawn sentence was fit to show, a plain description was

    def line(self) -> str:
        """The sentence, then its attributes in brackets (one line for a terminal or a log)."""
        return f"{self.text}  [{', '.join(self.attributes)}]" if self.attributes else self.text

    def to_json(self) -> dict:
        return {"time": None if self.time is None else round(self.time, 3), "text": self.text,
                "attributes": self.attributes, "features": self.features, "heard": self.heard,
                "claims": [c.to_json() for c in self.claims], "written": self.written, "lcgan": self.steered,
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
        self.claiming = [(i, found) for i, w in enumerate(words) if (found := truth.find(w))]  # one-word claims

    def known(self, labels: list[str]) -> list[str]:
        """The labels this model was trained with (others would be silently ignored)."""
        return [a for a in labels if a in self.model.config.attributes]

    def sentence(self, labels: list[str], heard: truth.Heard | None = None) -> str:
        """One booth-safe sentence of at least MIN_WORDS words conditioned on ``labels``; with what
        was ``heard``, one that claims nothing false about it (see ``write``)."""
        return self.write(labels, heard)[0]

    def write(self, labels: list[str], heard: truth.Heard | None = None) -> tuple[str, bool]:
        """(sentence, written by the model). Without ``heard``, of the showable candidates the one the
        attribute classifier finds most about the labels (``rerank``). With it, only candidates with
        no false claim are kept, and the one with the most true specific claims is shown (the
        classifier breaks ties); batches are drawn until one says something true beyond the
        instrument, at most ATTEMPTS, else the best found. None showable: a plain description.

        With ``heard``, decoding is constrained too: a word that is on its own a false claim ("cello"
        in a piano take, "fast" in a slow one) is never drawn; claims of several words ("high notes")
        are left to the check after."""
        attrs = np.repeat(self.model.attribute_vector(labels)[None], CANDIDATES, 0)
        banned = self.banned
        if heard is not None:
            banned = banned + [i for i, found in self.claiming
                               if not all(truth.verdict(about, value, heard)[0] for about, value, _ in found)]
        best: tuple[float, float, str] | None = None  # (true claims' worth, classifier reward, sentence)
        for _ in range(ATTEMPTS):
            z, uniforms = draws(self.rng, CANDIDATES, self.model.config)
            if self.use_lcgan:
                z = self.model.lcgan.steer(z, attrs)
            drawn = self.model.sample(attrs, z, uniforms, temperature=self.temperature, top_k=self.top_k,
                                      banned=banned)
            sentences = [detokenize(words) for words in drawn]
            ok = [i for i, (w, s) in enumerate(zip(drawn, sentences)) if self._showable(w, s)]
            worth = {i: 0.0 for i in ok}
            if heard is not None:
                verdicts = {i: truth.judge(sentences[i], heard) for i in ok}
                ok = [i for i in ok if not verdicts[i][0]]
                worth = {i: truth.informative(verdicts[i][1]) for i in ok}
            if not ok:
                continue
            rewards = (self.model.reward([drawn[i] for i in ok], attrs[:len(ok)]) if self.rerank and labels
                       else np.zeros(len(ok)))
            for i, r in zip(ok, rewards):
                if best is None or (worth[i], float(r)) > best[:2]:
                    best = (worth[i], float(r), sentences[i])
            if heard is None or best[0] >= 1:
                break
        if best is None:
            return self._plain(labels), False
        self.recent.append(best[2])
        return best[2], True

    def _showable(self, words: list[str], sentence: str) -> bool:
        return (sum(w[0].isalnum() for w in words) >= MIN_WORDS and bool(words) and words[-1] in (".", "!", "?")
                and word_filter.is_safe(sentence) and sentence not in self.recent)

    @staticmethod
    def _plain(labels: list[str]) -> str:
        """A plain description when no sampled sentence passed (rare; counted as not generated)."""
        shown = ", ".join(labels) if labels else "no clear tempo or key yet"
        return f"The music right now sounds like this: {shown}."

    def comment(self, notes: list[Note], end: float | None = None, programs=(0,), drums: bool = False,
                seconds: float = music_attributes.WINDOW_SECONDS) -> Comment:
        """A comment on the ``seconds`` of notes before ``end`` (default: the last note's end)."""
        t0 = time.perf_counter()
        recent = music_attributes.window(notes, end, seconds)
        features = music_attributes.measure(recent)
        readings = music_attributes.hear(features)
        heard = truth.Heard(readings, tuple(programs), drums)
        labels = self.known(music_attributes.describe(features, programs, drums))
        sentence, written = self.write(labels, heard)
        when = end if end is not None else (max(n.end for n in recent) if recent else None)
        return Comment(sentence, labels, when, features.to_json(), self.use_lcgan,
                       (time.perf_counter() - t0) * 1000, {k: r.to_json() for k, r in readings.items()},
                       truth.claims(sentence, heard), written)
