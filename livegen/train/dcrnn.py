"""Train the DCRNN (``livegen train dcrnn``): piano-roll windows on a 16th-note grid, VAE pretraining,
then WGAN-GP; objective metrics as in MuseGAN.

The grid comes from the dataset's beat annotations when a ``beat_midi.txt`` lies beside a MIDI
file (POP909: beat time, and a 4/4 downbeat flag in the third column), else from the file's first
tempo (4/4 from time 0). Windows start on downbeats and span two segments; pitches outside the
roll's range are folded in by octaves.

Why VAE pretraining: a GAN generator trained from scratch in half an hour of one CPU core gives
noise or one repeated bar. As the decoder of a small VAE (reconstruction + KL to N(0, I)) it learns
in minutes to turn prior samples into plausible rolls; the WGAN-GP phase then sharpens them, with
the reconstruction term kept so it cannot collapse onto a few modes.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen.errors import UserError
from livegen.music.events import Note
from livegen.train.data import is_held_out, load_cached

BETA = 1.0  # KL per roll cell vs the per-cell reconstruction: about half the ELBO's weight, keeps every z dim in use
PLAYED_DIMS = 8  # z dims 0..7, the ones the performer plays by default, pay a lower KL price ...
PLAYED_KL_FACTOR = 0.3  # ... so the encoder puts most of a segment's identity there: gestures steer more
ONSET_WEIGHT = 2.0
GP_WEIGHT = 10.0
ADVERSARIAL_WEIGHT = 0.01  # the critic's gradient is ~1 per window, the per-cell BCE's ~100x smaller
CRITIC_STEPS = 3
PRETRAIN_FRACTION = 0.6


# --- the 16th-note grid --------------------------------------------------------------------------

@dataclass
class Roll:
    """A piece on the 16th grid: sounding and onset (frames, pitches) bools, downbeat frames."""

    sounding: np.ndarray
    onset: np.ndarray
    downbeats: np.ndarray


def beat_grid(name: str, notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
    """(beat times in seconds, indices of downbeat beats) from annotations, else from the tempo."""
    path = Path(name.split("#")[0])
    beat_file = path.parent / "beat_midi.txt"
    if beat_file.is_file():
        rows = np.loadtxt(beat_file, ndmin=2)
        if len(rows) >= 8 and rows.shape[1] >= 3:
            return rows[:, 0], np.flatnonzero(rows[:, 2] > 0.5)
    seconds_per_beat = 0.5
    if path.suffix.lower() in (".mid", ".midi") and path.is_file():
        import mido

        tempos = [m.tempo for track in mido.MidiFile(path, clip=True).tracks for m in track if m.type == "set_tempo"]
        if tempos:
            seconds_per_beat = tempos[0] / 1e6
    end = max(n.end for n in notes)
    beats = np.arange(0.0, end + 2 * seconds_per_beat, seconds_per_beat)
    return beats, np.arange(0, len(beats), 4)


def _nearest(edges: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the grid point nearest each time."""
    right = np.clip(np.searchsorted(edges, times), 1, len(edges) - 1)
    return right - ((times - edges[right - 1]) < (edges[right] - times))


def to_roll(notes: list[Note], beats: np.ndarray, downbeats: np.ndarray, low: int, pitches: int,
            steps_per_beat: int) -> Roll:
    """Notes -> a roll on ``steps_per_beat`` subdivisions of each beat interval."""
    edges = np.concatenate([np.linspace(a, b, steps_per_beat, endpoint=False) for a, b in zip(beats[:-1], beats[1:])]
                           + [beats[-1:]])
    frames = len(edges)
    sounding = np.zeros((frames, pitches), dtype=bool)
    onset = np.zeros((frames, pitches), dtype=bool)
    starts = _nearest(edges, np.array([n.start for n in notes]))
    ends = _nearest(edges, np.array([n.end for n in notes]))
    for n, s, e in zip(notes, starts, ends):
        p = n.pitch - low
        while p < 0:
            p += 12
        while p >= pitches:
            p -= 12
        e = max(int(e), int(s) + 1)
        sounding[s:e, p] = True
        onset[s, p] = True
    return Roll(sounding, onset, downbeats * steps_per_beat)


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
        if shift > 0:
            w[..., shift:], w[..., :shift] = w[..., :-shift].copy(), 0.0
        elif shift < 0:
            w[..., :shift], w[..., shift:] = w[..., -shift:].copy(), 0.0
        return w

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


