"""The commentary CVAE when it writes: its config, its sampling, and the numpy runtime of its decoder.

The CVAE is a sentence VAE whose decoder is conditioned on ⟨z, a⟩ (Bowman et al. 2016, as
deephypebot used it for music writing): a GRU whose initial state comes from ⟨z, a⟩ and whose
input at every step is the previous word's embedding concatenated with ⟨z, a⟩, so the attributes
cannot be forgotten along the sentence. Its encoder and training are the torch module's
(``nets/cvae.py``). The checkpoint carries the word vocabulary and the attribute labels (in the
config), the attribute classifier that ranks sentences, and the LC-GAN actor that steers z
(``lcgan.py``) when trained.

Sampling draws its randomness from numpy, z and one uniform per word (``draws``), and turns each
uniform into a word in ``draw_words``: the torch decoder and this one, given the same draws, write
the same sentences.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from livegen.models.arrays import Weights, gru_gates
from livegen.models.lcgan import LCGANConfig, LiveAttributeClassifier, LiveLCGAN, reward
from livegen.models.words import MAX_SENTENCE_TOKENS, SPECIALS


@dataclass
class CVAEConfig:
    words: list[str] = field(default_factory=lambda: list(SPECIALS))
    attributes: list[str] = field(default_factory=list)
    embed_dim: int = 192
    encoder_hidden: int = 192
    decoder_hidden: int = 384
    latent_dim: int = 32
    word_dropout: float = 0.3
    kl_anneal_steps: int = 2500  # β goes 0 -> 1 linearly over these steps
    use_attributes: bool = True  # False: the same decoder without a (the baseline it is measured against)
    max_len: int = MAX_SENTENCE_TOKENS + 1
    lcgan: dict | None = None  # LCGANConfig fields once the LC-GAN is trained


def special_ids(words: list[str]) -> tuple[int, int, int, int]:
    """The ids of <pad>, <unk>, <bos> and <eos> in a vocabulary."""
    return tuple(words.index(s) for s in SPECIALS)


def draws(rng: np.random.Generator, batch: int, config: CVAEConfig) -> tuple[np.ndarray, np.ndarray]:
    """The randomness of sampling ``batch`` sentences: z (B, latent_dim) from the prior, and a
    uniform (B, max_len) for each word ``draw_words`` picks."""
    z = rng.standard_normal((batch, config.latent_dim), dtype=np.float32)
    return z, rng.random((batch, config.max_len))


def draw_words(logits: np.ndarray, uniforms: np.ndarray, never: np.ndarray, temperature: float,
               top_k: int) -> np.ndarray:
    """Word ids (B,) from logits (B, V): each row's softmax at ``temperature``, over its ``top_k``
    likeliest words and never the ``never`` ones (a mask (V,)), inverted at its uniform (B,)."""
    scaled = np.where(never, -np.inf, logits.astype(np.float64)) / max(temperature, 1e-4)
    vocab = scaled.shape[-1]
    if top_k:
        k = min(top_k, vocab)
        kth = np.partition(scaled, vocab - k, axis=-1)[:, vocab - k:vocab - k + 1]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    cdf = np.cumsum(np.exp(scaled - scaled.max(-1, keepdims=True)), -1)
    chosen = (cdf <= (uniforms * cdf[:, -1])[:, None]).sum(-1)  # the first word whose cdf passes u
    return np.minimum(chosen, vocab - 1)


def sample_sentences(step, state, config: CVAEConfig, uniforms: np.ndarray, temperature: float = 0.8,
                     top_k: int = 30, banned: list[int] | None = None, select=None) -> list[list[str]]:
    """Sentences (word lists, <eos> excluded) from a decoder ``step(word ids (b,), state, rows) ->
    (logits (b, V) as numpy, state)`` that starts from ``state``: the one sampling loop the torch
    and numpy decoders share. ``rows`` are the batch rows still writing (b of them): a finished
    sentence is dropped from the batch, its state by ``select(state, kept mask (b,))`` (default:
    ``state[kept]``). <unk>, <pad>, <bos> and ``banned`` ids are never drawn."""
    words = config.words
    pad, unk, bos, eos = special_ids(words)
    never = np.zeros(len(words), dtype=bool)
    never[[pad, unk, bos] + list(banned or [])] = True
    select = select or (lambda s, kept: s[kept])
    batch = len(uniforms)
    rows = np.arange(batch)
    token = np.full(batch, bos)
    out = np.full((batch, config.max_len), pad)
    for t in range(config.max_len):
        logits, state = step(token, state, rows)
        token = draw_words(logits, uniforms[rows, t], never, temperature, top_k)
        out[rows, t] = token
        writing = token != eos
        if not writing.all():
            if not writing.any():
                break
            rows, token, state = rows[writing], token[writing], select(state, writing)
    sentences = []
    for row in out.tolist():
        end = next((t for t, i in enumerate(row) if i in (eos, pad)), len(row))
        sentences.append([words[i] for i in row[:end]])
    return sentences


class LiveCVAE:
    """The decoder, the LC-GAN actor and the attribute classifier in numpy: the commentary's runtime."""

    kind = "cvae"

    def __init__(self, config: CVAEConfig, arrays: dict[str, np.ndarray]):
        """From the torch module's state_dict as numpy arrays (a checkpoint's, or ``CVAE.live()``);
        the encoder's weights are not used."""
        self.config = c = config
        w = Weights(arrays)
        v, a, e, h = len(c.words), len(c.attributes), c.embed_dim, c.decoder_hidden
        cond = c.latent_dim + a
        self.index = {word: i for i, word in enumerate(c.words)}
        self.pad, self.unk, self.bos, self.eos = special_ids(c.words)
        self.embed = w("embed.weight", v, e)
        self.embed_t = np.ascontiguousarray(self.embed.T)  # the output layer is tied to the embedding
        self.init_state = w("init_state.weight", h, cond), w("init_state.bias", h)
        weight_ih = w("decoder.weight_ih_l0", 3 * h, e + cond)
        # a word's share of the GRU's input gates, once per word: sampling adds the condition's share
        self.word_gates = self.embed @ weight_ih[:, :e].T
        self.cond_gates = np.ascontiguousarray(weight_ih[:, e:].T), w("decoder.bias_ih_l0", 3 * h)
        self.recurrent = w("decoder.weight_hh_l0", 3 * h, h), w("decoder.bias_hh_l0", 3 * h)
        self.out = w("out.weight", e, h), w("out.bias", e)
        self.out_bias = w("out_bias", v)
        self.classifier = LiveAttributeClassifier(w.under("classifier."), v, a, self.pad)
        self.lcgan = LiveLCGAN(LCGANConfig(**c.lcgan), w.under("lcgan.")) if c.lcgan else None

    def attribute_vector(self, labels) -> np.ndarray:
        """Multi-hot (A,) over this model's attributes; labels it does not know are ignored."""
        return np.array([label in labels for label in self.config.attributes], dtype=np.float32)

    def word_ids(self, sentence: list[str]) -> list[int]:
        """A sentence's ids as the classifier was trained on them: unknown words -> <unk>, then <eos>."""
        return [self.index.get(word, self.unk) for word in sentence][:self.config.max_len - 1] + [self.eos]

    def sample(self, attrs: np.ndarray, z: np.ndarray, uniforms: np.ndarray, temperature: float = 0.8,
               top_k: int = 30, banned: list[int] | None = None) -> list[list[str]]:
        """Sentences for attribute rows (B, A), codes (B, latent_dim) and uniforms (B, max_len)."""
        if not self.config.use_attributes:
            attrs = np.zeros_like(attrs)
        cond = np.concatenate([z, attrs], -1).astype(np.float32)
        weight, bias = self.init_state
        out_w, out_b = self.out
        cond_gates = cond @ self.cond_gates[0] + self.cond_gates[1]

        def step(token: np.ndarray, state: np.ndarray, rows: np.ndarray):
            state = gru_gates(self.word_gates[token] + cond_gates[rows], state, *self.recurrent)
            return (state @ out_w.T + out_b) @ self.embed_t + self.out_bias, state

        return sample_sentences(step, np.tanh(cond @ weight.T + bias), self.config, uniforms, temperature, top_k,
                                banned)

    def reward(self, sentences: list[list[str]], attrs: np.ndarray) -> np.ndarray:
        """(B,) how much each sentence speaks of its attribute row (B, A), by the classifier."""
        return reward(self.classifier.probabilities([self.word_ids(s) for s in sentences]), attrs)
