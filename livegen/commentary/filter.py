"""Booth-safe text: nothing offensive reaches a public screen.

Two guards. Blocked words never enter a model's vocabulary (training maps them to <unk>, which is
never sampled), and every sentence is checked again here before it is shown: a sentence with a
blocked word, or a word the model should not be able to produce, is dropped and another is drawn.
The list covers profanity, slurs, sexual and violent words; captions describing lyrics or film
scenes occasionally contain the latter, and a booth screen is no place for them.
"""
from __future__ import annotations

import re

# whole words, with the listed stems also matching their common endings (s, es, ed, er, ing, y)
_BLOCKED_STEMS = (
    # profanity
    "fuck", "motherfuck", "shit", "bullshit", "bitch", "bastard", "damn", "goddamn", "crap", "piss",
    "ass", "arse", "asshole", "arsehole", "dick", "cock", "prick", "cunt", "twat", "wank", "wanker",
    "bollock", "bugger", "slut", "whore", "douche", "jerkoff", "dildo", "boob", "tit", "titty",
    "pussy", "penis", "vagina", "cum", "jizz", "porn", "porno", "nude", "naked", "horny", "sexy", "sex",
    "sexual", "erotic", "orgasm", "stripper", "hooker",
    # slurs (kept short: these never occur in MusicCaps, but a retrained model must not learn them)
    "nigger", "nigga", "faggot", "fag", "dyke", "tranny", "retard", "retarded", "spastic", "kike",
    "chink", "spic", "wetback", "gook", "raghead", "paki", "coon", "cripple",
    # violence, drugs, self-harm
    "kill", "killer", "murder", "murderer", "suicide", "rape", "rapist", "gun", "gunshot", "gunfire",
    "shoot", "shooting", "bloody", "corpse", "terrorist", "bomb", "cocaine", "heroin", "meth",
    "weed", "stoned", "drunk", "nazi",
)
_ENDINGS = r"(?:s|es|ed|er|ers|ing|y|ty|ies)?"
_BLOCKED = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, _BLOCKED_STEMS), key=len, reverse=True))
                      + r")" + _ENDINGS + r"\b", re.IGNORECASE)
# matching is by whole word ("bass", "class", "cocktail" pass); these words a stem + ending would catch
_ALLOWED = frozenset({"spices", "spiced", "spicing"})  # "stab" is not listed: synth stabs


def blocked_words(text: str) -> list[str]:
    """The offending words in ``text`` (empty when it is fit for a public screen)."""
    return [m.group(0) for m in _BLOCKED.finditer(text) if m.group(0).lower() not in _ALLOWED]


def is_safe(text: str) -> bool:
    return not blocked_words(text)


def is_blocked_word(word: str) -> bool:
    """For vocabularies: one token."""
    return bool(_BLOCKED.fullmatch(word)) and word.lower() not in _ALLOWED