# --- piano-roll -> notes, and the MuseGAN metrics -------------------------------------------------

def roll_notes(sounding: np.ndarray, onset: np.ndarray, threshold: float = 0.5, onset_threshold: float = 0.5,
               max_steps: int = 10**9, max_polyphony: int = 128) -> list[tuple[int, int, int]]:
    """(start frame, end frame, row) of each note, decoded exactly as the live engine decodes frames."""
    from livegen.engine.dcrnn_live import RollDecoder

    decoder = RollDecoder(threshold, onset_threshold, max_steps, max_polyphony)
    starts: dict[int, int] = {}
    out = []
    for t in range(len(sounding)):
        decoder, ended, started = decoder.feed(np.stack([sounding[t], onset[t]]), t)
        out += [(starts.pop(row), t, row) for row in ended]
        starts.update((row, t) for row, _ in started)
    out += [(start, len(sounding), row) for row, start in starts.items()]
    return sorted(out)


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
        logits, _ = model.generator(z)
    return torch.sigmoid(logits).permute(0, 2, 1, 3).numpy()


def write_sample(path: Path, window: np.ndarray, config, bpm: float = 120.0) -> int:
    """A window of probabilities as a MIDI file, decoded as the live engine does; returns the note count."""
    import mido

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


def _save_optimizers(path: Path, optimizers: dict) -> None:
    from safetensors.torch import save_file
    import torch

    tensors = {}
    for name, opt in optimizers.items():
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"{name}.{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(float(v))).contiguous()
    save_file(tensors, str(path))


def _load_optimizers(path: Path, optimizers: dict) -> None:
    from safetensors.torch import load_file

    saved = load_file(str(path))
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for i in sd["param_groups"][0]["params"]:
            keys = [k for k in saved if k.startswith(f"{name}.{i}.")]
            if keys:
                sd["state"][i] = {k.split(".", 2)[2]: saved[k] for k in keys}
        opt.load_state_dict(sd)


def train(data: str, out: str, minutes: float, batch: int = 32, lr: float = 1e-3, seed: int = 0,
          threads: int = 1, resume: bool = True, log=print, max_steps: int | None = None,
          config_overrides: dict | None = None) -> dict:
    """Train for ``minutes`` (or ``max_steps``): the first 60 % as a VAE, then WGAN-GP (a resumed GAN
    phase stays GAN). Every 3 minutes and at the end: thresholds calibrated, sample MIDI files in
    ``<out>-samples/``, metrics vs held-out; the weights (and the optimizers beside them,
    ``.opt.safetensors``) are written when the metrics are the closest to real music so far."""
    import torch

    torch.set_num_threads(threads)
    from livegen.models import checkpoint
    from livegen.models.dcrnn import DCRNN, DCRNNConfig

    torch.manual_seed(seed)
    out_path, opt_path = Path(out), Path(str(out) + ".opt.safetensors")
    samples_dir = out_path.with_name(out_path.stem + "-samples")
    state = {"step": 0, "phase": "vae", "seconds": 0.0, "best": math.inf}
    if resume and out_path.exists():
        model, meta = checkpoint.load(out_path)
        if model.kind != "dcrnn":
            raise UserError(f"{out_path} holds a {model.kind} model, not a DCRNN; choose another --out")
        state.update(meta["extra"].get("train", {}))
        log(f"resuming from {out_path} at step {state['step']} ({state['phase']} phase)")
    else:
        model = DCRNN(DCRNNConfig(**(config_overrides or {})))
    model.train()
    c = model.config
    train_rolls, held_rolls = load_rolls(data, c, log)
    seg = c.segment_steps
    sampler = WindowSampler(train_rolls, 2 * seg, seed + state["step"])
    held = WindowSampler(held_rolls, 2 * seg, 0, transpose=0).fixed(128)
    opts = {"gen": torch.optim.Adam(list(model.generator.parameters()) + list(model.encoder.parameters()), lr,
                                    betas=(0.5, 0.9)),
            "critic": torch.optim.Adam(model.critic.parameters(), lr, betas=(0.5, 0.9))}
    if resume and out_path.exists() and opt_path.exists():
        _load_optimizers(opt_path, opts)

    from tqdm import tqdm

    total = int(minutes * 60)
    bar = tqdm(total=total, unit="s", desc="train dcrnn", file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}")
    started = time.monotonic()
    last_save = started
    steps_here = 0
    losses: dict = {}

    def say(text: str) -> None:  # a line of its own, not glued to the progress bar
        bar.clear()
        log(text)
        bar.refresh()

    def done() -> bool:
        return time.monotonic() - started >= total or (max_steps is not None and steps_here >= max_steps)

    while not done():
        if state["phase"] == "vae" and time.monotonic() - started >= PRETRAIN_FRACTION * total:
            state["phase"] = "gan"
            say(f"step {state['step']}: pretraining done, WGAN-GP from here")
        real = torch.from_numpy(sampler.batch(batch))
        if state["phase"] == "gan":
            losses["critic"] = _critic_step(model, real, opts["critic"], torch)
        losses.update(_generator_step(model, real, opts["gen"], state["phase"] == "gan", torch))
        state["step"] += 1
        steps_here += 1
        bar.n = min(int(time.monotonic() - started), total)
        bar.set_postfix_str(f"step {state['step']} {state['phase']} "
                            + " ".join(f"{k} {v:.3f}" for k, v in losses.items()))
        if time.monotonic() - last_save > 180 or done():
            state["seconds"] += time.monotonic() - last_save
            last_save = time.monotonic()
            metrics = _checkpoint(model, held, state, samples_dir, torch)
            distance = metrics_distance(metrics["generated"], metrics["real"])
            kept = distance < state["best"]
            if kept:
                state["best"] = distance
                checkpoint.save(out_path, model, {"train": state, "data": data, "metrics": metrics})
                _save_optimizers(opt_path, opts)
            model.train()
            say(f"step {state['step']}: " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
                + f"; generated {metrics['generated']}; held-out {metrics['real']}; distance {distance:.2f}"
                + (" (kept)" if kept else ""))
    bar.close()
    return state


