"""Text side of the commentary: caption sentences and the attribute vocabulary (the word tokeniser
is the models' own: livegen/models/words.py).

Attributes are the words a music writer uses about a track (genre, mood, tempo, instruments,
texture). Each is a label with the phrases that signal it; which labels a model knows is derived
from the MusicCaps aspect lists and captions at training time (those seen often enough) and stored
in its checkpoint. The same labels come out of ``attributes.py`` for live music, so the model is
conditioned on exactly what it was trained with.
"""
from __future__ import annotations

import ast
import csv
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from livegen.errors import UserError
from livegen.models.words import MAX_SENTENCE_TOKENS, SPECIALS, tokenize

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])")


def split_sentences(caption: str) -> list[str]:
    """A caption's sentences (the captions are plain prose: split after . ! ? before a capital)."""
    return [s.strip() for s in _SENTENCE_END.split(caption.strip()) if s.strip()]


# --- attributes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attribute:
    label: str  # what is shown and what the model is conditioned on
    category: str
    pattern: str  # regex over lower-cased aspect tags and sentence text


def _a(category: str, label: str, pattern: str) -> Attribute:
    return Attribute(label, category, pattern)


# Candidates; a model keeps those seen in at least MIN_ATTRIBUTE_COUNT training captions.
CANDIDATES: tuple[Attribute, ...] = (
    _a("tempo", "slow tempo", r"\bslow(?:er|ly)?\b|\bdownbeat\b|\blaid[- ]back\b"),
    _a("tempo", "medium tempo", r"\bmedium(?: to \w+)?[- ]?tempo\b|\bmoderate tempo\b|\bmid[- ]tempo\b|"
       r"\bmedium[- ]paced\b|\bmoderate pace\b"),
    _a("tempo", "fast tempo", r"\bfast\b|\bup[- ]?tempo\b|\bquick\b|\brapid\b|\bfrantic\b"),
    _a("mode", "major key", r"\bmajor (?:key|scale|chords?|tonality|mode)\b|\bin (?:a )?major\b"),
    _a("mode", "minor key", r"\bminor\b"),
    _a("dynamics", "soft", r"\bsoft(?:ly)?\b|\bquiet(?:ly)?\b|\bgentle\b|\bdelicate\b|\bsubtle\b"),
    _a("dynamics", "loud", r"\bloud\b|\bpowerful\b|\bforceful\b|\bheavy\b"),
    _a("register", "high register", r"\bhigh[- ]pitched\b|\bhigh (?:register|notes?|range)\b|\bhigher register\b"),
    _a("register", "low register", r"\blow[- ]pitched\b|\blow (?:register|notes?|range|end)\b|\bdeep\b"),
    _a("texture", "solo", r"\bsolo\b|\bsingle instrument\b|\bno other instruments\b|\bunaccompanied\b"),
    _a("texture", "chords", r"\bchords?\b|\bchordal\b"),
    _a("texture", "arpeggios", r"\barpeggi"),
    _a("texture", "simple", r"\bsimple\b|\bminimal(?:ist)?\b|\bsparse\b"),
    _a("texture", "complex", r"\bcomplex\b|\bintricate\b|\bbusy\b|\bdense\b|\bvirtuos"),
    _a("mood", "mellow", r"\bmellow\b|\bchill\b|\bsmooth\b"),
    _a("mood", "calm", r"\bcalm(?:ing)?\b|\brelax(?:ing|ed)\b|\bsoothing\b|\bpeaceful\b|\bmeditative\b|\bserene\b"),
    _a("mood", "sad", r"\bsad\b|\bmelanchol|\bsorrow|\bmournful\b|\bsomber\b|\bsombre\b|\bgloomy\b"),
    _a("mood", "happy", r"\bhappy\b|\bcheerful\b|\bjoyful\b|\bjoyous\b|\bbright\b|\bplayful\b|\bfun\b"),
    _a("mood", "energetic", r"\benergetic\b|\blively\b|\bupbeat\b|\bspirited\b|\bexciting\b|\bvibrant\b"),
    _a("mood", "intense", r"\bintense\b|\baggressive\b|\bdramatic\b|\bepic\b|\bsuspense"),
    _a("mood", "emotional", r"\bemotional\b|\bpassionate\b|\bsentimental\b|\bheartfelt\b|\bpoignant\b|\bsoulful\b"),
    _a("mood", "romantic", r"\bromantic\b|\blove song\b|\btender\b"),
    _a("mood", "dark", r"\bdark\b|\beerie\b|\bsinister\b|\bominous\b|\bspooky\b|\bscary\b|\bhaunting\b|\bmysterious\b"),
    _a("mood", "dreamy", r"\bdreamy\b|\bethereal\b|\bambient\b|\batmospheric\b|\bhypnotic\b"),
    _a("instrument", "piano", r"\bpiano\b|\bpianist\b"),
    _a("instrument", "keyboard", r"\bkeyboards?\b|\be-piano\b|\belectric piano\b"),
    _a("instrument", "organ", r"\borgan\b"),
    _a("instrument", "guitar", r"\bguitars?\b|\be-guitars?\b|\bguitarist\b"),
    _a("instrument", "bass", r"\bbass(?:line| line| guitar)?\b(?! drum)|\be-bass\b"),
    _a("instrument", "drums", r"\bdrums?\b|\bdrummer\b|\bpercussion|\bsnare\b|\bkick\b|\bhi[- ]?hats?\b"),
    _a("instrument", "strings", r"\bstrings\b|\bviolins?\b|\bcellos?\b|\bviolas?\b|\borchestra"),
    _a("instrument", "brass", r"\bbrass\b|\btrumpets?\b|\btrombones?\b|\bhorns?\b|\btuba\b"),
    _a("instrument", "woodwinds", r"\bflutes?\b|\bclarinets?\b|\bsaxophones?\b|\bsax\b|\boboe\b|\bbassoon\b"),
    _a("instrument", "synth", r"\bsynth|\bsynthesi[sz]er"),
    _a("instrument", "vocals", r"\bvocal|\bsing(?:s|er|ers|ing)?\b|\bsung\b|\bvoices?\b|\brapp|\bchoir\b"),
    _a("genre", "pop", r"\bpop\b"),
    _a("genre", "rock", r"\brock\b"),
    _a("genre", "jazz", r"\bjazz"),
    _a("genre", "classical", r"\bclassical\b|\bbaroque\b|\bsymphon|\bconcerto\b|\bsonata\b"),
    _a("genre", "electronic", r"\belectronic\b|\bedm\b|\btechno\b|\btrance\b|\bhouse music\b|\belectro\b"),
    _a("genre", "folk", r"\bfolk\b|\btraditional\b"),
    _a("genre", "hip hop", r"\bhip[- ]?hop\b|\brap\b"),
    _a("genre", "blues", r"\bblues\b"),
    _a("genre", "country", r"\bcountry\b"),
    _a("genre", "metal", r"\bmetal\b"),
    _a("genre", "r&b", r"\br&b\b|\brnb\b|\bsoul\b|\bfunk"),
    _a("genre", "reggae", r"\breggae\b"),
    _a("genre", "latin", r"\blatin\b|\bsalsa\b|\bbossa\b|\bflamenco\b|\btango\b"),
    _a("genre", "soundtrack", r"\bsoundtrack\b|\bmovie\b|\bfilm\b|\bcinematic\b|\bvideo game\b"),
    _a("genre", "devotional", r"\bdevotional\b|\breligious\b|\bgospel\b|\bhymn\b|\bchurch\b"),
    # what a sentence about a recording (not the music) carries; never produced for live music,
    # so conditioning on the absence of it keeps the commentary about the playing
    _a("recording", "recording quality", r"\bquality\b|\bnoisy\b|\bamateur\b|\bmuffled\b|\brecord(?:ed|ing)\b|"
       r"\bmono\b|\bstatic\b|\bvideo\b|\baudio\b|\btutorial\b"),
)
_BY_LABEL = {a.label: a for a in CANDIDATES}
_COMPILED = [(a.label, re.compile(a.pattern)) for a in CANDIDATES]
MIN_ATTRIBUTE_COUNT = 20


