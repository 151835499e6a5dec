"""The word tokeniser of the text models: what a sentence is as tokens, and back.

It sits with the models because a checkpoint is only valid for the tokeniser it was trained with
(``TOKENISER`` is stored in it and checked on load); the commentary and its trainer use it from here.
"""
from __future__ import annotations

import re

TOKENISER = "livegen-words-1"  # stored in checkpoints; bump when tokenize() changes
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)  # the first words of every vocabulary, in this order
MAX_SENTENCE_TOKENS = 40  # longer sentences are not trained on, so a model never writes one

_TOKEN = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*|[.,!?;:]")
_NO_SPACE_BEFORE = {".", ",", "!", "?", ";", ":"}


def tokenize(text: str) -> list[str]:
    """Lower-case words (hyphens and apostrophes kept inside a word) and sentence punctuation."""
    return [t.replace("’", "'") for t in _TOKEN.findall(text.lower())]


def detokenize(tokens: list[str]) -> str:
    """Readable text: no space before punctuation, capitals at sentence starts and for "I"."""
    out: list[str] = []
    capital = True
    for tok in tokens:
        word = "I" if tok == "i" else tok
        if capital and word[:1].isalpha():
            word = word[0].upper() + word[1:]
            capital = False
        if out and tok not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(word)
        if tok in (".", "!", "?"):
            capital = True
    return "".join(out)
