"""Exceptions a long-running thread lives through.

A sensor reader, a watchdog or a worker that ends on an unexpected exception leaves its part of
the show frozen without a word while the music plays on. So such a thread runs in steps
(``run_steps``), or a worker's jobs are ``guarded``: an exception in one step or job is recorded
in its ``Faults`` (counted; the first of its kind said in one line with what to do) and the next
step or job follows.
"""
from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Callable

from livegen.messages import warn

PAUSE = 0.05  # s after a failed step, so a step that always fails cannot spin a core


class Faults:
    """What ``owner`` (a thread's role, "the camera controls") survived: ``count`` in all,
    ``last`` as one line; each kind (exception type and where it was raised) is said once, with
    ``advice`` on what to do."""

    def __init__(self, owner: str, advice: str, say: Callable[[str], None] = warn):
        self.owner, self.advice, self.say = owner, advice, say
        self.count = 0
        self.last: str | None = None
        self._said: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def record(self, exc: BaseException) -> None:
        what, where = f"{type(exc).__name__}: {exc}", origin(exc)
        with self._lock:
            self.count += 1
            self.last = what
            first = (type(exc).__name__, where) not in self._said
            self._said.add((type(exc).__name__, where))
        if first:
            try:
                self.say(f"{self.owner} met an error and carries on: {what} (at {where}); {self.advice}. "
                         "Repeats of it are counted, not shown again")
            except Exception:  # noqa: BLE001 - a closed stderr must not end the thread it reports for
                pass


def origin(exc: BaseException) -> str:
    """Where ``exc`` was raised: file:line in function, innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown place"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def guarded(job: Callable[..., object], faults: Faults) -> Callable[..., None]:
    """``job`` for a worker thread: an exception it raises goes to ``faults`` instead of ending
    the thread (or vanishing into a future nobody reads)."""
    def run(*args) -> None:
        try:
            job(*args)
        except Exception as exc:  # noqa: BLE001 - whatever one job met, the worker takes the next
            faults.record(exc)
    return run


def run_steps(step: Callable[[], bool], stop: threading.Event, faults: Faults) -> None:
    """Call ``step`` until ``stop`` is set or ``step`` returns True (nothing more to do); an
    exception in a step goes to ``faults`` and the next step follows after ``PAUSE``."""
    while not stop.is_set():
        try:
            if step():
                return
        except Exception as exc:  # noqa: BLE001 - whatever broke, the thread lives on
            faults.record(exc)
            stop.wait(PAUSE)
