"""The CPU priority a performance asks for.

A performance runs at nice ``PERFORMANCE_NICE`` (PulseAudio asks rtkit for the same, and audio
setups grant it to the audio group), so a busy desktop's programs no longer stretch its start-up or
starve its control threads; the clock and the model's thread take real-time priority on top
(``engine.player``, ``engine.engine``). Threads doing background work (the commentary) go back
to 0. Where the system refuses, the music plays at the ordinary priority.
"""
from __future__ import annotations

import os
import threading

PERFORMANCE_NICE = -11
PLAYING_COMMANDS = ("perform", "gui")  # the commands that ask for it as they start


def ask_for_priority() -> bool:
    """The calling thread, and the threads and processes it starts from now on, at
    ``PERFORMANCE_NICE``; False where it is not allowed."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PERFORMANCE_NICE)
        return True
    except (AttributeError, PermissionError, OSError):
        return False


def background_priority() -> None:
    """The calling thread back at nice 0 (always allowed: it only gives priority up)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 0)
    except (AttributeError, PermissionError, OSError):
        pass
