"""The commentary CVAE: a sentence VAE whose decoder is conditioned on ⟨z, a⟩ (Bowman et al. 2016,
as deephypebot used it for music writing).

Encoder: a bidirectional GRU over the words; its two final states and the attribute vector a
give μ and log σ² of z. Decoder: a GRU whose initial state comes from ⟨z, a⟩ and whose input at
every step is the previous word's embedding concatenated with ⟨z, a⟩, so the attributes cannot be
forgotten along the sentence. Against posterior collapse: the KL term is annealed in from 0 and
decoder inputs are dropped to <unk> (word dropout), so the decoder has to use z.

The checkpoint carries the word vocabulary and the attribute labels (in the config), the attribute
classifier used to measure agreement, and the LC-GAN that steers z (``lcgan.py``) when trained.
This is the torch module that trains and evaluates it; the commentary writes with the numpy
runtime of the same weights (``livegen/models/cvae.py``, via ``live()``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from livegen.models.cvae import CVAEConfig, LiveCVAE, sample_sentences
from livegen.models.lcgan import LCGANConfig
from livegen.models.nets import state_arrays
from livegen.models.nets.lcgan import LCGAN, AttributeClassifier
from livegen.models.words import SPECIALS, TOKENISER


class CVAE(nn.Module):
    kind = "cvae"

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = c = config
        v, a = len(c.words), len(c.attributes)
        self.index = {w: i for i, w in enumerate(c.words)}
        self.pad, self.unk, self.bos, self.eos = (self.index[s] for s in SPECIALS)
        self.embed = nn.Embedding(v, c.embed_dim, padding_idx=self.pad)
        self.encoder = nn.GRU(c.embed_dim, c.encoder_hidden, batch_first=True, bidirectional=True)
        self.to_latent = nn.Linear(2 * c.encoder_hidden + a, 2 * c.latent_dim)
        cond = c.latent_dim + a
        self.init_state = nn.Linear(cond, c.decoder_hidden)
        self.decoder = nn.GRU(c.embed_dim + cond, c.decoder_hidden, batch_first=True)
        self.out = nn.Linear(c.decoder_hidden, c.embed_dim)  # then the (tied) word embedding
        self.out_bias = nn.Parameter(torch.zeros(v))
        self.classifier = AttributeClassifier(v, a)
        self.lcgan = LCGAN(LCGANConfig(**c.lcgan)) if c.lcgan else None

    # --- encoding / decoding ---------------------------------------------------------------------

    def vocabulary(self) -> dict:
        """What the checkpoint header records in place of the music models' event vocabulary."""
        return {"tokeniser": TOKENISER, "words": len(self.config.words),
                "attributes": len(self.config.attributes)}

    def encode_words(self, sentences: list[list[str]]) -> torch.Tensor:
        """Token ids (B, T) ending in <eos>, padded; unknown words -> <unk>."""
        length = min(max(len(s) for s in sentences) + 1, self.config.max_len)
        ids = torch.full((len(sentences), length), self.pad, dtype=torch.long)
        for i, s in enumerate(sentences):
            row = [self.index.get(w, self.unk) for w in s][:length - 1] + [self.eos]
            ids[i, :len(row)] = torch.tensor(row)
        return ids

    def attribute_vector(self, labels) -> torch.Tensor:
        """Multi-hot (A,) over this model's attributes; labels it does not know are ignored."""
        vec = torch.zeros(len(self.config.attributes))
        for i, label in enumerate(self.config.attributes):
            if label in labels:
                vec[i] = 1.0
        return vec

    def _cond(self, z: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        if not self.config.use_attributes:
            attrs = torch.zeros_like(attrs)
        return torch.cat([z, attrs], dim=-1)

    def posterior(self, ids: torch.Tensor, attrs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ, log σ² of q(z | words, a)."""
        lengths = (ids != self.pad).sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.encoder(packed)  # (2, B, H)
        if not self.config.use_attributes:
            attrs = torch.zeros_like(attrs)
        mu, logvar = self.to_latent(torch.cat([h[0], h[1], attrs], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, inputs: torch.Tensor, z: torch.Tensor, attrs: torch.Tensor, state=None):
        """Logits (B, T, V) for next words given input ids (B, T) and ⟨z, a⟩; and the new state."""
        cond = self._cond(z, attrs)
        if state is None:
            state = torch.tanh(self.init_state(cond))[None]
        x = torch.cat([self.embed(inputs), cond[:, None].expand(-1, inputs.shape[1], -1)], dim=-1)
        h, state = self.decoder(x, state)
        return self.out(h) @ self.embed.weight.T + self.out_bias, state

    def forward(self, ids: torch.Tensor, attrs: torch.Tensor, word_dropout: float = 0.0, sample: bool = True,
                eps: torch.Tensor | None = None, uniform: torch.Tensor | None = None):
        """(reconstruction NLL summed per sentence (B,), KL per sentence (B,), tokens per sentence (B,)).

        ``eps`` (B, latent_dim) standard normal and ``uniform`` (B, ≥ T) in [0, 1): the draws for z and
        word dropout, from the global RNG when None. A trainer passes them so that each sentence gets
        the same draws however its batch is split over processes."""
        mu, logvar = self.posterior(ids, attrs)
        if sample:
            z = mu + (torch.randn_like(mu) if eps is None else eps) * (0.5 * logvar).exp()
        else:
            z = mu
        inputs = torch.cat([torch.full_like(ids[:, :1], self.bos), ids[:, :-1]], dim=1)
        if word_dropout > 0:
            u = torch.rand(inputs.shape, device=inputs.device) if uniform is None else uniform[:, :inputs.shape[1]]
            drop = (u < word_dropout) & (inputs != self.pad)
            drop[:, 0] = False  # keep <bos>
            inputs = inputs.masked_fill(drop, self.unk)
        logits, _ = self.decode(inputs, z, attrs)
        nll = F.cross_entropy(logits.transpose(1, 2), ids, ignore_index=self.pad, reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return nll, kl, (ids != self.pad).sum(1)

    def kl_weight(self, step: int) -> float:
        return min(1.0, step / max(1, self.config.kl_anneal_steps))

    # --- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, attrs: torch.Tensor, z: torch.Tensor, uniforms: torch.Tensor, temperature: float = 0.8,
               top_k: int = 30, banned: list[int] | None = None) -> list[list[str]]:
        """Sentences (as word lists, <eos> excluded) for attribute rows (B, A), codes (B, latent_dim) and
        uniforms (B, max_len) in [0, 1), one per word (see ``models/cvae.py``'s ``draw_words``).
        <unk>, <pad>, <bos> and ``banned`` ids are never drawn."""

        def step(token, state, rows):
            rows = torch.from_numpy(rows)
            logits, state = self.decode(torch.from_numpy(token)[:, None], z[rows], attrs[rows], state)
            return logits[:, 0].numpy(), state

        return sample_sentences(step, None, self.config, uniforms.numpy(), temperature, top_k, banned,
                                select=lambda state, kept: state[:, torch.from_numpy(kept)])

    def live(self) -> LiveCVAE:
        """The numpy runtime of these weights, as the commentary writes with them."""
        return LiveCVAE(self.config, state_arrays(self))
