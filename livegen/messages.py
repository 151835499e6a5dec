"""What livegen tells the person running it: one line each, ``livegen: ...`` on stderr.

Every such line goes through the ``livegen`` logger, so the command line's ``-q`` (warnings and
errors only), ``-v`` (debug detail too) and ``--log-file FILE`` (timestamped lines appended: a
booth operator reads last night's failures in the morning) govern them all. A line's text is the
same everywhere; its level only decides where it shows. ``say`` reads the level off the line,
because most parts only get a ``log`` callable and write ``warning: ...`` or ``error: ...``
themselves; ``warn`` and ``debug`` give it outright.

Until ``configure`` runs (a test, a spawned process) lines of information and above reach stderr.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from livegen.errors import UserError

LOGGER = logging.getLogger("livegen")
FILE_FORMAT = "%(asctime)s.%(msecs)03d livegen[%(process)d]: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _Terminal(logging.Handler):
    """``livegen: TEXT`` on stderr as it is when the line is written (a test's capture, a pipe), not
    as it was when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"livegen: {record.getMessage()}", file=sys.stderr, flush=True)

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # stderr is gone (a closed pipe): there is nowhere left to say it


def _for_the_terminal(record: logging.LogRecord) -> bool:
    return getattr(record, "terminal", True)


_terminal = _Terminal(logging.INFO)
_terminal.addFilter(_for_the_terminal)
_log_file: logging.FileHandler | None = None
LOGGER.addHandler(_terminal)
LOGGER.setLevel(logging.INFO)
LOGGER.propagate = False  # one line each, whatever handlers the root logger has


def level_of(text: str) -> int:
    """WARNING for ``warning: ...``, ERROR for ``error: ...`` (or ``error (process 2): ...``), else INFO."""
    if text.startswith("error"):
        return logging.ERROR
    if text.startswith("warning"):
        return logging.WARNING
    return logging.INFO


def say(text: str) -> None:
    """One line for the person running livegen, at the level its text names."""
    LOGGER.log(level_of(text), text)


def warn(text: str) -> None:
    """A line that must show even under ``-q`` though it does not start with ``warning:``."""
    LOGGER.warning(text)


def debug(text: str) -> None:
    """Detail shown only under ``-v`` (and written to ``--log-file`` then)."""
    LOGGER.debug(text)


def file_only(text: str) -> None:
    """A line for ``--log-file`` alone: when a command started and how it ended."""
    LOGGER.info(text, extra={"terminal": False})


def configure(verbosity: int = 0, log_file: str | None = None) -> None:
    """-1 (``-q``): warnings and errors on the terminal; 0: information too; 1 (``-v``): debug
    detail too. ``log_file`` gets information and above (debug detail with ``-v``), appended,
    whatever the terminal shows; its folder is made when missing."""
    global _log_file
    reset()
    _terminal.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))
    LOGGER.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)
    if log_file is None:
        return
    path = Path(log_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the --log-file {log_file}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))
    LOGGER.addHandler(handler)
    _log_file = handler


def reset() -> None:
    """Close the log file; the terminal shows information again (``main`` may run again in one process)."""
    global _log_file
    if _log_file is not None:
        LOGGER.removeHandler(_log_file)
        _log_file.close()
        _log_file = None
    _terminal.setLevel(logging.INFO)
    LOGGER.setLevel(logging.INFO)
