"""Train the DCRNN (``livegen train dcrnn``): piano-roll windows on a 16th-note grid, VAE pretraining,
then WGAN-GP; objective metrics as in MuseGAN.

The grid comes from the dataset's beat annotations when a ``beat_midi.txt`` lies beside a MIDI
file (POP909: beat time, and a 4/4 downbeat flag in the third column), else from the file's first
tempo (4/4 from time 0): ``music.corpus.beat_grid``. Windows start on downbeats and span two
segments; pitches outside the roll's range are folded in by octaves.

Why VAE pretraining: a GAN generator trained from scratch in half an hour of one CPU core gives
noise or one repeated bar. As the decoder of a small VAE (reconstruction + KL to N(0, I)) it learns
in minutes to turn prior samples into plausible rolls; the WGAN-GP phase then sharpens them, with
the reconstruction term kept so it cannot collapse onto a few modes.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import mido
import numpy as np

from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.dcrnn import DCRNNConfig
from livegen.music.corpus import beat_grid
from livegen.music.roll import Roll, grid_edges, roll_notes, roll_window, to_roll
from livegen.train import distributed
from livegen.train.data import WindowOrder, is_held_out, load_cached, training_pieces
from livegen.train.pieces import load_pieces
from livegen.train.resume import load_optimizer, optimizer_tensors, restore_optimizer, save_optimizer

BETA = 1.0  # KL per roll cell vs the per-cell reconstruction: about half the ELBO's weight, keeps every z dim in use
PLAYED_DIMS = 8  # z dims 0..7, the ones the performer plays by default, pay a lower KL price ...
PLAYED_KL_FACTOR = 0.3  # ... so the encoder puts most of a segment's identity there: gestures steer more
ONSET_WEIGHT = 2.0
GP_WEIGHT = 10.0
ADVERSARIAL_WEIGHT = 0.01  # the critic's gradient is ~1 per window, the per-cell BCE's ~100x smaller
CRITIC_STEPS = 3
PRETRAIN_FRACTION = 0.6


# --- the corpus on the 16th-note grid (the roll itself: livegen/music/roll.py) ---------------------

def load_rolls(data: str, config, log=print, held_out_only: bool = False) -> tuple[list[Roll], list[Roll]]:
    """(training rolls, held-out rolls) of every corpus in ``data`` (comma-separated folders)."""
    corpora = [load_cached(d) for d in data.split(",")]
    train, held = [], []
    for corpus in corpora:
        for name, notes in corpus.pieces:
            if held_out_only and not is_held_out(name):
                continue
            beats, downbeats = beat_grid(name, notes)
            if len(beats) < 9:
                continue
            roll = to_roll(notes, beats, downbeats, config.low_pitch, config.pitches, config.steps_per_beat)
            (held if is_held_out(name) else train).append(roll)
    if not train and not (held_out_only and held):
        raise UserError(f"no piece in {data} is long enough for DCRNN windows")
    log(f"corpus: {len(train)} training pieces, {len(held)} held out")
    return train, held or train[:1]


def _transpose(w: np.ndarray, shift: int) -> np.ndarray:
    """A window moved ``shift`` rows up (down when negative); rows moved out are lost."""
    if shift > 0:
        w[..., shift:], w[..., :shift] = w[..., :-shift].copy(), 0.0
    elif shift < 0:
        w[..., :shift], w[..., shift:] = w[..., -shift:].copy(), 0.0
    return w


class RollWindows:
    """The DCRNN's windows of a piece set, in the global window order (see data.WindowOrder): every
    window that starts on a downbeat and fits in its piece, once per epoch, transposed by up to
    ``transpose`` semitones. ``held_out`` picks the held-out pieces instead of the training ones."""

    def __init__(self, pieces, config, seed: int, transpose: int = 3, held_out: bool = False):
        self.pieces, self.c, self.transpose = pieces, config, transpose
        self.steps = 2 * config.segment_steps
        chosen = pieces.held_out.copy() if held_out else training_pieces(pieces)
        if held_out and not chosen.any():  # no held-out piece: measure on the first training piece
            chosen[np.flatnonzero(training_pieces(pieces))[:1]] = True
        counts = np.zeros(len(pieces), dtype=np.int64)
        for i in np.flatnonzero(chosen):
            counts[i] = len(self._starts(i))
        if not counts.any():
            raise UserError("no window of the training length fits in any piece (too short, or no beat grid)")
        self.order = WindowOrder(counts, seed)

    def _starts(self, i: int) -> np.ndarray:
        beats, downbeats = self.pieces.beats(i)
        if len(beats) < 9:
            return np.zeros(0, dtype=np.int64)
        frames = (len(beats) - 1) * self.c.steps_per_beat + 1
        starts = downbeats * self.c.steps_per_beat
        return starts[starts + self.steps <= frames]

    def window(self, i: int, k: int, shift: int = 0) -> np.ndarray:
        beats, _ = self.pieces.beats(i)
        edges = grid_edges(beats, self.c.steps_per_beat)
        w = roll_window(self.pieces.notes(i), edges, int(self._starts(i)[k]), self.steps, self.c.low_pitch,
                        self.c.pitches)
        return _transpose(w, shift)

    def sample(self, g: int) -> np.ndarray:
        piece, k, _ = self.order.locate(g)
        shift = int(self.order.rng(g).integers(-self.transpose, self.transpose + 1))
        return self.window(piece, k, shift)

    def batch(self, positions) -> np.ndarray:
        """(len(positions), 2, steps, pitches) float32."""
        return np.stack([self.sample(g) for g in positions])

    def fixed(self, count: int, seed: int = 1234) -> np.ndarray:
        """The same untransposed windows every time (held-out metrics compare across checkpoints)."""
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(self.order.total, min(count, self.order.total), replace=False))
        out = []
        for w in picks:
            piece = int(np.searchsorted(self.order.first, w, side="right") - 1)
            out.append(self.window(piece, int(w - self.order.first[piece])))
        return np.stack(out)


class WindowSampler:
    """Random windows starting on downbeats, transposed by up to ``transpose`` semitones."""

    def __init__(self, rolls: list[Roll], steps: int, seed: int, transpose: int = 3):
        self.steps, self.transpose = steps, transpose
        self.starts = [(i, int(d)) for i, r in enumerate(rolls) for d in r.downbeats if d + steps <= len(r.sounding)]
        if not self.starts:
            raise UserError("no window of the training length fits in any piece")
        self.rolls = rolls
        self.rng = np.random.default_rng(seed)

    def window(self, i: int, start: int, shift: int = 0) -> np.ndarray:
        r = self.rolls[i]
        w = np.stack([r.sounding[start:start + self.steps], r.onset[start:start + self.steps]]).astype(np.float32)
        return _transpose(w, shift)

    def batch(self, size: int) -> np.ndarray:
        """(size, 2, steps, pitches) float32."""
        picks = self.rng.integers(0, len(self.starts), size)
        shifts = self.rng.integers(-self.transpose, self.transpose + 1, size)
        return np.stack([self.window(*self.starts[k], int(s)) for k, s in zip(picks, shifts)])

    def fixed(self, count: int, seed: int = 1234) -> np.ndarray:
        """The same windows every time (held-out metrics compare across checkpoints)."""
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(self.starts), min(count, len(self.starts)), replace=False)
        return np.stack([self.window(*self.starts[k]) for k in picks])


# --- the MuseGAN metrics ---------------------------------------------------------------------------

def roll_metrics(windows: np.ndarray, steps_per_bar: int, threshold: float = 0.5,
                 onset_threshold: float = 0.5) -> dict:
    """MuseGAN's objective metrics per bar (empty-bar ratio, used pitch classes, qualified-note ratio),
    polyphony (sounding pitches per non-silent frame) and notes per bar.

    On a 16th grid every note lasts at least a 32nd, so the qualified-note ratio is 1 by construction;
    ``one_step_note_ratio`` (notes a single 16th long) is the informative counterpart."""
    empty, pcs, notes_per_bar, poly = [], [], [], []
    short, total = 0, 0
    for w in windows:
        notes = roll_notes(w[0], w[1], threshold, onset_threshold)
        active = w[0] >= threshold
        for b in range(0, w.shape[1] - steps_per_bar + 1, steps_per_bar):
            bar = [n for n in notes if b <= n[0] < b + steps_per_bar]
            empty.append(not bar)
            pcs.append(len({n[2] % 12 for n in bar}))
            notes_per_bar.append(len(bar))
        frame_poly = active.sum(1)
        poly.extend(frame_poly[frame_poly > 0].tolist())
        total += len(notes)
        short += sum(1 for s, e, _ in notes if e - s == 1)
    return {"empty_bar_ratio": round(float(np.mean(empty)), 3),
            "pitch_classes_per_bar": round(float(np.mean(pcs)), 2),
            "qualified_note_ratio": 1.0 if total else 0.0,
            "one_step_note_ratio": round(short / max(total, 1), 3),
            "polyphony": round(float(np.mean(poly)) if poly else 0.0, 2),
            "notes_per_bar": round(float(np.mean(notes_per_bar)), 2)}


# --- training -------------------------------------------------------------------------------------

def calibrate_thresholds(probs: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """Thresholds that make generated rolls as dense as real ones: the probability quantiles at the
    real fractions of sounding and onset cells. Keeps bars neither empty nor a wall of notes."""
    out = []
    for ch in (0, 1):
        fraction = float(real[:, ch].mean())
        out.append(float(np.quantile(probs[:, ch], 1.0 - fraction)) if fraction > 0 else 0.5)
    return out[0], out[1]


def prior_windows(model, count: int, seed: int, torch) -> np.ndarray:
    """Generated windows (count, 2, 2 segments, pitches) of probabilities, a fresh z per segment."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    beats = c.beats_per_bar * c.bars_per_segment
    z = torch.randn(count, 2, c.z_dim, generator=g).repeat_interleave(beats, 1)
    with torch.no_grad():
        logits, _ = model.generator(z.to(next(model.parameters()).device))
    return torch.sigmoid(logits).permute(0, 2, 1, 3).cpu().numpy()


