"""Ableton Link: laptops on one network share a tempo and a bar, and livegen's beat follows it.

``AbletonLink`` is a ``BeatSource`` (livegen.music.tempo) over the Link session timeline:
``TempoFollow`` steers the engine's tempo to it exactly as it does to an incoming MIDI clock.
It wraps ``LinkPython-extern`` (import name ``link``, pybind11 bindings of Ableton's Link 3)
rather than ``aalink``: its calls are synchronous, so the follower thread asks for the beat at an
instant with one call and no asyncio loop, and it ships manylinux wheels that install on
Python 3.11. ``captureAppSessionState``, the one used here, is thread-safe (not realtime-safe,
which the follower does not need).

Link's clock is not ``time.monotonic()``: on Linux it is CLOCK_MONOTONIC_RAW, which NTP does
not slew, so the two differ by an offset that drifts by up to a few hundred ppm. The offset
is measured at construction (the median over a few back-to-back reads) and measured again every
``RESYNC`` seconds, so a long set stays on Link's beat.

Joining a running session takes its tempo and bar (livegen's ``bpm`` only seeds a session it
founds); ``set_tempo`` proposes a new tempo to everyone. When two sessions meet, Link keeps the
older one, which is reliable once it is about a second older. While livegen is alone in its
session the beat source is its own Link timeline, so the engine is already on it when others join.

Enabling Link sends UDP multicast discovery (224.76.78.75:20808) on every network interface;
other Link apps on the network (Ableton Live, Bitwig, Traktor, phone apps) join the session.
"""
from __future__ import annotations

import statistics
import threading
import time

from livegen import extras
from livegen.errors import UserError
from livegen.music.tempo import MAX_BPM, MIN_BPM, BeatSource


def _import_link():
    with extras.needed("link", "Ableton Link"):
        import link  # LinkPython-extern may be missing: only a take that joins a Link session needs it
    return link


class AbletonLink(BeatSource):
    """Joins (or starts) the Link session on the local network with ``bpm`` as the initial tempo.
    ``quantum``: beats whose phase is shared with the other peers (4: the bars line up)."""

    RESYNC = 5.0  # s between measurements of the monotonic -> Link clock offset
    SAMPLES = 7  # back-to-back clock reads per measurement

    def __init__(self, bpm: float, quantum: float = 4.0):
        if not MIN_BPM <= bpm <= MAX_BPM:
            raise UserError(f"Link tempo {bpm:g} bpm is outside {MIN_BPM:g}..{MAX_BPM:g}")
        if quantum <= 0:
            raise UserError(f"Link quantum {quantum:g} must be positive (4: a bar of 4/4)")
        link = _import_link()
        self.quantum = float(quantum)
        self._lock = threading.Lock()
        self._link = link.Link(float(bpm))
        self._clock = self._link.clock()
        self._offset, self._measured = self._measure_offset(), time.monotonic()
        self._link.enabled = True

    # --- clocks ----------------------------------------------------------------------------

    def _measure_offset(self) -> float:
        """Link clock seconds minus monotonic seconds: the median over a few reads, each Link
        read set against the midpoint of the monotonic reads on either side of it."""
        offsets = []
        for _ in range(self.SAMPLES):
            before = time.monotonic()
            micros = self._clock.micros()
            after = time.monotonic()
            offsets.append(micros / 1e6 - (before + after) / 2.0)
        return statistics.median(offsets)

    def link_micros(self, at: float) -> int:
        """Link's clock (microseconds) at monotonic time ``at``."""
        with self._lock:
            if time.monotonic() - self._measured > self.RESYNC:
                self._offset, self._measured = self._measure_offset(), time.monotonic()
            offset = self._offset
        return int(round((at + offset) * 1e6))

    # --- the session -----------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._link is not None and self._link.enabled

    @property
    def peers(self) -> int:
        """Other Link apps in the session (0: livegen is alone and keeps its own timeline)."""
        return self._link.numPeers() if self.enabled else 0

    @property
    def name(self) -> str:
        n = self.peers
        return f"the Ableton Link session ({n} peer{'' if n == 1 else 's'})"

    @property
    def tempo(self) -> float | None:
        """The session's tempo now (bpm), or None while Link is off."""
        return self._link.captureAppSessionState().tempo() if self.enabled else None

    def beat_at(self, at: float) -> tuple[float, float] | None:
        """(session beat, session bpm) at monotonic time ``at``; the beat's phase modulo ``quantum``
        is the one every peer shares. None while Link is off."""
        if not self.enabled:
            return None
        micros = self.link_micros(at)
        state = self._link.captureAppSessionState()
        return state.beatAtTime(micros, self.quantum), state.tempo()

    def set_tempo(self, bpm: float) -> None:
        """Propose ``bpm`` to the whole session from now on (livegen's own tempo was changed)."""
        if not MIN_BPM <= bpm <= MAX_BPM:
            raise UserError(f"Link tempo {bpm:g} bpm is outside {MIN_BPM:g}..{MAX_BPM:g}")
        if not self.enabled:
            return
        state = self._link.captureAppSessionState()
        state.setTempo(float(bpm), self._clock.micros())
        self._link.commitAppSessionState(state)

    def close(self) -> None:
        """Leave the session (idempotent)."""
        if self._link is not None:
            self._link.enabled = False
            self._link = None
