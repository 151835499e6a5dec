"""Train and evaluate the commentary CVAE on MusicCaps (``livegen train commentary``, ``livegen eval``).

Three phases: the CVAE (most of the time; resumable), then the attribute classifier (seconds),
then the LC-GAN (a minute). Clips are split by id (``text.is_held_out``); the held-out captions
are written beside the checkpoint as ``<out>.held-out.csv`` for ``livegen eval``.
"""
from __future__ import annotations

import csv
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from livegen.commentary import filter as word_filter
from livegen.commentary import text, truth
from livegen.commentary.attributes import WINDOW_SECONDS, read_midi_file
from livegen.commentary.commentator import Commentator, commentary_checkpoint
from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.cvae import CVAEConfig
from livegen.models.lcgan import LCGANConfig
from livegen.models.nets.cvae import CVAE
from livegen.models.nets.lcgan import LCGAN, AttributeClassifier, reward
from livegen.models.words import detokenize, tokenize
from livegen.train import distributed
from livegen.train.data import WindowOrder
from livegen.train.dcrnn import BatchNoise
from livegen.train.resume import load_optimizer, optimizer_tensors, restore_optimizer, save_optimizer

LCGAN_SECONDS = 60.0  # the classifier and LC-GAN phases after the CVAE (part of --minutes)
Z_NOISE, WORD_DROPOUT = 0, 1  # the uses of a training step's BatchNoise
# a baseline compares when only the attributes differ: same words (perplexities over one vocabulary), same sizes
BASELINE_MUST_MATCH = ("words", "embed_dim", "encoder_hidden", "decoder_hidden", "latent_dim", "max_len")
JUDGE_STEPS = 1000  # optimizer steps for eval's independent judge, about what the model's classifier took
JUDGE_SEED_OFFSET = 1  # the judge draws from the eval seed + this, not as the model's classifier did (seed 0)


def _split(data: str):
    rows = text.read_captions(data)
    train_rows = [r for r in rows if not text.is_held_out(r["ytid"])]
    held_rows = [r for r in rows if text.is_held_out(r["ytid"])]
    if not train_rows:
        raise UserError(f"{data}: every caption falls in the held-out split; give the whole MusicCaps CSV")
    return rows, train_rows, held_rows


def _tensors(model, sentences: list[text.Sentence]):
    ids = model.encode_words([s.tokens for s in sentences])
    attrs = torch.stack([model.attribute_vector(s.attributes) for s in sentences])
    return ids, attrs


class Batches:
    """Batches of sentences of similar length (little padding): step k's global batch is ``batch``
    neighbours in length order from a place drawn from (seed, k), so every process holds the same
    global batch (each takes its rows) and a resumed run sees what an unbroken one would have."""

    def __init__(self, sentences: list[text.Sentence], batch: int, seed: int):
        self.sentences = sorted(sentences, key=lambda s: len(s.tokens))
        if len(self.sentences) < batch:
            raise UserError(f"--batch {batch} is more than the {len(self.sentences)} training sentences")
        self.batch, self.seed = batch, seed

    def at(self, step: int) -> list[text.Sentence]:
        start = int(np.random.default_rng([self.seed, step]).integers(0, len(self.sentences) - self.batch + 1))
        return self.sentences[start:start + self.batch]


def _opt_path(out_path: Path) -> Path:
    return Path(str(out_path) + ".opt.safetensors")


def _save(out_path: Path, model, state: dict, data: str, opt_tensors: dict | None = None) -> None:
    """The optimizer (when given) first, stamped with the step (see ``resume.save_optimizer``)."""
    if opt_tensors is not None:
        save_optimizer(_opt_path(out_path), opt_tensors, state["step"])
    checkpoint.save(out_path, model, {"train": state, "data": str(data)})