def write_sample(path: Path, window: np.ndarray, config, bpm: float = 120.0) -> int:
    """A window of probabilities as a MIDI file, decoded as the live engine does; returns the note count."""
    notes = roll_notes(window[0], window[1], config.threshold, config.onset_threshold)
    ticks_per_step = 120
    midi = mido.MidiFile(ticks_per_beat=ticks_per_step * config.steps_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=int(60e6 / bpm)))
    events = sorted([(s * ticks_per_step, 1, p) for s, _, p in notes]
                    + [(e * ticks_per_step, 0, p) for _, e, p in notes])
    now = 0
    for tick, on, p in events:
        track.append(mido.Message("note_on" if on else "note_off", note=config.low_pitch + p,
                                  velocity=80 if on else 0, time=tick - now))
        now = tick
    midi.save(path)
    return len(notes)


class BatchNoise:
    """The random draws of one training step (reparameterisation, fake z, GP mixing) for this
    process's rows of the global batch: drawn for the whole global batch from a generator keyed by
    (seed, step, use), then sliced, so every sample gets the same numbers whatever the number of
    processes and micro-batches. That is what makes a 2-process run equal a 1-process one."""

    EPS, ADV_Z, CRITIC_Z, CRITIC_ALPHA = 0, 1, 10, 20  # uses; critic iteration k adds k

    def __init__(self, seed: int, step: int, global_rows: int, rows: range, device):
        self.seed, self.step, self.global_rows, self.rows, self.device = seed, step, global_rows, rows, device

    def _draw(self, use: int, shape: tuple, uniform: bool):
        import torch  # the training runtime (see _train): drawn only while training

        key = int(np.random.SeedSequence([self.seed, self.step, use]).generate_state(1)[0])
        g = torch.Generator().manual_seed(key)
        full = (torch.rand if uniform else torch.randn)(self.global_rows, *shape, generator=g)
        return full[self.rows.start:self.rows.stop].to(self.device)

    def normal(self, use: int, *shape: int):
        return self._draw(use, shape, uniform=False)

    def uniform(self, use: int, *shape: int):
        return self._draw(use, shape, uniform=True)


