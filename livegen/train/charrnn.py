"""Train and evaluate the conditional Char-RNN (``livegen train charrnn``, ``livegen eval``)."""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np

from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.charrnn import CharRNNConfig
from livegen.music import conditioning, events
from livegen.music.corpus import beat_grid, load_corpus
from livegen.train import distributed
from livegen.train.data import PAD, TokenWindows, WindowOrder, training_pieces, validation_windows, window_tokens
from livegen.train.pieces import load_pieces
from livegen.train.resume import load_optimizer, optimizer_tensors, restore_optimizer, save_optimizer


VELOCITY_LEVELS = 8  # training quantises velocity to 8 of the 32 bins (see data.window_tokens)
DROPOUT_NOISE = 1  # the stream a sample's dropout masks are drawn from (see _dropout_noise)


def _torch_setup(threads: int):
    import torch  # the training runtime, loaded when training or evaluation starts

    torch.set_num_threads(threads)
    return torch


def train(data: str, out: str, minutes: float, seq_len: int = 256, batch: int = 48, lr: float = 2e-3,
          seed: int = 0, threads: int | None = None, resume: bool = True, log=print,
          config_overrides: dict | None = None, max_steps: int | None = None, device: str = "auto",
          accum: int = 1, eval_every: float = 120.0, progress: bool = True, init: str | None = None) -> dict:
    """Train until ``minutes`` pass (or ``max_steps``); keeps the checkpoint with the best held-out NLL;
    ``progress``: a progress bar on stderr. ``init``: a Char-RNN checkpoint of the same shape to start
    from (its weights only: a model moving to another time unit keeps what it knows of pitch).

    ``batch`` is the global batch of one optimizer step: split over the processes torchrun started
    and over ``accum`` micro-batches each, so the same ``batch`` trains the same model at any scale.
    Resumes from ``out`` (weights, optimizer beside it as ``.opt.safetensors``, and the position in
    the window order) when it exists. Validates every ``eval_every`` seconds and at the end.
    """
    with distributed.session(device, threads) as dist:
        return _train(dist, data, out, minutes, seq_len, batch, lr, seed, resume, log, config_overrides,
                      max_steps, accum, eval_every, progress and dist.main, init)