def category(label: str) -> str:
    return _BY_LABEL[label].category


def match_attributes(text: str) -> set[str]:
    """Labels whose phrases occur in ``text`` (aspect tags joined, or a sentence)."""
    low = text.lower()
    return {label for label, rx in _COMPILED if rx.search(low)}


# --- the MusicCaps data ------------------------------------------------------------------------------

@dataclass
class Sentence:
    ytid: str
    text: str
    tokens: list[str]
    attributes: set[str]  # the caption's aspect tags and this sentence's own words (what training uses)
    aspects: frozenset[str]  # the caption's aspect tags alone: conditioning that does not contain the answer


REQUIRED_COLUMNS = ("ytid", "aspect_list", "caption")


def is_held_out(ytid: str, fraction: float = 0.08) -> bool:
    """A stable split by clip id, so the trainer and ``livegen eval`` agree on any machine."""
    return zlib.crc32(ytid.encode()) % 1000 < fraction * 1000


def read_captions(path: str | Path) -> list[dict]:
    """Rows of a MusicCaps-style CSV (ytid, aspect_list, caption); a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"caption file {path} does not exist or is not a file "
                        "(MusicCaps: ../shared/data/text/musiccaps.csv)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path} is not a MusicCaps-style CSV: no column(s) {', '.join(missing)}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} is not a readable CSV ({exc})") from None
    if not rows:
        raise UserError(f"{path} has no captions")
    return rows


def aspect_text(raw: str) -> str:
    """The aspect list (a Python-style list of strings) as one lower-case string of tags."""
    try:
        tags = ast.literal_eval(raw)
        if isinstance(tags, (list, tuple)):
            return " ; ".join(str(t).lower() for t in tags)
    except (ValueError, SyntaxError):
        pass
    return raw.lower()


def caption_sentences(rows: list[dict]) -> list[Sentence]:
    """Every usable sentence with its attributes (caption-level tags ∪ the sentence's own words) and,
    apart, the caption-level tags alone: evaluation conditions on those, as the live music's
    attributes never come from the sentence about to be written."""
    out = []
    for row in rows:
        tags = match_attributes(aspect_text(row.get("aspect_list") or ""))
        for text in split_sentences(row.get("caption") or ""):
            tokens = tokenize(text)
            words = [t for t in tokens if t[0].isalnum()]
            if len(words) < 4 or len(tokens) > MAX_SENTENCE_TOKENS:
                continue
            out.append(Sentence(row.get("ytid", ""), text, tokens, tags | match_attributes(text), frozenset(tags)))
    return out


def derive_attributes(sentences: list[Sentence], min_count: int = MIN_ATTRIBUTE_COUNT) -> list[str]:
    """The attribute vocabulary: candidates seen in at least ``min_count`` clips, in a fixed order."""
    per_clip: dict[str, set[str]] = {}
    for s in sentences:
        per_clip.setdefault(s.ytid, set()).update(s.attributes)
    counts = Counter(a for attrs in per_clip.values() for a in attrs)
    return [a.label for a in CANDIDATES if counts[a.label] >= min_count]


def build_vocabulary(sentences: list[Sentence], min_count: int = 3, max_size: int = 6000,
                     blocked: set[str] = frozenset()) -> list[str]:
    """Specials first, then words by frequency; blocked words never enter (they read as <unk>)."""
    counts = Counter(t for s in sentences for t in s.tokens if t not in blocked)
    words = [w for w, c in counts.most_common() if c >= min_count][:max_size - len(SPECIALS)]
    return list(SPECIALS) + words