def write_held_out(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def train(data: str, out: str, minutes: float, batch: int = 64, lr: float = 2e-3, seed: int = 0,
          threads: int | None = None, resume: bool = True, log=print, max_steps: int | None = None,
          config_overrides: dict | None = None, lcgan_steps: int = 1500, lcgan_samples: int = 4096,
          progress: bool = True, device: str = "auto", accum: int = 1, eval_every: float = 90.0) -> dict:
    """Train until ``minutes`` pass (or ``max_steps``); keeps the best held-out ELBO (once β = 1).

    ``batch`` is the global batch of one optimizer step: split over the processes torchrun started
    and over ``accum`` micro-batches each, every sentence's z noise and word dropout drawn for its
    place in the global batch, so the same ``batch`` trains the same model at any scale. Rank 0
    alone logs, validates (every ``eval_every`` seconds and at the end) and saves, and then trains
    the attribute classifier and the LC-GAN (small, single-process phases, on the CPU)."""
    with distributed.session(device, threads) as dist:
        return _train(dist, data, out, minutes, batch, lr, seed, resume, log if dist.main else (lambda _: None),
                      max_steps, config_overrides, lcgan_steps, lcgan_samples, progress and dist.main, accum,
                      eval_every)


def _train(dist, data, out, minutes, batch, lr, seed, resume, log, max_steps, config_overrides, lcgan_steps,
           lcgan_samples, progress, accum, eval_every) -> dict:
    if accum < 1 or batch < 1 or batch % (dist.world * accum):
        raise UserError(f"--batch {batch} must be a multiple of processes x --accum ({dist.world} x {accum})")
    micro = batch // (dist.world * accum)
    torch.manual_seed(seed)
    _, train_rows, held_rows = _split(data)
    train_sents = text.caption_sentences(train_rows)
    held_sents = text.caption_sentences(held_rows) or train_sents[:200]
    out_path = Path(out)
    opt_path = _opt_path(out_path)
    state = {"step": 0, "best_val": math.inf, "seconds": 0.0}
    resuming = resume and out_path.exists()
    if resuming:
        model, meta = checkpoint.load(out_path)
        if model.kind != "cvae":
            raise UserError(f"{out_path} holds a {model.kind} model; give another --out for the commentary model")
        state.update(meta["extra"].get("train", {}))
        # a resumed run keeps the checkpoint's config: a setting asked for that it lacks would be lost
        clashes = [f"{k}={getattr(model.config, k, None)!r}" for k, v in (config_overrides or {}).items()
                   if getattr(model.config, k, None) != v]
        if clashes:  # e.g. --no-attributes on a checkpoint trained with them
            raise UserError(f"{out_path} was trained with {', '.join(clashes)}, not as asked now; "
                            "give another --out, or --no-resume to train it afresh")
        log(f"resuming from {out_path} at step {state['step']}")
    else:
        blocked = {w for s in train_sents for w in s.tokens if word_filter.is_blocked_word(w)}
        words = text.build_vocabulary(train_sents, blocked=blocked)
        attributes = text.derive_attributes(train_sents)
        model = CVAE(CVAEConfig(words=words, attributes=attributes, **(config_overrides or {})))
    model.config.lcgan, model.lcgan = None, None  # retrained after the CVAE phase
    if dist.main:
        write_held_out(held_rows, out_path.with_name(out_path.stem + ".held-out.csv"))
    log(f"captions: {len(train_rows)} clips / {len(train_sents)} sentences for training, "
        f"{len(held_rows)} clips / {len(held_sents)} sentences held out; {len(model.config.words)} words, "
        f"{len(model.config.attributes)} attributes"
        + ("" if model.config.use_attributes else " (zeroed: the no-attribute baseline)"))
    log(f"{dist.world} process(es) on {dist.device.type}, {micro} sentences x {accum} micro-batch(es) each"
        + (", bf16 autocast" if dist.mixed_precision else ""))

    model.to(dist.device)
    dist.broadcast_parameters(model)  # every process starts from rank 0's weights
    cvae_params = [p for n, p in model.named_parameters() if not n.startswith(("classifier.", "lcgan."))]
    opt = torch.optim.AdamW(cvae_params, lr=lr, weight_decay=0.01)
    saved = load_optimizer(opt_path, state["step"], log) if resuming else None
    if saved:
        restore_optimizer(opt, saved)
    batches = Batches(train_sents, batch, seed)
    local = WindowOrder.local(0, batch, dist.rank, dist.world)  # this process's rows of each global batch
    val = [t.to(dist.device) for t in _tensors(model, held_sents[:1500])] if dist.main else None
    c = model.config
    started = time.monotonic()
    deadline = started + max(0.0, minutes * 60 - LCGAN_SECONDS)

    bar = tqdm(total=int(max(1, deadline - started)), unit="s", desc="train commentary", file=sys.stderr,
               disable=not progress, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}")
    last_eval, steps_here = started, 0
    model.train()
    while max_steps is None or steps_here < max_steps:
        (time_up,) = dist.agree(max_steps is None and time.monotonic() >= deadline)  # rank 0's clock decides
        if time_up:
            break
        sentences = batches.at(state["step"])  # the same global batch on every process: each takes its rows
        beta = model.kl_weight(state["step"])
        opt.zero_grad(set_to_none=True)
        nll_sum, kl_sum, tokens = 0.0, 0.0, 0
        for m in range(accum):
            rows = local[m * micro:(m + 1) * micro]
            ids, attrs = (t.to(dist.device) for t in _tensors(model, sentences[rows.start:rows.stop]))
            noise = BatchNoise(seed, state["step"], batch, rows, dist.device)
            with dist.autocast():
                nll, kl, n = model(ids, attrs, word_dropout=c.word_dropout, eps=noise.normal(Z_NOISE, c.latent_dim),
                                   uniform=noise.uniform(WORD_DROPOUT, c.max_len))
            # sums over the global batch's size: averaged over processes, the gradient is its mean
            ((nll.float().sum() + beta * kl.float().sum()) * dist.world / batch).backward()
            nll_sum += float(nll.detach().sum())
            kl_sum += float(kl.detach().sum())
            tokens += int(n.sum())
        dist.average_gradients(cvae_params)  # not DDP: the classifier's weights sit out this phase
        torch.nn.utils.clip_grad_norm_(cvae_params, 1.0)
        opt.step()
        state["step"] += 1
        steps_here += 1
        bar.n = min(int(time.monotonic() - started), bar.total)
        bar.set_postfix_str(f"step {state['step']} nll/word {nll_sum / tokens:.2f} "
                            f"kl {kl_sum / (micro * accum):.1f} β {beta:.2f}")
        finished = steps_here >= max_steps if max_steps is not None else time.monotonic() >= deadline
        if not dist.main:
            continue
        if time.monotonic() - last_eval >= eval_every or finished:
            v = elbo(model, *val)
            model.train()
            state["seconds"] += time.monotonic() - last_eval
            last_eval = time.monotonic()
            log(f"step {state['step']}: held-out perplexity {v['perplexity']:.1f} (reconstruction "
                f"{v['perplexity_reconstruction']:.1f}), KL {v['kl']:.2f} nats/sentence, β {beta:.2f}")
            annealed = beta >= 1.0
            if not annealed or v["perplexity"] < state["best_val"]:
                if annealed:
                    state["best_val"] = v["perplexity"]
                _save(out_path, model, state, data, optimizer_tensors(opt))
    bar.close()
    if not dist.main:
        return state
    model.cpu()
    kept = None  # the best CVAE's optimizer, saved again below with the step that checkpoint records
    if steps_here and out_path.exists():  # continue from the best CVAE, not the last step
        best, meta = checkpoint.load(out_path)
        model.load_state_dict(best.state_dict(), strict=False)
        kept = load_optimizer(opt_path, meta["extra"]["train"]["step"], log)
    model.eval()
    acc = train_classifier(model, train_sents, held_sents, seed=seed)
    log(f"attribute classifier: held-out micro-F1 {acc:.2f}")
    if model.config.use_attributes and lcgan_steps > 0:
        summary = train_lcgan(model, train_sents, steps=lcgan_steps, samples=lcgan_samples, seed=seed, log=log)
        state["lcgan"] = summary
    state["classifier_f1"] = acc
    _save(out_path, model, state, data, kept)
    return state


@torch.no_grad()
def elbo(model, ids: torch.Tensor, attrs: torch.Tensor, batch: int = 256) -> dict:
    """Held-out perplexity from the ELBO (an upper bound: exp((NLL + KL) / words)), reconstruction
    perplexity (NLL alone, z = μ) and the mean KL per sentence."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    total_nll = total_rec = total_kl = 0.0
    words = 0
    for i in range(0, ids.shape[0], batch):
        x, a = ids[i:i + batch], attrs[i:i + batch]
        x = x[:, :int((x != model.pad).sum(1).max())]
        mu, logvar = model.posterior(x, a)
        z = mu + torch.randn(mu.shape, generator=gen).to(mu.device) * (0.5 * logvar).exp()
        inputs = torch.cat([torch.full_like(x[:, :1], model.bos), x[:, :-1]], dim=1)
        for code, key in ((z, "nll"), (mu, "rec")):
            logits, _ = model.decode(inputs, code, a)
            nll = float(F.cross_entropy(logits.transpose(1, 2), x, ignore_index=model.pad, reduction="sum"))
            if key == "nll":
                total_nll += nll
            else:
                total_rec += nll
        total_kl += float((0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum())
        words += int((x != model.pad).sum())
    return {"perplexity": math.exp((total_nll + total_kl) / words),
            "perplexity_reconstruction": math.exp(total_rec / words),
            "kl": total_kl / ids.shape[0], "tokens": words, "sentences": int(ids.shape[0])}


def train_classifier(model, train_sents, held_sents, epochs: int = 30, seed: int = 0) -> float:
    """Fit the bag-of-words attribute classifier on real sentences; held-out micro-F1 at 0.5."""
    clf = model.classifier
    fit_classifier(clf, *_tensors(model, train_sents), epochs=epochs, seed=seed)
    hid, hattrs = _tensors(model, held_sents)
    with torch.no_grad():
        pred = (clf(hid) > 0).float()
    tp = float((pred * hattrs).sum())
    return 2 * tp / max(1.0, float(pred.sum() + hattrs.sum()))


def fit_classifier(clf, ids: torch.Tensor, attrs: torch.Tensor, epochs: int = 30, seed: int = 0) -> None:
    """Logistic regression on (word ids, multi-hot attributes), from the attributes' base rates."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05, weight_decay=1e-6)
    pos = attrs.mean(0).clamp(1e-3, 0.999)
    with torch.no_grad():
        clf.bias.copy_(torch.log(pos / (1 - pos)))
    order = torch.randperm(ids.shape[0])
    for _ in range(epochs):
        for i in range(0, ids.shape[0], 512):
            j = order[i:i + 512]
            loss = F.binary_cross_entropy_with_logits(clf(ids[j]), attrs[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _decode_ids(model, sentences: list[list[str]]) -> torch.Tensor:
    return model.encode_words([s or ["."] for s in sentences])


def _uniforms(model, batch: int, gen: torch.Generator) -> torch.Tensor:
    """The uniforms ``CVAE.sample`` turns into words, one per word of each of ``batch`` sentences."""
    return torch.rand(batch, model.config.max_len, generator=gen)


def train_lcgan(model, train_sents, steps: int = 1500, samples: int = 4096, seed: int = 0, log=print) -> dict:
    """Fit the reward model on decoded samples, then the critic and actor (see models/nets/lcgan.py)."""
    c = model.config
    lc_config = LCGANConfig(latent_dim=c.latent_dim, attr_dim=len(c.attributes))
    lcgan = LCGAN(lc_config)
    gen = torch.Generator().manual_seed(seed)
    ids, attrs = _tensors(model, train_sents)
    with torch.no_grad():
        real_z = torch.cat([model.posterior(ids[i:i + 512], attrs[i:i + 512])[0] for i in range(0, len(ids), 512)])
    pool_z, pool_a, pool_r = [], [], []

    def score(z, a):
        sents = []
        for i in range(0, z.shape[0], 512):
            rows = slice(i, i + 512)
            sents += model.sample(a[rows], z[rows], _uniforms(model, len(a[rows]), gen))
        return reward(model.classifier, _decode_ids(model, sents), a)

    def collect(n, steer: bool):
        pick = torch.randint(0, len(attrs), (n,), generator=gen)
        a = attrs[pick]
        z = torch.randn(n, c.latent_dim, generator=gen)
        if steer:
            with torch.no_grad():
                z = lcgan.steer(z, a)
        pool_z.append(z)
        pool_a.append(a)
        r = score(z, a)
        pool_r.append(r)
        return float(r.mean())

    before = collect(samples, steer=False)
    opt_r = torch.optim.Adam(lcgan.reward_model.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(lcgan.critic.parameters(), lr=3e-4)
    opt_g = torch.optim.Adam(lcgan.actor.parameters(), lr=3e-4)
    rounds = 2
    for round_ in range(rounds):
        z_all, a_all, r_all = torch.cat(pool_z), torch.cat(pool_a), torch.cat(pool_r)
        for _ in range(steps):
            j = torch.randint(0, len(z_all), (256,), generator=gen)
            loss = F.mse_loss(lcgan.predicted_reward(z_all[j], a_all[j]), r_all[j])
            opt_r.zero_grad(set_to_none=True)
            loss.backward()
            opt_r.step()
        for _ in range(steps):
            j = torch.randint(0, len(real_z), (256,), generator=gen)
            a = attrs[j]
            z = torch.randn(256, c.latent_dim, generator=gen)
            fake = lcgan.steer(z, a).detach()
            d_loss = (F.softplus(-lcgan.realism(real_z[j], a)).mean() + F.softplus(lcgan.realism(fake, a)).mean())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = lcgan.actor_loss(z, a)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        if round_ < rounds - 1:  # score the actor's own codes, so R is right where the actor goes
            collect(samples // 2, steer=True)
    after = collect(samples // 2, steer=True)
    model.lcgan = lcgan.eval()
    model.config.lcgan = vars(lc_config).copy()
    log(f"LC-GAN: mean reward of decoded sentences {before:.3f} without, {after:.3f} with the actor")
    return {"reward_without": before, "reward_with": after}


# --- evaluation ------------------------------------------------------------------------------------

def distinct(sentences: list[list[str]]) -> tuple[float, float]:
    """distinct-1/2: unique unigrams / unigrams and unique bigrams / bigrams over all sentences."""
    uni = [w for s in sentences for w in s]
    bi = [tuple(s[i:i + 2]) for s in sentences for i in range(len(s) - 1)]
    return len(set(uni)) / max(1, len(uni)), len(set(bi)) / max(1, len(bi))


def category_swaps(model, attribute_sets: list[set[str]], per_category: int, seed: int):
    """(attribute sets, the attribute set in each, its category's labels): real contexts with one
    category's attribute replaced by each of that category's labels in turn."""
    rng = np.random.default_rng(seed)
    by_cat: dict[str, list[str]] = {}
    for label in model.config.attributes:
        by_cat.setdefault(text.category(label), []).append(label)
    cases = []
    for cat, labels in by_cat.items():
        if len(labels) < 2 or cat == "recording":
            continue
        for k in range(per_category):
            context = attribute_sets[int(rng.integers(len(attribute_sets)))]
            target = labels[k % len(labels)]
            cases.append(({a for a in context if text.category(a) != cat} | {target}, target, labels))
    return cases


def picks_target(classifier, model, ids: torch.Tensor, cases) -> list[bool]:
    """Per case: does ``classifier``, reading that case's sentence, rank the target first among
    its category's labels?"""
    index = {a: i for i, a in enumerate(model.config.attributes)}
    logits = classifier(ids)
    return [labels[int(row[[index[lb] for lb in labels]].argmax())] == target
            for row, (_, target, labels) in zip(logits, cases)]


@torch.no_grad()
def agreement(model, cases, steer: bool, seed: int = 0, judge=None) -> dict:
    """Generate one sentence per case; the classifier's pick among the category's labels == target?
    With a ``judge`` (see ``independent_judge``), its verdict on the same sentences too."""
    gen = torch.Generator().manual_seed(seed)
    attrs = torch.stack([model.attribute_vector(s) for s, _, _ in cases])
    sents = []
    for i in range(0, len(cases), 256):
        a = attrs[i:i + 256]
        z = torch.randn(a.shape[0], model.config.latent_dim, generator=gen)
        if steer and model.lcgan is not None:
            z = model.lcgan.steer(z, a)
        sents += model.sample(a, z, _uniforms(model, a.shape[0], gen))
    ids = _decode_ids(model, sents)
    hits = picks_target(model.classifier, model, ids, cases)
    by_category: dict[str, list[int]] = {}
    for hit, (_, target, labels) in zip(hits, cases):
        counts = by_category.setdefault(text.category(target), [0, 0, len(labels)])
        counts[0] += hit
        counts[1] += 1
    d1, d2 = distinct(sents)
    out = {"attribute_agreement": sum(hits) / len(cases),
           "attribute_agreement_chance": sum(1 / len(labels) for _, _, labels in cases) / len(cases),
           "attribute_agreement_by_category": {c: {"agreement": h / n, "chance": 1 / k}
                                               for c, (h, n, k) in by_category.items()},
           "reward": float(reward(model.classifier, ids, attrs).mean()), "distinct_1": d1, "distinct_2": d2,
           "mean_words": float(np.mean([len([w for w in s if w[0].isalnum()]) for s in sents])),
           "sentences": len(sents), "examples": [detokenize(s) for s in sents[:3]]}
    if judge is not None:
        out["judge_agreement"] = float(np.mean(picks_target(judge, model, ids, cases)))
    return out


@torch.no_grad()
def shown_agreement(model, cases, seed: int = 0, judge=None) -> dict:
    """Agreement and diversity of the sentences ``livegen comment`` shows (filtered, reranked,
    LC-GAN on when the model has one), on the same category-swap cases; and the judge's verdict."""
    c = Commentator(model.live(), seed=seed)
    shown = [c.sentence(sorted(labels)) for labels, _, _ in cases]
    tokens = [tokenize(s) for s in shown]
    ids = model.encode_words(tokens)
    d1, d2 = distinct(tokens)
    out = {"attribute_agreement": float(np.mean(picks_target(model.classifier, model, ids, cases))),
           "distinct_1": d1, "distinct_2": d2, "sentences": len(cases)}
    if judge is not None:
        out["judge_agreement"] = float(np.mean(picks_target(judge, model, ids, cases)))
    return out


def ms_per_sentence(model, attributes: list[str], repeats: int = 20) -> float:
    """Median wall time of one shown sentence (``Commentator.sentence``, the numpy runtime)."""
    c = Commentator(model.live(), seed=0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c.sentence(attributes)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _judge_fits_on(ytid: str) -> bool:
    """Half of the clips, by a hash of their own (not ``is_held_out``'s), so the split is stable."""
    return zlib.crc32(f"judge:{ytid}".encode()) % 2 == 0


def independent_judge(model, sents: list[text.Sentence], seed: int = 0):
    """(judge, the sentences it did not see) or None when the captions do not make two halves.

    The model's own classifier is the LC-GAN's reward and the reranker, so agreement that it judges
    flatters both. The judge is the same kind of bag-of-words classifier, fitted afresh with its own
    seed on half of the evaluated clips only (held-out captions: none the model or its classifier
    trained on); its ceiling on real text is measured on the other half."""
    fit = [s for s in sents if _judge_fits_on(s.ytid)]
    unseen = [s for s in sents if not _judge_fits_on(s.ytid)]
    if not fit or not unseen:
        return None
    judge = AttributeClassifier(len(model.config.words), len(model.config.attributes), pad=model.pad)
    ids, attrs = _tensors(model, fit)
    epochs = max(30, math.ceil(JUDGE_STEPS / math.ceil(len(fit) / 512)))  # as many steps as on a large set
    fit_classifier(judge, ids, attrs, epochs=epochs, seed=seed + JUDGE_SEED_OFFSET)
    return judge.eval(), unseen


def baseline_elbo(path: str, model, sents: list[text.Sentence]) -> dict:
    """Held-out perplexity of a no-attribute checkpoint (``livegen train commentary --no-attributes``)
    on the same sentences and words as ``model``'s."""
    baseline, _ = checkpoint.load(commentary_checkpoint(path))
    if baseline.config.use_attributes:
        raise UserError(f"--baseline {path} was trained with attributes; train the baseline with "
                        "`livegen train commentary --no-attributes`")
    differ = [k for k in BASELINE_MUST_MATCH if getattr(baseline.config, k) != getattr(model.config, k)]
    if differ:
        raise UserError(f"--baseline {path} is not the same decoder as the model (its {', '.join(differ)} "
                        "differ): train it with the same sizes on the same caption CSV")
    result = elbo(baseline, *_tensors(baseline, sents))
    steps = checkpoint.read_metadata(path)["extra"].get("train", {}).get("step")
    return {"model": str(path), "trained_steps": steps,
            **{k: result[k] for k in ("perplexity", "perplexity_reconstruction", "kl")}}


WINDOWS_PER_TAKE = 4


def truth_on_midi(model, folder: str, seed: int = 0, limit: int | None = None) -> dict:
    """What the shown sentences claim about held-out music, by ``truth.py``'s checker: each MIDI file
    under ``folder`` (its first ``limit``) as played and as two contrasting takes (slow soft low, fast
    loud high), WINDOWS_PER_TAKE sentences over each, as ``livegen comment --midi`` writes them.

    false_claim_rate: sentences with any claim the music does not confidently support;
    true_claim_rate: sentences with a true specific claim and none false; distinct_2: per take, mean."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".mid", ".midi"))[:limit]
    if not files:
        raise UserError(f"--midi {folder}: no MIDI files in it")
    commentator = Commentator(model.live(), seed=seed)
    shown, by_take, distinct_2, ms = [], {name: [0, 0, 0] for name, *_ in truth.TAKES}, [], []
    for path in files:
        notes, programs, drums = read_midi_file(str(path))
        if len(notes) < 8:
            continue
        for name, stretch, velocity, shift in truth.TAKES:
            take = truth.variant(notes, stretch, velocity, shift)
            start, end = take[0].start, max(n.end for n in take)
            sentences = []
            for k in range(WINDOWS_PER_TAKE):
                at = start + (end - start) * (k + 1) / WINDOWS_PER_TAKE
                c = commentator.comment(take, max(at, start + min(WINDOW_SECONDS, end - start)), programs, drums)
                false = any(not claim.true for claim in c.claims)
                true = not false and any(claim.true and claim.about in truth.SPECIFIC for claim in c.claims)
                counts = by_take[name]
                counts[0] += 1
                counts[1] += false
                counts[2] += true
                shown.append({"file": path.name, "take": name, "text": c.text, "written": c.written,
                              "false": [f"{x.about}:{x.value} ({x.words}; {x.why})" for x in c.claims if not x.true],
                              "true": [f"{x.about}:{x.value}" for x in c.claims if x.true]})
                sentences.append(tokenize(c.text))
                ms.append(c.ms)
            distinct_2.append(distinct(sentences)[1])
    n = len(shown)
    if not n:
        raise UserError(f"--midi {folder}: no file with at least 8 pitched notes")
    return {"files": len(files), "sentences": n,
            "false_claim_rate": sum(bool(s["false"]) for s in shown) / n,
            "true_claim_rate": sum(not s["false"] and bool(s["true"]) for s in shown) / n,
            "written_rate": sum(s["written"] for s in shown) / n, "distinct_2": float(np.mean(distinct_2)),
            "ms_per_sentence": float(np.median(ms)),
            "by_take": {name: {"sentences": t, "false_claim_rate": f / max(t, 1), "true_claim_rate": r / max(t, 1)}
                        for name, (t, f, r) in by_take.items()},
            "examples": shown[:WINDOWS_PER_TAKE * len(truth.TAKES)]}


def evaluate(path: str, data: str, threads: int = 2, per_category: int = 60, seed: int = 0,
             limit: int | None = None, baseline: str | None = None, midi: str | None = None,
             midi_limit: int | None = 12) -> dict:
    """Perplexity, KL, attribute agreement (% vs chance), distinct-1/2 and speed on a caption CSV
    (its first ``limit`` captions when given); with ``baseline``, a no-attribute checkpoint's
    perplexity on the same sentences; with ``midi``, what the shown sentences claim about held-out
    music (``truth_on_midi``, its first ``midi_limit`` files)."""
    torch.set_num_threads(threads)
    model, meta = checkpoint.load(path)
    rows = text.read_captions(data)[:limit]
    sents = text.caption_sentences(rows)
    if not sents:
        raise UserError(f"{data}: no usable sentences in its captions")
    ids, attrs = _tensors(model, sents)
    result = elbo(model, ids, attrs)  # conditioned as in training: aspects ∪ the sentence's own words
    result["unknown_word_rate"] = float((ids == model.unk).sum()) / result["tokens"]
    from_aspects = elbo(model, ids, torch.stack([model.attribute_vector(s.aspects) for s in sents]))
    result["aspect_attributes"] = {k: from_aspects[k] for k in ("perplexity", "perplexity_reconstruction", "kl")}
    if baseline is not None:
        result["baseline"] = baseline_elbo(baseline, model, sents)
    cases = category_swaps(model, [s.attributes for s in sents], per_category, seed)
    judged = independent_judge(model, sents, seed)
    judge = judged[0] if judged else None
    plain = agreement(model, cases, steer=False, seed=seed, judge=judge)
    result.update({k: plain[k] for k in ("attribute_agreement", "attribute_agreement_chance",
                                         "attribute_agreement_by_category", "distinct_1", "distinct_2", "reward",
                                         "mean_words", "examples")})
    shown = shown_agreement(model, cases[::3], seed=seed, judge=judge)
    result["shown"] = {k: shown[k] for k in ("attribute_agreement", "distinct_1", "distinct_2", "sentences")}
    real_ids = _decode_ids(model, [s.tokens for s in sents])
    result["classifier_on_real"] = _real_agreement(model.classifier, model, real_ids, sents)
    steered = agreement(model, cases, steer=True, seed=seed, judge=judge) if model.lcgan is not None else None
    if steered is not None:
        result["lcgan"] = {k: steered[k] for k in ("attribute_agreement", "distinct_1", "distinct_2", "reward",
                                                  "mean_words", "examples")}
    if judged:
        unseen = judged[1]
        result["independent_judge"] = {
            "attribute_agreement": plain["judge_agreement"], "shown": shown["judge_agreement"],
            "on_real": _real_agreement(judge, model, _decode_ids(model, [s.tokens for s in unseen]), unseen),
            "fitted_on_sentences": len(sents) - len(unseen), "real_sentences": len(unseen),
            **({"lcgan": steered["judge_agreement"]} if steered is not None else {})}
    result["ms_per_sentence"] = ms_per_sentence(model, sorted(sents[0].attributes))
    if midi is not None:
        result["truth"] = truth_on_midi(model, midi, seed=seed, limit=midi_limit)
    result.update({"model": str(path), "use_attributes": model.config.use_attributes,
                   "trained_steps": meta["extra"].get("train", {}).get("step"), "captions": len(rows)})
    return result


@torch.no_grad()
def _real_agreement(classifier, model, ids, sents) -> float:
    """The same pick-within-category test on real sentences that carry exactly one label of a
    category: what ``classifier`` achieves on human text (the ceiling for generated text)."""
    index = {a: i for i, a in enumerate(model.config.attributes)}
    by_cat: dict[str, list[str]] = {}
    for label in model.config.attributes:
        by_cat.setdefault(text.category(label), []).append(label)
    logits = classifier(ids)
    hits = total = 0
    for row, s in zip(logits, sents):
        for cat, labels in by_cat.items():
            present = [lb for lb in labels if lb in s.attributes]
            if len(labels) < 2 or cat == "recording" or len(present) != 1:
                continue
            cols = [index[lb] for lb in labels]
            hits += labels[int(row[cols].argmax())] == present[0]
            total += 1
    return hits / max(1, total)