def train(data: str, out: str, minutes: float, batch: int = 32, lr: float = 1e-3, seed: int = 0,
          threads: int | None = None, resume: bool = True, log=print, max_steps: int | None = None,
          config_overrides: dict | None = None, device: str = "auto", accum: int = 1,
          progress: bool = True) -> dict:
    """Train for ``minutes`` (or ``max_steps``): the first 60 % as a VAE, then WGAN-GP (a resumed GAN
    phase stays GAN). Every 3 minutes and at the end: thresholds calibrated, sample MIDI files in
    ``<out>-samples/``, metrics vs held-out; the weights (and the optimizers beside them,
    ``.opt.safetensors``) are written when the metrics are the closest to real music so far.
    ``progress``: a progress bar on stderr.

    ``batch`` is the global batch (over torchrun's processes and ``accum`` micro-batches each)."""
    with distributed.session(device, threads) as dist:
        return _train(dist, data, out, minutes, batch, lr, seed, resume, log, max_steps, config_overrides, accum,
                      progress and dist.main)


def _train(dist, data, out, minutes, batch, lr, seed, resume, log, max_steps, config_overrides, accum,
           progress) -> dict:
    import torch  # the training runtime, loaded when training starts: the windows and metrics above need only numpy

    from livegen.models.nets.dcrnn import DCRNN  # a torch model: loaded with the runtime

    say_any = log if dist.main else (lambda _: None)
    if accum < 1 or batch < 1 or batch % (dist.world * accum):
        raise UserError(f"--batch {batch} must be a multiple of processes x --accum ({dist.world} x {accum})")
    micro = batch // (dist.world * accum)
    torch.manual_seed(seed)
    out_path, opt_path = Path(out), Path(str(out) + ".opt.safetensors")
    samples_dir = out_path.with_name(out_path.stem + "-samples")
    state = {"step": 0, "phase": "vae", "seconds": 0.0, "best": math.inf, "samples": 0}
    resuming = resume and out_path.exists()
    if resuming:
        model, meta = checkpoint.load(out_path)
        if model.kind != "dcrnn":
            raise UserError(f"{out_path} holds a {model.kind} model, not a DCRNN; choose another --out")
        saved_state = meta["extra"].get("train", {})
        state.update(saved_state)
        if "samples" not in saved_state:  # a checkpoint from before the window order
            state["samples"] = state["step"] * batch
        say_any(f"resuming from {out_path} at step {state['step']} ({state['phase']} phase)")
    else:
        model = DCRNN(DCRNNConfig(**(config_overrides or {})))
    model.to(dist.device).train()
    dist.broadcast_parameters(model)
    c = model.config
    pieces = load_pieces(dist, data, say_any)
    windows = RollWindows(pieces, c, seed)
    held = RollWindows(pieces, c, 0, transpose=0, held_out=True).fixed(128) if dist.main else None
    say_any(f"corpus: {int((np.diff(windows.order.first) > 0).sum())} training pieces, {windows.order.total} "
            f"windows; {dist.world} process(es) on {dist.device.type}, {micro} windows x {accum} micro-batch(es) "
            "each" + (", bf16 autocast" if dist.mixed_precision else ""))
    gen_params = list(model.generator.parameters()) + list(model.encoder.parameters())
    opts = {"gen": torch.optim.Adam(gen_params, lr, betas=(0.5, 0.9)),
            "critic": torch.optim.Adam(model.critic.parameters(), lr, betas=(0.5, 0.9))}
    saved = load_optimizer(opt_path, state["step"], say_any) if resuming else None
    if saved:
        for name, opt in opts.items():
            restore_optimizer(opt, saved, f"{name}.")

    from tqdm import tqdm  # the progress bar: loaded when training starts

    total = int(minutes * 60)
    bar = tqdm(total=total, unit="s", desc="train dcrnn", file=sys.stderr, disable=not progress,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}")
    started = time.monotonic()
    last_save = started
    steps_here = 0
    losses: dict = {}

    def say(text: str) -> None:  # a line of its own, not glued to the progress bar
        bar.clear()
        say_any(text)
        bar.refresh()

    def sync(params) -> None:
        dist.average_gradients(params)

    while True:
        elapsed = time.monotonic() - started
        finished = elapsed >= total or (max_steps is not None and steps_here >= max_steps)
        pretrained = elapsed >= PRETRAIN_FRACTION * total or (
            max_steps is not None and steps_here >= PRETRAIN_FRACTION * max_steps)
        stop, save_now, to_gan = dist.agree(finished, finished or time.monotonic() - last_save > 180,
                                            state["phase"] == "vae" and pretrained)  # one clock: rank 0's
        if save_now and steps_here:
            state["seconds"] += time.monotonic() - last_save
            last_save = time.monotonic()
            if dist.main:
                metrics = _checkpoint(model, held, state, samples_dir, torch)
                distance = metrics_distance(metrics["generated"], metrics["real"])
                kept = distance < state["best"]
                if kept:
                    state["best"] = distance
                    tensors = {k: v for name, opt in opts.items() for k, v in optimizer_tensors(opt, f"{name}.").items()}
                    save_optimizer(opt_path, tensors, state["step"])
                    checkpoint.save(out_path, model, {"train": state, "data": data, "metrics": metrics})
                model.train()
                say(f"step {state['step']}: " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
                    + f"; generated {metrics['generated']}; held-out {metrics['real']}; distance {distance:.2f}"
                    + (" (kept)" if kept else ""))
        if stop:
            break
        if to_gan:
            state["phase"] = "gan"
            say(f"step {state['step']}: pretraining done, WGAN-GP from here")
        local = WindowOrder.local(state["samples"], batch, dist.rank, dist.world)
        parts, noises = [], []
        for m in range(accum):
            rows = local[m * micro:(m + 1) * micro]
            parts.append(torch.from_numpy(windows.batch(rows)).to(dist.device))
            offset = rows.start - state["samples"]
            noises.append(BatchNoise(seed, state["step"], batch, range(offset, offset + micro), dist.device))
        if state["phase"] == "gan":
            losses["critic"] = _critic_step(model, parts, opts["critic"], torch, sync, noises, dist.autocast)
        losses.update(_generator_step(model, parts, opts["gen"], state["phase"] == "gan", torch, sync, noises,
                                      dist.autocast))
        state["step"] += 1
        state["samples"] += batch
        steps_here += 1
        bar.n = min(int(time.monotonic() - started), total)
        bar.set_postfix_str(f"step {state['step']} {state['phase']} "
                            + " ".join(f"{k} {v:.3f}" for k, v in losses.items()))
    bar.close()
    return state


