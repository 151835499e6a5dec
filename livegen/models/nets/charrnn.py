"""The conditional Char-RNN as torch trains it: an LSTM over performance events, conditioned at every step.

The condition enters three ways: concatenated to each input embedding, through the initial
state, and straight into the output layer, so a change of controls moves the very next token.
Live, the same weights run in numpy (``livegen/models/charrnn.py``, via ``live()``).
"""
from __future__ import annotations

import torch
from torch import nn

from livegen.models.charrnn import CharRNNConfig, LiveCharRNN
from livegen.models.nets import state_arrays

State = tuple[torch.Tensor, torch.Tensor]


class CharRNN(nn.Module):
    kind = "charrnn"

    def __init__(self, config: CharRNNConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.lstm = nn.LSTM(c.embed_dim + c.cond_dim, c.hidden, c.layers, batch_first=True,
                            dropout=c.dropout if c.layers > 1 else 0.0)
        self.init_state = nn.Linear(c.cond_dim, 2 * c.layers * c.hidden)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)
        self.cond_head = nn.Linear(c.cond_dim, c.vocab_size, bias=False)

    def initial_state(self, cond: torch.Tensor) -> State:
        """State before the first token, from the first condition (B, C)."""
        c = self.config
        hc = torch.tanh(self.init_state(cond)).view(cond.shape[0], 2, c.layers, c.hidden)
        return hc[:, 0].transpose(0, 1).contiguous(), hc[:, 1].transpose(0, 1).contiguous()

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor, state: State | None = None,
                dropout_noise: torch.Tensor | None = None):
        """tokens (B, T) long, cond (B, T, C) -> logits (B, T, V), state.

        ``dropout_noise`` (training): uniforms (layers, B, T, hidden) the dropout masks after each
        LSTM layer are drawn from, in place of the process's random stream, so that a sample's masks
        are its own whichever process trains it (a 2-process run then equals a 1-process one)."""
        if state is None:
            state = self.initial_state(cond[:, 0])
        x = torch.cat([self.embed(tokens), cond], dim=-1)
        if dropout_noise is None:
            h, state = self.lstm(x, state)
            return self.head(self.drop(h)) + self.cond_head(cond), state
        h, state = self._lstm_with_masks(x, state, dropout_noise)
        return self.head(h) + self.cond_head(cond), state

    def _lstm_with_masks(self, x: torch.Tensor, state: State, noise: torch.Tensor):
        """``self.lstm`` one layer at a time (the same kernel nn.LSTM runs), each layer's output
        dropped where its noise is below the dropout rate, as nn.LSTM and ``self.drop`` would."""
        keep = 1.0 - self.config.dropout
        hs, cs = [], []
        for k in range(self.config.layers):
            weights = [getattr(self.lstm, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            x, h, c = torch.lstm(x, (state[0][k:k + 1], state[1][k:k + 1]), weights, True, 1, 0.0, self.training,
                                 False, True)
            x = x * (noise[k] < keep).to(x.dtype) / keep
            hs.append(h)
            cs.append(c)
        return x, (torch.cat(hs), torch.cat(cs))

    @torch.no_grad()
    def step(self, token: torch.Tensor, cond: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One token: token (B,), cond (B, C) -> logits (B, V), new state. Live use takes ``live()``."""
        logits, state = self.forward(token[:, None], cond[:, None], state)
        return logits[:, 0], state

    def live(self) -> LiveCharRNN:
        """The numpy runtime of these weights, as the live engine runs them."""
        return LiveCharRNN(self.config, state_arrays(self))