def metrics_distance(generated: dict, real: dict) -> float:
    """How far generated rolls are from real ones, each metric in units of a musically small difference.
    The checkpoint kept is the closest, so a phase that makes things worse is never shipped."""
    scales = {"empty_bar_ratio": 0.05, "pitch_classes_per_bar": 0.5, "one_step_note_ratio": 0.1, "polyphony": 0.5,
              "notes_per_bar": 2.0}
    return sum(abs(generated[k] - real[k]) / v for k, v in scales.items())


def _vae_loss(model, real, torch) -> tuple:
    c = model.config
    seg = c.segment_steps
    b = real.shape[0]
    halves = torch.cat([real[:, :, :seg], real[:, :, seg:]])  # (2B, 2, seg, P)
    mu, logvar = model.encoder(halves)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    beats = c.beats_per_bar * c.bars_per_segment
    z_beats = torch.stack([z[:b], z[b:]], 1).repeat_interleave(beats, 1)
    logits, _ = model.generator(z_beats)  # (B, T, 2, P)
    target = real.permute(0, 2, 1, 3)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((0, 1, 3))
    recon = bce[0] + ONSET_WEIGHT * bce[1]
    price = torch.ones(c.z_dim)
    price[:PLAYED_DIMS] = PLAYED_KL_FACTOR
    kl = -0.5 * torch.sum((1 + logvar - mu ** 2 - logvar.exp()) * price) / b  # nats per window
    return recon, kl / target[0].numel()  # both per roll cell


def _fake(model, b: int, torch):
    c = model.config
    beats = c.beats_per_bar * c.bars_per_segment
    z = torch.randn(b, 2, c.z_dim).repeat_interleave(beats, 1)
    logits, _ = model.generator(z)
    return torch.sigmoid(logits).permute(0, 2, 1, 3)


def _critic_step(model, real, opt, torch) -> float:
    for _ in range(CRITIC_STEPS):
        with torch.no_grad():
            fake = _fake(model, real.shape[0], torch)
        alpha = torch.rand(real.shape[0], 1, 1, 1)
        mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(model.critic(mix).sum(), mix, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        wdist = model.critic(real).mean() - model.critic(fake).mean()
        loss = -wdist + GP_WEIGHT * gp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return wdist.item()


def _generator_step(model, real, opt, adversarial: bool, torch) -> dict:
    recon, kl = _vae_loss(model, real, torch)
    loss = recon + BETA * kl
    out = {"recon": recon.item(), "kl": kl.item()}
    if adversarial:
        adv = -model.critic(_fake(model, real.shape[0], torch)).mean()
        loss = loss + ADVERSARIAL_WEIGHT * adv
        out["adv"] = adv.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(model.generator.parameters()) + list(model.encoder.parameters()), 1.0)
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