def metrics_distance(generated: dict, real: dict) -> float:
    """How far generated rolls are from real ones, each metric in units of a musically small difference.
    The checkpoint kept is the closest, so a phase that makes things worse is never shipped."""
    scales = {"empty_bar_ratio": 0.05, "pitch_classes_per_bar": 0.5, "one_step_note_ratio": 0.1, "polyphony": 0.5,
              "notes_per_bar": 2.0}
    return sum(abs(generated[k] - real[k]) / v for k, v in scales.items())


def _vae_loss(model, real, torch, noise: BatchNoise | None = None) -> tuple:
    c = model.config
    seg = c.segment_steps
    b = real.shape[0]
    halves = torch.cat([real[:, :, :seg], real[:, :, seg:]])  # (2B, 2, seg, P)
    mu, logvar = model.encoder(halves)
    if noise is None:
        eps = torch.randn_like(mu)
    else:
        e = noise.normal(BatchNoise.EPS, 2, c.z_dim)
        eps = torch.cat([e[:, 0], e[:, 1]])
    z = mu + eps * torch.exp(0.5 * logvar)
    beats = c.beats_per_bar * c.bars_per_segment
    z_beats = torch.stack([z[:b], z[b:]], 1).repeat_interleave(beats, 1)
    logits, _ = model.generator(z_beats)  # (B, T, 2, P)
    target = real.permute(0, 2, 1, 3)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").mean((0, 1, 3))
    recon = bce[0] + ONSET_WEIGHT * bce[1]
    price = torch.ones(c.z_dim, device=mu.device)
    price[:PLAYED_DIMS] = PLAYED_KL_FACTOR
    kl = -0.5 * torch.sum((1 + logvar.float() - mu.float() ** 2 - logvar.float().exp()) * price) / b  # nats/window
    return recon, kl / target[0].numel()  # both per roll cell


