"""``livegen comment``: sentences about a MIDI file, or about the live performance beside it."""
from __future__ import annotations

import json

from livegen.cli.perform import add_performance_options, check_paths, play
from livegen.errors import UserError
from livegen.messages import say


def add_commands(sub) -> None:
    """Register ``comment``: with ``--live`` it takes ``perform``'s flags but the OSC ones."""
    s = sub.add_parser("comment", help="write commentary about a MIDI file or the live performance",
                       description="Sentences about the music, each shown with the attributes it was "
                       "conditioned on: about a MIDI file (--midi), or about a headless performance as it plays "
                       "(--live). With --live, the flags in the groups below work as for `livegen perform` (its "
                       "OSC control aside); the history is saved beside --record as NAME.commentary.jsonl.")
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--midi", metavar="FILE", help="describe this MIDI file (sentences spread over it)")
    source.add_argument("--live", action="store_true", help="perform headless and comment every few bars")
    s.add_argument("--n", type=int, default=3, help="sentences to write (--midi; default 3)")
    s.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the commentary (and, with --live, the music)")
    s.add_argument("--no-lcgan", action="store_true", help="sample z from the prior, not the LC-GAN actor")
    s.add_argument("--json", action="store_true", help="one JSON object per sentence, per line")
    s.add_argument("--every-bars", type=float, default=4, metavar="N",
                   help="--live: a sentence every N bars (default 4)")
    s.add_argument("--window", type=float, default=15.0, metavar="SECONDS",
                   help="seconds of music each sentence describes")
    s.add_argument("--commentary-model", metavar="FILE", help="commentary checkpoint (default: the shipped one)")
    performance = add_performance_options(s, network=False, seed=False, heading="with --live: ")
    s.set_defaults(func=cmd_comment, live_only=[(a.dest, a.option_strings[0]) for a in performance])


def _emit(comment, as_json: bool) -> None:
    print(json.dumps(comment.to_json()) if as_json else comment.line(), flush=True)


def cmd_comment(args) -> int:
    if args.live:
        check_paths(args)  # before the commentary model loads
    else:
        given = [flag for dest, flag in args.live_only if getattr(args, dest) not in (None, False)]
        if given:
            raise UserError(f"{', '.join(given)}: for --live only; --midi describes a file")
    from livegen.commentary.commentator import Commentator  # loads numpy: only when the command runs

    if args.window <= 0:
        raise UserError("--window must be a positive number of seconds")
    commentator = Commentator(args.commentary_model, seed=args.seed, use_lcgan=not args.no_lcgan)
    if args.live:
        return _live(args, commentator)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    from livegen.commentary.attributes import read_midi_file  # loads numpy: only when the command runs

    notes, programs, drums = read_midi_file(args.midi)
    if not notes:
        raise UserError(f"{args.midi} has no pitched notes to comment on")
    end = max(n.end for n in notes)
    start = min(n.start for n in notes)
    # the windows end evenly through the piece, the last at its end: the commentary follows it
    for i in range(args.n):
        at = start + (end - start) * (i + 1) / args.n
        _emit(commentator.comment(notes, max(at, start + min(args.window, end - start)), programs, drums,
                                  seconds=args.window), args.json)
    return 0


class _LivePrinter:
    """Started with each take by ``livegen perform``'s loop; prints what the worker writes."""

    def __init__(self, engine, record, args, commentator):
        from livegen.commentary.worker import CommentaryWorker  # loads numpy: only when the command runs

        self.as_json = args.json
        self.worker = CommentaryWorker(engine, commentator, every_bars=args.every_bars, window=args.window,
                                       log=say).start()
        if record:
            say(f"commentary history: {self.worker.history_path}")

    def poll(self) -> None:
        for comment in self.worker.drain():
            _emit(comment, self.as_json)

    def stop(self) -> None:
        self.worker.stop()
        self.poll()


def _live(args, commentator) -> int:
    if args.every_bars <= 0:
        raise UserError("--every-bars must be positive")
    return play(args, companion=lambda engine, record: _LivePrinter(engine, record, args, commentator))
