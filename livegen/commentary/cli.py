"""``livegen comment`` (a MIDI file, or the live performance), and the commentary side of
``livegen train`` / ``livegen eval``."""
from __future__ import annotations

import json
import sys

from livegen.errors import UserError


def _say(text: str) -> None:
    print(f"livegen: {text}", file=sys.stderr, flush=True)


def add_commands(sub) -> None:
    """Register ``comment``; it takes every ``perform`` flag too, for ``--live``."""
    parents = [sub.choices["perform"]] if "perform" in sub.choices else []
    s = sub.add_parser("comment", parents=parents, conflict_handler="resolve",
                       help="write commentary about a MIDI file or the live performance",
                       description="Sentences about the music, each shown with the attributes it was "
                       "conditioned on. With --live, the performance flags (--port, --record, --duration, "
                       "...) work as for `livegen perform`; the history is saved beside --record as "
                       "NAME.commentary.jsonl.")
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--midi", metavar="FILE", help="describe this MIDI file (sentences spread over it)")
    source.add_argument("--live", action="store_true", help="perform headless and comment every few bars")
    s.add_argument("--n", type=int, default=3, help="sentences to write (--midi; default 3)")
    s.add_argument("--seed", type=int, default=0, help="seeds the commentary (and, with --live, the music)")
    s.add_argument("--no-lcgan", action="store_true", help="sample z from the prior, not the LC-GAN actor")
    s.add_argument("--json", action="store_true", help="one JSON object per sentence, per line")
    s.add_argument("--every-bars", type=float, default=4, help="--live: a sentence every N bars (default 4)")
    s.add_argument("--window", type=float, default=15.0, help="seconds of music each sentence describes")
    s.add_argument("--commentary-model", metavar="FILE", help="commentary checkpoint (default: the shipped one)")
    s.set_defaults(func=cmd_comment)


def _emit(comment, as_json: bool) -> None:
    print(json.dumps(comment.to_json()) if as_json else comment.line(), flush=True)


def cmd_comment(args) -> int:
    from livegen.commentary.commentator import Commentator

    if args.window <= 0:
        raise UserError("--window must be a positive number of seconds")
    import torch

    torch.set_num_threads(1)  # one sentence is a few small steps: more threads only wait on each other
    commentator = Commentator(args.commentary_model, seed=args.seed, use_lcgan=not args.no_lcgan)
    if args.live:
        return _live(args, commentator)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    from livegen.commentary.attributes import read_midi_file

    notes, programs, drums, bpm = read_midi_file(args.midi)
    if not notes:
        raise UserError(f"{args.midi} has no pitched notes to comment on")
    end = max(n.end for n in notes)
    start = min(n.start for n in notes)
    # the windows end evenly through the piece, the last at its end: the commentary follows it
    for i in range(args.n):
        at = start + (end - start) * (i + 1) / args.n
        _emit(commentator.comment(notes, max(at, start + min(args.window, end - start)), programs, drums, bpm,
                                  seconds=args.window), args.json)
    return 0


class _LivePrinter:
    """Started with each take by ``livegen perform``'s loop; prints what the worker writes."""

    def __init__(self, engine, record, args, commentator):
        from livegen.commentary.worker import CommentaryWorker

        self.as_json = args.json
        self.worker = CommentaryWorker(engine, commentator, every_bars=args.every_bars, window=args.window,
                                       log=_say).start()
        if record:
            _say(f"commentary history: {self.worker.history_path}")

    def poll(self) -> None:
        for comment in self.worker.drain():
            _emit(comment, self.as_json)

    def stop(self) -> None:
        self.worker.stop()
        self.poll()


def _live(args, commentator) -> int:
    from livegen.cli import cmd_perform

    if args.every_bars <= 0:
        raise UserError("--every-bars must be positive")
    return cmd_perform(args, companion=lambda engine, record: _LivePrinter(engine, record, args, commentator))


def cmd_train_commentary(args) -> int:
    from livegen.train.commentary import train
    from livegen.train.distributed import rank

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, batch=args.batch, threads=args.threads,
                  resume=not args.no_resume, seed=args.seed, log=_say, max_steps=args.steps, device=args.device,
                  accum=args.accum, config_overrides={"use_attributes": False} if args.no_attributes else None)
    if rank() == 0:  # the others never validate: they know no perplexity to report
        best = state["best_val"]
        _say(f"done: {state['step']} steps, best held-out perplexity "
             f"{'(not yet: KL still annealing)' if best == float('inf') else f'{best:.1f}'} -> {args.out}")
    return 0


def cmd_eval_commentary(args) -> int:
    from livegen.train.commentary import evaluate

    r = evaluate(args.checkpoint, args.data, threads=args.threads, limit=args.limit, baseline=args.baseline)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"held-out perplexity {r['perplexity']:.1f} (ELBO bound; "
          f"reconstruction {r['perplexity_reconstruction']:.1f}), "
          f"KL {r['kl']:.2f} nats/sentence over {r['sentences']} sentences"
          + ("" if r["use_attributes"] else " (a no-attribute baseline: its attributes are zeroed)"))
    aspects = r["aspect_attributes"]
    print(f"attributes from the aspect list alone (not the sentence's own words): perplexity "
          f"{aspects['perplexity']:.1f} (reconstruction {aspects['perplexity_reconstruction']:.1f})")
    if "baseline" in r:
        print(f"the same decoder without attributes ({r['baseline']['model']}): perplexity "
              f"{r['baseline']['perplexity']:.1f} (reconstruction {r['baseline']['perplexity_reconstruction']:.1f})")
    print(f"attribute agreement {100 * r['attribute_agreement']:.1f} % "
          f"(chance {100 * r['attribute_agreement_chance']:.1f} %, "
          f"real captions {100 * r['classifier_on_real']:.1f} %); distinct-1 {r['distinct_1']:.3f}, "
          f"distinct-2 {r['distinct_2']:.3f}; {r['ms_per_sentence']:.1f} ms per sentence on one core")
    shown = r["shown"]
    print(f"as shown by `livegen comment` (filtered, reranked{', LC-GAN' if 'lcgan' in r else ''}): agreement "
          f"{100 * shown['attribute_agreement']:.1f} %, distinct-1 {shown['distinct_1']:.3f}, "
          f"distinct-2 {shown['distinct_2']:.3f}")
    if "lcgan" in r:
        lc = r["lcgan"]
        print(f"with the LC-GAN: agreement {100 * lc['attribute_agreement']:.1f} %, reward {lc['reward']:.3f} "
              f"(without {r['reward']:.3f}), distinct-1 {lc['distinct_1']:.3f}, distinct-2 {lc['distinct_2']:.3f}")
    if "independent_judge" in r:
        j = r["independent_judge"]
        print(f"independent judge (fitted on {j['fitted_on_sentences']} of these sentences): agreement "
              f"{100 * j['attribute_agreement']:.1f} % raw, {100 * j['shown']:.1f} % as shown"
              + (f", {100 * j['lcgan']:.1f} % with the LC-GAN" if "lcgan" in j else "")
              + f"; {100 * j['on_real']:.1f} % on the {j['real_sentences']} real sentences it did not see")
    return 0