def _fake(model, b: int, torch, z=None):
    c = model.config
    beats = c.beats_per_bar * c.bars_per_segment
    if z is None:
        z = torch.randn(b, 2, c.z_dim, device=next(model.parameters()).device)
    logits, _ = model.generator(z.repeat_interleave(beats, 1))
    return torch.sigmoid(logits.float()).permute(0, 2, 1, 3)


def _micro_batches(real, noises):
    """``real`` as a list of micro-batches (a single tensor is one), with their noise (or None)."""
    parts = real if isinstance(real, list) else [real]
    return parts, noises if noises is not None else [None] * len(parts)


def _critic_step(model, real, opt, torch, sync=None, noises=None, amp=contextlib.nullcontext) -> float:
    """CRITIC_STEPS updates of the WGAN-GP critic, gradients accumulated over the micro-batches and
    averaged over processes by ``sync`` before each update. ``amp``: the forward passes' autocast."""
    parts, noises = _micro_batches(real, noises)
    c = model.config
    for k in range(CRITIC_STEPS):
        opt.zero_grad(set_to_none=True)
        wdist_sum = 0.0
        for part, noise in zip(parts, noises):
            b = part.shape[0]
            with torch.no_grad(), amp():
                z = None if noise is None else noise.normal(BatchNoise.CRITIC_Z + k, 2, c.z_dim)
                fake = _fake(model, b, torch, z)
            alpha = (torch.rand(b, 1, 1, 1, device=part.device) if noise is None
                     else noise.uniform(BatchNoise.CRITIC_ALPHA + k).view(b, 1, 1, 1))
            mix = (alpha * part + (1 - alpha) * fake).requires_grad_(True)
            with amp():
                mixed_score = model.critic(mix).float().sum()
            grad, = torch.autograd.grad(mixed_score, mix, create_graph=True)
            gp = ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()
            with amp():
                wdist = model.critic(part).float().mean() - model.critic(fake).float().mean()
            loss = -wdist + GP_WEIGHT * gp
            (loss / len(parts)).backward()
            wdist_sum += wdist.item()
        if sync is not None:
            sync(model.critic.parameters())
        opt.step()
    return wdist_sum / len(parts)


