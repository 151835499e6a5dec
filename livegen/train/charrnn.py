"""Train and evaluate the conditional Char-RNN (``livegen train charrnn``, ``livegen eval``)."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from livegen.errors import UserError
from livegen.music import conditioning, events
from livegen.music.events import Note
from livegen.train.data import Augment, WindowSampler, is_held_out, load_cached, window_tokens


VELOCITY_LEVELS = 8  # training quantises velocity to 8 of the 32 bins (see data.window_tokens)


def _torch_setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def _optimizer_state_tensors(opt) -> dict:
    out = {}
    for i, (_, st) in enumerate(opt.state_dict()["state"].items()):
        for k, v in st.items():
            out[f"{i}.{k}"] = v if hasattr(v, "shape") else __import__("torch").tensor(float(v))
    return out


def train(data: str, out: str, minutes: float, seq_len: int = 256, batch: int = 48, lr: float = 2e-3,
          seed: int = 0, threads: int = 2, resume: bool = True, log=print, config_overrides: dict | None = None,
          max_steps: int | None = None) -> dict:
    """Train until ``minutes`` pass (or ``max_steps``); keeps the checkpoint with the best held-out NLL.

    Resumes from ``out`` (weights and optimizer, beside it as ``.opt.safetensors``) when it exists.
    """
    torch = _torch_setup(threads)
    from safetensors.torch import load_file, save_file

    from livegen.models import checkpoint
    from livegen.models.charrnn import CharRNN, CharRNNConfig

    corpora = [load_cached(d) for d in data.split(",")]
    pieces = [(n, p) for c in corpora for n, p in c.pieces]
    train_notes = [p for n, p in pieces if not is_held_out(n)]
    val_notes = [p for n, p in pieces if is_held_out(n)] or train_notes[:1]
    skipped = sum(sum(c.skipped.values()) for c in corpora)
    log(f"corpus: {len(train_notes)} training pieces, {len(val_notes)} held out, {skipped} files skipped")

    torch.manual_seed(seed)
    out_path, opt_path = Path(out), Path(str(out) + ".opt.safetensors")
    state = {"step": 0, "tokens": 0, "best_val": math.inf, "seconds": 0.0}
    if resume and out_path.exists():
        model, meta = checkpoint.load(out_path)
        model.train()
        state.update(meta["extra"].get("train", {}))
        log(f"resuming from {out_path} at step {state['step']} (best held-out {state['best_val']:.3f})")
    else:
        model = CharRNN(CharRNNConfig(**(config_overrides or {})))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    if resume and out_path.exists() and opt_path.exists():
        saved = load_file(str(opt_path))
        sd = opt.state_dict()
        for i, p in enumerate(sd["param_groups"][0]["params"]):
            if f"{i}.exp_avg" in saved:
                sd["state"][p] = {k.split(".", 1)[1]: saved[k] for k in saved if k.startswith(f"{i}.")}
        opt.load_state_dict(sd)

    sampler = WindowSampler(train_notes, seq_len, seed + state["step"], Augment(), cond_off_prob=0.15)
    val = _validation_batches(val_notes, seq_len)
    deadline = time.monotonic() + minutes * 60
    loss_fn = torch.nn.CrossEntropyLoss()
    from tqdm import tqdm

    bar = tqdm(total=int(minutes * 60), unit="s", desc="train charrnn", file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}")
    started = time.monotonic()
    last_eval = started
    steps_here = 0
    while time.monotonic() < deadline and (max_steps is None or steps_here < max_steps):
        toks, cond = sampler.batch(batch)
        x = torch.from_numpy(toks)
        c = torch.from_numpy(cond)
        logits, _ = model(x[:, :-1], c[:, :-1])
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        steps_here += 1
        state["tokens"] += toks.shape[0] * seq_len
        bar.n = min(int(time.monotonic() - started), bar.total)
        bar.set_postfix_str(f"step {state['step']} loss {loss.item():.3f}")
        if time.monotonic() - last_eval > 120 or time.monotonic() >= deadline or (
                max_steps is not None and steps_here >= max_steps):
            v = _validate(model, val, torch)
            model.train()
            state["seconds"] += time.monotonic() - last_eval
            last_eval = time.monotonic()
            log(f"step {state['step']}: train loss {loss.item():.3f}, held-out NLL {v:.3f} nats/event")
            if v < state["best_val"]:
                state["best_val"] = v
                checkpoint.save(out_path, model, {"train": state, "data": data, "velocity_levels": VELOCITY_LEVELS})
                save_file({k: t.contiguous() for k, t in _optimizer_state_tensors(opt).items()}, str(opt_path))
    bar.close()
    return state


def _validation_batches(val_notes: list[list[Note]], seq_len: int, count: int = 64):
    rng = np.random.default_rng(1234)  # the same windows every time, so NLLs compare
    toks, conds = [], []
    for _ in range(count * 4):
        piece = val_notes[rng.integers(len(val_notes))]
        t, c = window_tokens(piece, int(rng.integers(0, max(1, len(piece) - 16))), seq_len, None, None)
        if len(t) == seq_len + 1:
            toks.append(t)
            conds.append(c)
        if len(toks) == count:
            break
    return np.stack(toks), np.stack(conds)


def _validate(model, val, torch) -> float:
    model.eval()
    toks, cond = val
    with torch.no_grad():
        x, c = torch.from_numpy(toks), torch.from_numpy(cond)
        logits, _ = model(x[:, :-1], c[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()


def evaluate(path: str, data: str, threads: int = 2, limit_pieces: int | None = None, batch: int = 16) -> dict:
    """Mean NLL in nats/event over every piece in ``data``, with conditioning and with it off.

    Pieces are encoded as the model was trained (velocity at the checkpoint's ``velocity_levels``)
    and batched by length, padding masked out (2-3x faster than one piece at a time).
    """
    torch = _torch_setup(threads)
    from livegen.models import checkpoint
    from livegen.music.corpus import load_corpus

    model, meta = checkpoint.load(path)
    coarse = meta["extra"].get("velocity_levels", events.VELOCITY_BINS) < events.VELOCITY_BINS
    corpus = load_corpus(data, workers=threads)
    pieces = corpus.pieces[:limit_pieces] if limit_pieces else corpus.pieces
    encoded = [window_tokens(notes, 0, 10**9, None, None, coarse_velocity=coarse) for _, notes in pieces]
    encoded = sorted((e for e in encoded if len(e[0]) >= 2), key=lambda e: len(e[0]))
    if not encoded:
        raise UserError(f"no events to evaluate in {data}")
    total = {"on": 0.0, "off": 0.0}
    count = 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch):
            group = encoded[i:i + batch]
            length = len(group[-1][0])
            x = torch.zeros(len(group), length, dtype=torch.long)
            cond = torch.zeros(len(group), length, conditioning.CONDITION_DIM)
            mask = torch.zeros(len(group), length - 1)
            for j, (tokens, c) in enumerate(group):
                x[j, :len(tokens)] = torch.from_numpy(tokens)
                cond[j, :len(tokens)] = torch.from_numpy(c)
                mask[j, :len(tokens) - 1] = 1.0
            off = torch.zeros_like(cond)
            off[..., conditioning.OFF_FLAG] = 1.0
            for mode, c in (("on", cond), ("off", off)):
                logits, _ = model(x[:, :-1], c[:, :-1])
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
                total[mode] += float((nll * mask).sum())
            count += int(mask.sum())
    return {
        "nll_nats_per_event": total["on"] / count,
        "nll_unconditioned_nats_per_event": total["off"] / count,
        "random_baseline_nats_per_event": math.log(events.VOCAB_SIZE),
        "events": count,
        "pieces": len(encoded),
        "skipped_files": dict(corpus.skipped),
        "model": str(path),
        "trained_steps": meta["extra"].get("train", {}).get("step"),
    }
