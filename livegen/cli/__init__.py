"""The ``livegen`` command. Bad input ends in one line on stderr and a non-zero exit, never a traceback,
and so does Ctrl-C, at any moment.

The commands import what they run inside their functions, each import saying what it loads:
``livegen --help`` starts without numpy, torch, Qt or OpenCV, and so does the output clock, a
process of its own that imports this module again as the program's main one (see engine/player.py).
"""
from __future__ import annotations

import os
import sys


def _exit_interrupted() -> None:
    print("livegen: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _interrupted_before_main(kind, value, traceback) -> None:
    """Ctrl-C while this module loads, before ``main`` catches it: one line and exit status 130, as
    ``main`` says it; anything else goes to the hook there was."""
    if issubclass(kind, KeyboardInterrupt):
        _exit_interrupted()
    _excepthook_before_livegen(kind, value, traceback)


_excepthook_before_livegen = sys.excepthook
sys.excepthook = _interrupted_before_main

import argparse  # after the hook: Ctrl-C while these load is quiet too
import signal

from livegen.cli import camera, comment, emg, midi, models, panel, perform
from livegen.errors import UserError
from livegen.train.distributed import rank


def _on_ctrl_c(signum, frame) -> None:
    """Ctrl-C raises KeyboardInterrupt, as Python's own handler does, except in the middle of an
    import: there it ends livegen at once, because an exception raised into a library's
    initialisation can abort the process (torch's C++) or surface as another error."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            _exit_interrupted()
        frame = frame.f_back
    raise KeyboardInterrupt


def _say(text: str) -> None:
    print(f"livegen: {text}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livegen", description="A real-time instrument: gestures steer "
                                "generative models that stream MIDI and record the take.")
    sub = p.add_subparsers(dest="command", required=True)

    for commands in (perform, midi, models, camera, emg, panel, comment):  # comment after perform: --live takes its flags
        commands.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    ctrl_c_before = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        sys.excepthook = _excepthook_before_livegen  # main catches Ctrl-C itself; the panel's Qt keeps its hook
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        _say(f"error: {exc}" if rank() == 0 else f"error (process {rank()}): {exc}")
        return 2
    except KeyboardInterrupt:
        ctrl_c_before = signal.SIG_DFL  # a second Ctrl-C while leaving ends it at once, silently
        _say("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        _say(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        return 1
    finally:
        if ctrl_c_before is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, ctrl_c_before)


if __name__ == "__main__":
    sys.exit(main())
