"""The conditional Char-RNN on the live path: its config and its numpy runtime.

An LSTM over performance events, conditioned at every step: the condition enters concatenated to
each input embedding, through the initial state, and straight into the output layer, so a change
of controls moves the very next token. The torch module it is trained as is ``nets/charrnn.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livegen.models.arrays import Weights, sigmoid
from livegen.music import conditioning, events


@dataclass
class CharRNNConfig:
    vocab_size: int = events.VOCAB_SIZE
    cond_dim: int = conditioning.CONDITION_DIM
    embed_dim: int = 192
    hidden: int = 320
    layers: int = 2
    dropout: float = 0.1
    time_unit: str = "seconds"  # what a TIME_SHIFT step is (events.TIME_UNITS): 10 ms, or 1/12 beat

    def __post_init__(self):
        if self.time_unit not in events.TIME_UNITS:
            raise ValueError(f"time_unit {self.time_unit!r} is not one of {', '.join(events.TIME_UNITS)}")


class LiveCharRNN:
    """Batch-1 single-step inference in numpy, for the real-time path.

    torch spends most of a single LSTM step in dispatch overhead; here the token's input
    projection is a table lookup and each layer is two small mat-vecs (several times faster,
    measured in ``livegen bench``). The state is an immutable pair of arrays, so saving it for
    rollback costs nothing.
    """

    kind = "charrnn"
    name = "charrnn"  # what it was loaded as (``checkpoint.load_model``): a take records it, to replay with it

    def __init__(self, config: CharRNNConfig, arrays: dict[str, np.ndarray]):
        """From the torch module's state_dict as numpy arrays (a checkpoint's, or ``CharRNN.live()``)."""
        self.config = c = config
        w = Weights(arrays)
        v, e, h, cond, gates = c.vocab_size, c.embed_dim, c.hidden, c.cond_dim, 4 * c.hidden
        self.layers, self.hidden = c.layers, h
        w_ih0 = w("lstm.weight_ih_l0", gates, e + cond)
        # token -> its contribution to layer 0's gates, biases folded in
        self.token_gates = (w("embed.weight", v, e) @ w_ih0[:, :e].T + w("lstm.bias_ih_l0", gates)
                            + w("lstm.bias_hh_l0", gates))
        self.cond_gates0 = np.ascontiguousarray(w_ih0[:, e:])
        self.w_ih = [None] + [w(f"lstm.weight_ih_l{i}", gates, h) for i in range(1, c.layers)]
        self.b = [None] + [w(f"lstm.bias_ih_l{i}", gates) + w(f"lstm.bias_hh_l{i}", gates) for i in range(1, c.layers)]
        self.w_hh = [w(f"lstm.weight_hh_l{i}", gates, h) for i in range(c.layers)]
        self.head_w, self.head_b = w("head.weight", v, h), w("head.bias", v)
        self.cond_head = w("cond_head.weight", v, cond)
        states = 2 * c.layers * h  # h and c of every layer
        self.init_w, self.init_b = w("init_state.weight", states, cond), w("init_state.bias", states)

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
            c = sigmoid(f) * c_prev[layer] + sigmoid(i) * np.tanh(g)
            x = sigmoid(o) * np.tanh(c)
            h_new[layer], c_new[layer] = x, c
        return self.head_w @ x + self.head_b + conditioned[1], (h_new, c_new)
