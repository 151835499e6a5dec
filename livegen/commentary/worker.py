"""Live commentary in a worker thread: a sentence every N bars, or on request, never blocking anyone.

API for a panel (everything but ``start``/``stop`` returns at once and may be called from any thread)::

    worker = CommentaryWorker(engine, every_bars=8)   # engine: a running livegen Engine
    worker.start()                                    # loads nothing: pass a Commentator to reuse one
    worker.request()                                  # a sentence now (the next one the worker writes)
    for comment in worker.drain():                    # new Comments since the last drain (a Qt timer)
        panel.show(comment.text, comment.attributes)  # comment.line() = text + "[attributes]"
    worker.history                                    # every Comment so far (a copy)
    worker.error                                      # None, or the last failure as one line
    worker.faults.count                               # failures it lived through (each kind said once)
    worker.stop()                                     # joins the thread (at most one sentence, <0.2 s)

The source is either an Engine (its ``sent_messages`` ring buffer: the notes actually played, and
``now()``), or any callable returning ``(notes, now)`` with ``Note`` times in seconds. Only the last
``window`` seconds are described. Each Comment is appended, as one JSON line, to ``history_path``
as soon as it is written (default for an engine that records ``take.mid``: ``take.commentary.jsonl``
beside it), so a crash loses nothing already shown.

Generation runs in this worker's own thread: the engine's generator and clock, and the GUI's
event loop, never wait for it; the worker only copies the engine's ring buffer. A sentence that
fails (a bad window, a failing model) is said once per kind of failure and counted in ``faults``;
the next one comes at its time.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from livegen.commentary.attributes import WINDOW_SECONDS, notes_from_messages
from livegen.commentary.commentator import Comment, Commentator
from livegen.errors import UserError
from livegen.faults import Faults, run_steps
from livegen.priority import background_priority

BEATS_PER_BAR = 4


def history_path_for(recording: str | Path) -> Path:
    """take.mid -> take.commentary.jsonl (beside the recording)."""
    p = Path(recording)
    return p.with_name(p.stem + ".commentary.jsonl")


class CommentaryWorker:
    def __init__(self, source, commentator: Commentator | None = None, every_bars: float = 8,
                 bpm: float | None = None, window: float = WINDOW_SECONDS, history_path: str | Path | None = None,
                 seed: int = 0, use_lcgan: bool = True, log: Callable[[str], None] | None = None):
        if every_bars <= 0:
            raise UserError("--every-bars must be positive")
        self.source = source
        self._commentator = commentator
        self._commentator_args = {"seed": seed, "use_lcgan": use_lcgan}
        self.bpm = bpm or getattr(getattr(source, "settings", None), "bpm", None) or 120.0
        self.interval = every_bars * BEATS_PER_BAR * 60.0 / self.bpm
        self.window = window
        record = getattr(source, "record", None)
        self.history_path = Path(history_path) if history_path else (history_path_for(record) if record else None)
        self.log = log or (lambda _text: None)
        self.error: str | None = None
        self.faults = Faults("the commentary", "the next sentence comes at its time; if none ever does, switch "
                             "the commentary off and report this line", self._report)
        self._history: list[Comment] = []
        self._new: queue.SimpleQueue[Comment] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._requested = False
        self._due = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- the panel's side ----------------------------------------------------------------------

    def start(self) -> "CommentaryWorker":
        self._thread = threading.Thread(target=self._run, name="livegen-commentary", daemon=True)
        self._thread.start()
        return self

    def request(self) -> None:
        """Write a sentence as soon as the worker is free (it does not wait for the next N bars)."""
        self._requested = True
        self._wake.set()

    def set_interval(self, seconds: float) -> None:
        """Seconds between sentences from now on (the next one is due ``seconds`` from now)."""
        self.interval = seconds
        self._due = time.monotonic() + seconds
        self._wake.set()

    def drain(self) -> list[Comment]:
        out = []
        while True:
            try:
                out.append(self._new.get_nowait())
            except queue.Empty:
                return out

    @property
    def history(self) -> list[Comment]:
        with self._lock:
            return list(self._history)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the worker thread -----------------------------------------------------------------------

    def _snapshot(self):
        """(notes, programs, drums, now) from the source; the engine's deque is copied, never locked."""
        if callable(self.source):
            notes, now = self.source()
            return list(notes), (0,), False, now
        for _ in range(10):
            try:
                messages = list(self.source.sent_messages)
                break
            except RuntimeError:  # appended to while copied: copy again
                continue
        else:
            messages = []
        now = self.source.now()
        recent = [(t, m) for t, m in messages if t >= now - self.window - 10.0]  # sounding notes start earlier
        notes, programs, drums = notes_from_messages(recent, now)
        program = getattr(getattr(self.source, "settings", None), "program", None)
        if program is not None and not any(m[0] & 0xF0 == 0xC0 for _, m in recent):
            programs = [program]
        return notes, programs, drums, now

    def _report(self, text: str) -> None:
        self.error = text
        self.log(text)

    def _run(self) -> None:
        background_priority()  # a sentence can wait: the music and the other programs come first
        try:
            if self._commentator is None:
                self._commentator = Commentator(**self._commentator_args)
        except Exception as exc:
            self._report(f"the commentary model could not be loaded: {exc}")
            return
        self._due = time.monotonic() + self.interval
        run_steps(self._step, self._stop, self.faults)

    def _step(self) -> bool:
        """Wait until a sentence is due or asked for, then write it; True when stopped."""
        self._wake.wait(max(0.0, self._due - time.monotonic()))
        self._wake.clear()
        if self._stop.is_set():
            return True
        if self._requested or time.monotonic() >= self._due:
            self._requested = False
            self._due = time.monotonic() + self.interval
            self._write_one()
        return False

    def _write_one(self) -> None:
        notes, programs, drums, now = self._snapshot()
        recent = [n for n in notes if n.end > now - self.window]
        if not recent:
            return  # nothing played lately: nothing to say
        comment = self._commentator.comment(recent, now, programs, drums, seconds=self.window)
        with self._lock:
            self._history.append(comment)
        self._new.put(comment)
        if self.history_path is not None:
            try:
                with open(self.history_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(comment.to_json()) + "\n")
            except OSError as exc:
                self._report(f"cannot write the commentary history {self.history_path}: {exc.strerror or exc}")
