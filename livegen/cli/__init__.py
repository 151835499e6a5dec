"""The ``livegen`` command. Bad input ends in one line on stderr and exit status 2, never a
traceback, and Ctrl-C, at any moment, in one line and 130 (or 0: the way to stop a performance).

Global options (before or after the command): ``-v``/``-q`` choose how much the terminal shows,
``--log-file`` appends every line to a file as well (livegen/messages.py); ``--version``.

The commands import what they run inside their functions, each import saying what it loads:
``livegen --help`` starts without numpy, torch, Qt or OpenCV, and so does the output clock, a
process of its own that imports this module again as the program's main one (see engine/player.py).
"""
from __future__ import annotations

import os
import sys


def _exit_interrupted() -> None:
    # printed, not logged: this can land while the logging module itself is still loading
    print("livegen: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _interrupted_before_main(kind, value, traceback) -> None:
    """Ctrl-C while this module loads, before ``main`` catches it: one line and exit status 130, as
    ``main`` says it; anything else goes to the hook there was."""
    if issubclass(kind, KeyboardInterrupt):
        _exit_interrupted()
    _excepthook_before_livegen(kind, value, traceback)


def _interrupted_where_python_cannot_raise(unraisable) -> None:
    """Ctrl-C inside a callback Python cannot raise from (importlib's module-lock weakref, while
    modules load) would print "Exception ignored" with a traceback and then be lost, the take
    playing on: it ends livegen as any Ctrl-C while loading does."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _exit_interrupted()
    _unraisablehook_before_livegen(unraisable)


_excepthook_before_livegen = sys.excepthook
sys.excepthook = _interrupted_before_main
_unraisablehook_before_livegen = sys.unraisablehook
sys.unraisablehook = _interrupted_where_python_cannot_raise

import argparse  # after the hook: Ctrl-C while these load is quiet too
import signal
import time
import traceback

import livegen
from livegen import messages
from livegen.cli import camera, comment, emg, learn, midi, midi_learn, models, panel, perform
from livegen.errors import UserError
from livegen.messages import debug, say, warn
from livegen.train.distributed import rank

EXIT_STATUSES = """\
exit status:
  0    done; also a performance stopped with Ctrl-C, --duration or OSC's /stop
  1    a system error: a file, device or MIDI port failed under livegen, or a take failed
  2    bad input: a wrong flag, value, file, port or preset (one line: livegen: error: ...)
  130  interrupted with Ctrl-C outside a take: perform starting up, train, eval, render, ...

-v, -q and --log-file go before or after the command. More: docs/command-line.md"""


def _on_ctrl_c(signum, frame) -> None:
    """Ctrl-C raises KeyboardInterrupt, as Python's own handler does, except in the middle of an
    import: there it ends livegen at once, because an exception raised into a library's
    initialisation can abort the process (torch's C++) or surface as another error."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            _exit_interrupted()
        frame = frame.f_back
    raise KeyboardInterrupt


def version() -> str:
    """The installed livegen's version, else (run from a checkout) the package's own."""
    import importlib.metadata  # 40 ms: only for --version and a --log-file's first line

    try:
        return importlib.metadata.version("livegen")
    except importlib.metadata.PackageNotFoundError:
        return livegen.__version__


class _PrintVersion(argparse.Action):
    """``--version``: ``livegen VERSION``, looked up only when asked."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"livegen {version()}")
        parser.exit()


def _add_global_options(parser: argparse.ArgumentParser, on_a_command: bool) -> None:
    """-v, -q and --log-file. On a command they have no default (``argparse.SUPPRESS``), so that
    given before the command they are not set back by the command's parser."""
    group = parser.add_argument_group("messages")
    loudness = group.add_mutually_exclusive_group()
    unset = argparse.SUPPRESS if on_a_command else 0
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=unset,
                          help="also show debug detail")
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=unset,
                          help="show only warnings and errors")
    group.add_argument("--log-file", metavar="FILE", default=argparse.SUPPRESS if on_a_command else None,
                       help="also append every message, timestamped, to FILE (errors too, whatever -q hides; "
                            "the folder is made when missing)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livegen", description="A real-time instrument: gestures steer generative "
                                "models that stream MIDI and record the take.", epilog=EXIT_STATUSES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_PrintVersion, help="print livegen's version and exit")
    _add_global_options(p, on_a_command=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for commands in (perform, midi, midi_learn, models, camera, emg, learn, panel, comment):
        commands.add_commands(sub)
    for command in sub.choices.values():
        _add_global_options(command, on_a_command=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (the table in ``livegen --help``)."""
    argv = sys.argv[1:] if argv is None else argv
    ctrl_c_before = signal.signal(signal.SIGINT, _on_ctrl_c)
    started, status = time.monotonic(), None
    try:
        sys.excepthook = _excepthook_before_livegen  # main catches Ctrl-C itself; the panel's Qt keeps its hook
        args = build_parser().parse_args(argv)
        messages.configure(args.verbosity, args.log_file)
        if args.log_file:
            messages.file_only(f"started: livegen {' '.join(argv)} (livegen {version()}, in {os.getcwd()})")
        debug(f"livegen {' '.join(argv)}: Python {sys.version.split()[0]}, pid {os.getpid()}, in {os.getcwd()}")
        status = args.func(args)
    except UserError as exc:
        say(f"error: {exc}" if rank() == 0 else f"error (process {rank()}): {exc}")
        status = 2
    except KeyboardInterrupt:
        ctrl_c_before = signal.SIG_DFL  # a second Ctrl-C while leaving ends it at once, silently
        warn("interrupted")
        status = 130
    except BrokenPipeError:
        status = 0
    except OSError as exc:
        say(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        status = 1
    except Exception:
        messages.file_only(f"crashed:\n{traceback.format_exc().rstrip()}")  # the terminal gets Python's own
        raise
    finally:
        if status is not None:
            messages.file_only(f"ended: exit status {status} after {time.monotonic() - started:.1f} s")
        messages.reset()
        if ctrl_c_before is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, ctrl_c_before)
    return status


if __name__ == "__main__":
    sys.exit(main())