def _train(dist, data, out, minutes, seq_len, batch, lr, seed, resume, log, config_overrides, max_steps, accum,
           eval_every, progress, init):
    import torch  # the training runtime, loaded when training starts

    from livegen.models.nets.charrnn import CharRNN  # a torch model: loaded with the runtime

    say = log if dist.main else (lambda _: None)
    if accum < 1 or batch < 1 or batch % (dist.world * accum):
        raise UserError(f"--batch {batch} must be a multiple of processes x --accum ({dist.world} x {accum})")
    micro = batch // (dist.world * accum)
    pieces = load_pieces(dist, data, say)
    say(f"corpus: {int(training_pieces(pieces).sum())} training pieces, {int(pieces.held_out.sum())} held out, "
        f"{sum(pieces.skipped.values())} files skipped; {dist.world} process(es) on {dist.device.type}, "
        f"{micro} windows x {accum} micro-batch(es) each" + (", bf16 autocast" if dist.mixed_precision else ""))

    torch.manual_seed(seed)
    out_path, opt_path = Path(out), Path(str(out) + ".opt.safetensors")
    state = {"step": 0, "tokens": 0, "best_val": math.inf, "seconds": 0.0, "samples": 0}
    resuming = resume and out_path.exists()
    if resuming:
        model, meta = checkpoint.load(out_path)
        if model.kind != "charrnn":
            raise UserError(f"{out_path} holds a {model.kind} model, not a Char-RNN; choose another --out")
        wanted = (config_overrides or {}).get("time_unit", model.config.time_unit)
        if wanted != model.config.time_unit:
            raise UserError(f"{out_path} counts time in {model.config.time_unit}, not {wanted}: choose another --out "
                            "(or --no-resume to start it again)")
        saved_state = meta["extra"].get("train", {})
        state.update(saved_state)
        if "samples" not in saved_state:  # a checkpoint from before the window order
            state["samples"] = state["step"] * batch
        say(f"resuming from {out_path} at step {state['step']} (best held-out {state['best_val']:.3f})")
    else:
        model = CharRNN(CharRNNConfig(**(config_overrides or {})))
        if init:
            _start_from(model, init, say)
    model.to(dist.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    saved = load_optimizer(opt_path, state["step"], say) if resuming else None
    if saved:
        restore_optimizer(opt, saved)
    net = dist.wrap(model)

    time_unit = model.config.time_unit
    windows = TokenWindows(pieces, seq_len, seed, time_unit=time_unit)
    val = validation_windows(pieces, seq_len, time_unit=time_unit) if dist.main else None
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum")
    from tqdm import tqdm  # the progress bar: loaded when training starts

    bar = tqdm(total=int(minutes * 60), unit="s", desc="train charrnn", file=sys.stderr, disable=not progress,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}")
    started = time.monotonic()
    deadline = started + minutes * 60
    last_eval = started
    steps_here, timed_tokens, timed_seconds, train_loss = 0, 0.0, 0.0, math.nan

    def say_line(text: str) -> None:  # a line of its own, not glued to the progress bar
        bar.clear()
        say(text)
        bar.refresh()

    while True:
        now = time.monotonic()
        finished = now >= deadline or (max_steps is not None and steps_here >= max_steps)
        stop, evaluate_now = dist.agree(finished, finished or now - last_eval >= eval_every)  # one clock: rank 0's
        if evaluate_now and steps_here:
            v = _validate(model, val, torch, dist) if dist.main else math.nan
            model.train()
            state["seconds"] += time.monotonic() - last_eval
            last_eval = time.monotonic()
            rate = timed_tokens / timed_seconds if timed_seconds else math.nan
            state["tokens_per_second"] = round(rate, 1)
            say_line(f"step {state['step']}: train loss {train_loss:.3f}, held-out NLL {v:.3f} nats/event, "
                     f"{rate:.0f} tokens/s")
            if dist.main and v < state["best_val"]:
                state["best_val"] = v
                save_optimizer(opt_path, optimizer_tensors(opt), state["step"])
                checkpoint.save(out_path, model, {"train": state, "data": data, "velocity_levels": VELOCITY_LEVELS})
        if stop:
            break
        step_started = time.monotonic()
        local = WindowOrder.local(state["samples"], batch, dist.rank, dist.world)
        parts = [windows.batch(local[m * micro:(m + 1) * micro]) for m in range(accum)]
        targets_here = sum(int((toks[:, 1:] != PAD).sum()) for toks, _ in parts)
        targets = dist.all_sum(targets_here)  # the loss is a mean over the global batch's tokens
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for m, (toks, cond) in enumerate(parts):
            x = torch.from_numpy(toks).to(dist.device, non_blocking=True)
            c = torch.from_numpy(cond).to(dist.device, non_blocking=True)
            with dist.no_sync(net) if m < accum - 1 else contextlib.nullcontext():
                with dist.autocast():
                    noise = _dropout_noise(model.config, seed, local[m * micro:(m + 1) * micro], x.shape[1] - 1,
                                           dist.device)
                    logits, _ = net(x[:, :-1].clamp(min=0), c[:, :-1], dropout_noise=noise)
                    loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
                (loss * (dist.world / targets)).backward()  # DDP averages over processes: a global mean
            loss_sum += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_loss = loss_sum / max(targets_here, 1)
        state["step"] += 1
        state["samples"] += batch
        state["tokens"] += int(targets)
        steps_here += 1
        if steps_here > 1:  # the first step pays for start-up (allocations, DDP's first buckets)
            timed_tokens += targets
            timed_seconds += time.monotonic() - step_started
        bar.n = min(int(time.monotonic() - started), bar.total)
        bar.set_postfix_str(f"step {state['step']} loss {train_loss:.3f}")
    bar.close()
    return state


def _start_from(model, path: str, say) -> None:
    """``model`` given the weights of the Char-RNN checkpoint at ``path``, which must be of its shape."""
    start, _ = checkpoint.load(path)
    if start.kind != "charrnn":
        raise UserError(f"--init {path} is a {start.kind}, not a Char-RNN")
    mine, theirs = model.state_dict(), start.state_dict()
    if {k: tuple(v.shape) for k, v in mine.items()} != {k: tuple(v.shape) for k, v in theirs.items()}:
        raise UserError(f"--init {path} is a Char-RNN of another shape; start from one of the same size, or without --init")
    model.load_state_dict(theirs)
    say(f"starting from the weights of {path} (time unit {start.config.time_unit} -> {model.config.time_unit})")


def _dropout_noise(config, seed: int, positions, length: int, device):
    """The uniforms a micro-batch's dropout masks come from, one generator per sample keyed by its
    place in the whole run (seed, global position), so the masks follow the sample, not the process
    or micro-batch that trains it; None without dropout."""
    import torch  # the training runtime (see _train): only while training

    if not config.dropout:
        return None
    noise = torch.empty(config.layers, len(positions), length, config.hidden, device=device)
    for i, position in enumerate(positions):
        key = int(np.random.SeedSequence([seed, DROPOUT_NOISE, int(position)]).generate_state(1)[0])
        g = torch.Generator(device=device).manual_seed(key)
        noise[:, i] = torch.rand(config.layers, length, config.hidden, generator=g, device=device)
    return noise


def _validate(model, val, torch, dist) -> float:
    """Mean NLL (nats/event) over the fixed held-out windows, padding ignored."""
    model.eval()
    toks, cond = val
    with torch.no_grad(), dist.autocast():
        x, c = torch.from_numpy(toks).to(dist.device), torch.from_numpy(cond).to(dist.device)
        logits, _ = model(x[:, :-1].clamp(min=0), c[:, :-1])
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                 ignore_index=PAD).item()