def _generator_step(model, real, opt, adversarial: bool, torch, sync=None, noises=None,
                    amp=contextlib.nullcontext) -> dict:
    parts, noises = _micro_batches(real, noises)
    params = list(model.generator.parameters()) + list(model.encoder.parameters())
    opt.zero_grad(set_to_none=True)
    out: dict = {}
    for part, noise in zip(parts, noises):
        with amp():
            recon, kl = _vae_loss(model, part, torch, noise)
            loss = recon + BETA * kl
            terms = {"recon": recon.item(), "kl": kl.item()}
            if adversarial:
                z = None if noise is None else noise.normal(BatchNoise.ADV_Z, 2, model.config.z_dim)
                adv = -model.critic(_fake(model, part.shape[0], torch, z)).float().mean()
                loss = loss + ADVERSARIAL_WEIGHT * adv
                terms["adv"] = adv.item()
        (loss / len(parts)).backward()
        for k, v in terms.items():
            out[k] = out.get(k, 0.0) + v / len(parts)
    if sync is not None:
        sync(params)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return out


def _checkpoint(model, held: np.ndarray, state: dict, samples_dir: Path, torch) -> dict:
    """Calibrate thresholds, write samples, and compare metrics on generated vs held-out windows."""
    model.eval()
    c = model.config
    probs = prior_windows(model, 128, 99, torch)
    c.threshold, c.onset_threshold = calibrate_thresholds(probs, held)
    samples_dir.mkdir(parents=True, exist_ok=True)
    for k in range(4):
        write_sample(samples_dir / f"step{state['step']:06d}-{k}.mid", probs[k], c)
    steps_per_bar = c.steps_per_beat * c.beats_per_bar
    return {"generated": roll_metrics(probs, steps_per_bar, c.threshold, c.onset_threshold),
            "real": roll_metrics(held, steps_per_bar), "thresholds": [c.threshold, c.onset_threshold]}
