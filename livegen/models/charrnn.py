"""The conditional Char-RNN: an LSTM over performance events, conditioned at every step.

The condition enters three ways: concatenated to each input embedding, through the initial
state, and straight into the output layer, so a change of controls moves the very next token.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from livegen.music import conditioning, events


@dataclass
class CharRNNConfig:
    vocab_size: int = events.VOCAB_SIZE
    cond_dim: int = conditioning.CONDITION_DIM
    embed_dim: int = 192
    hidden: int = 320
    layers: int = 2
    dropout: float = 0.1


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

    def live(self) -> "LiveCharRNN":
        return LiveCharRNN(self)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class LiveCharRNN:
    """Batch-1 single-step inference in numpy, for the real-time path.

    torch spends most of a single LSTM step in dispatch overhead; here the token's input
    projection is a table lookup and each layer is two small mat-vecs (several times faster,
    measured in ``livegen bench``). The state is an immutable pair of arrays, so saving it for
    rollback costs nothing.
    """

    def __init__(self, model: CharRNN):
        c = model.config
        w = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        e = c.embed_dim
        self.layers, self.hidden = c.layers, c.hidden
        w_ih0 = w["lstm.weight_ih_l0"]
        # token -> its contribution to layer 0's gates, biases folded in
        self.token_gates = w["embed.weight"] @ w_ih0[:, :e].T + w["lstm.bias_ih_l0"] + w["lstm.bias_hh_l0"]
        self.cond_gates0 = np.ascontiguousarray(w_ih0[:, e:])
        self.w_ih = [None] + [w[f"lstm.weight_ih_l{i}"] for i in range(1, c.layers)]
        self.b = [None] + [w[f"lstm.bias_ih_l{i}"] + w[f"lstm.bias_hh_l{i}"] for i in range(1, c.layers)]
        self.w_hh = [w[f"lstm.weight_hh_l{i}"] for i in range(c.layers)]
        self.head_w, self.head_b = w["head.weight"], w["head.bias"]
        self.cond_head = w["cond_head.weight"]
        self.init_w, self.init_b = w["init_state.weight"], w["init_state.bias"]

    def initial_state(self, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hc = np.tanh(self.init_w @ cond + self.init_b).reshape(2, self.layers, self.hidden)
        return hc[0].copy(), hc[1].copy()

    def condition(self, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-condition terms, computed once per control setting, not per token."""
        return self.cond_gates0 @ cond, self.cond_head @ cond

    def step(self, token: int, conditioned: tuple[np.ndarray, np.ndarray], state):
        """(logits, new state) for one input token under ``condition(cond)``."""
        h_prev, c_prev = state
        h_new, c_new = np.empty_like(h_prev), np.empty_like(c_prev)
        x = None
        for layer in range(self.layers):
            if layer == 0:
                gates = self.token_gates[token] + conditioned[0] + self.w_hh[0] @ h_prev[0]
            else:
                gates = self.w_ih[layer] @ x + self.b[layer] + self.w_hh[layer] @ h_prev[layer]
            i, f, g, o = np.split(gates, 4)
            c = _sigmoid(f) * c_prev[layer] + _sigmoid(i) * np.tanh(g)
            x = _sigmoid(o) * np.tanh(c)
            h_new[layer], c_new[layer] = x, c
        return self.head_w @ x + self.head_b + conditioned[1], (h_new, c_new)