def evaluate(path: str, data: str, threads: int = 2, limit_pieces: int | None = None, batch: int = 16) -> dict:
    """Mean NLL in nats/event over every piece in ``data``, with conditioning and with it off.

    Pieces are encoded as the model was trained (velocity at the checkpoint's ``velocity_levels``)
    and batched by length, padding masked out (2-3x faster than one piece at a time).
    """
    torch = _torch_setup(threads)
    model, meta = checkpoint.load(path)
    if model.kind != "charrnn":
        raise UserError(f"{path} is a {model.kind}: `livegen eval` measures a Char-RNN's (or the commentary "
                        f"model's) held-out NLL; the {model.kind}'s numbers are in `livegen bench`")
    coarse = meta["extra"].get("velocity_levels", events.VELOCITY_BINS) < events.VELOCITY_BINS
    in_beats = model.config.time_unit == "beats"
    corpus = load_corpus(data, workers=threads)
    pieces = corpus.pieces[:limit_pieces] if limit_pieces else corpus.pieces
    encoded = [window_tokens(notes, 0, 10**9, None, None, coarse_velocity=coarse,
                             beats=beat_grid(name, notes)[0] if in_beats else None) for name, notes in pieces]
    encoded = sorted((e for e in encoded if len(e[0]) >= 2), key=lambda e: len(e[0]))
    if not encoded:
        raise UserError(f"no events to evaluate in {data}")
    total = {"on": 0.0, "off": 0.0}
    count = notes = 0
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
            on = events.token_range("NOTE_ON")
            notes += int((((x[:, 1:] >= on.start) & (x[:, 1:] < on.stop)) * mask).sum())
    return {
        "nll_nats_per_event": total["on"] / count,
        "nll_unconditioned_nats_per_event": total["off"] / count,
        "nll_nats_per_note": total["on"] / max(notes, 1),  # compares models whose time steps differ
        "random_baseline_nats_per_event": math.log(events.VOCAB_SIZE),
        "events": count,
        "notes": notes,
        "pieces": len(encoded),
        "skipped_files": dict(corpus.skipped),
        "model": str(path),
        "time_unit": model.config.time_unit,
        "trained_steps": meta["extra"].get("train", {}).get("step"),
    }
