"""``--emg SPEC`` / ``--controls emg[:SPEC]``: muscle activity plays 8 dims of the DCRNN's z.

Samples are processed in the device's reader thread the moment they arrive (a few tens of µs)
and a changed z goes straight to the engine, stamped with the samples' arrival, so nothing sits
in a queue. This source's own thread only watches: when the armband goes quiet (unplugged, out
of range, reconnecting), z holds for ``lost_hold`` s and then glides to neutral over
``lost_glide`` s; it follows the muscles again as soon as samples return. The music never stops,
so in a performance (``from_spec``) every turn of the device is one line on stderr
(``DeviceNotices``): the user hears the muscles stop steering and must read why.

With a learned mapping in the preset (``[learn] mapping``), the armband plays through it alone
(``learned``, a ``LearnedControls``): its outputs go to ``learned.sink`` and the fixed channel ->
z mapping and the gestures' themes are off; when the armband goes quiet the outputs hold.

A GUI polls ``view()`` (levels, z, device state, counters), never blocking the reader.
"""
from __future__ import annotations

import dataclasses
import operator
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from livegen import presets
from livegen.errors import UserError
from livegen.messages import say
from livegen.music.conditioning import Controls
from livegen.sensors.base import ControlSource
from livegen.sensors.emg import open_device
from livegen.sensors.emg.processing import (Calibration, Processor, calibrate_from, load_profile,
                                           profile_path)
from livegen.sensors.emg.processing import Mapping as EmgMapping
from livegen.sensors.learn.live import LearnedControls, preset_mapping
from livegen.sensors.learn.mapping import Mapping


@dataclass(frozen=True)
class EmgView:
    """What a display shows, as of the last sample."""

    state: str  # the device's: connecting, connected, lost, reconnecting, stopped, ended
    levels: tuple[float, ...]  # 0..1 per channel after calibration
    z: tuple[float, ...]  # what was last sent to the engine
    gesture: str | None  # the gesture held (learned in calibration), if any
    calibrated: bool
    stats: dict  # samples, parse_errors, dropped, resyncs, reconnects, clamped, faults
    error: str | None


class RateMeter:
    """Samples per second between the first and the last arrival (the first block's samples
    arrived at the start of that span, so they are not counted in it)."""

    def __init__(self):
        self.first = self.last = None
        self.samples = self.first_block = 0

    def add(self, n: int, arrival: float) -> None:
        if self.first is None:
            self.first, self.first_block = arrival, n
        self.last = arrival
        self.samples += n

    @property
    def seconds(self) -> float:
        return 0.0 if self.first is None else self.last - self.first

    @property
    def rate_hz(self) -> float | None:
        return (self.samples - self.first_block) / self.seconds if self.seconds > 0 else None


class DeviceNotices:
    """One line each time the device turns (called in its reader thread, through its ``on_state``
    and ``on_retry`` hooks): it cannot connect yet (why and what to do, once per reason), it is
    lost, it is back, it gave up for good (no Bluetooth: said once), a replay ended; and what
    it lives with (``on_notice``: garbage skipped, a fault survived)."""

    def __init__(self, device, spec: str, say: Callable[[str], None] = say):
        self.device, self.spec, self.say = device, spec, say
        self._reasons: set[str] = set()  # connection failures said since it last streamed
        self._troubled = False  # a line said it is not streaming
        device.on_state, device.on_retry, device.on_notice = self.on_state, self.on_retry, self.on_notice

    def on_notice(self, text: str) -> None:
        self.say(f"EMG {self.spec}: {text}")

    def on_state(self, state: str) -> None:
        device = self.device
        if state == "connected":
            if self._troubled:
                self.say(f"EMG {self.spec} reconnected: the muscles play z again" if device.stats.reconnects
                         else f"EMG {self.spec} connected: the muscles play z")
            self._troubled, self._reasons = False, set()
        elif state == "lost":
            self._troubled = True
            self.say(f"EMG {self.spec} is off, the music plays on with z at neutral: {device.error}" if device.error
                     else f"EMG {self.spec} lost: {device.detail}; z glides to neutral while livegen reconnects")
        elif state == "ended":
            self.say(f"EMG {self.spec}: the recording ended; z glides to neutral")

    def on_retry(self, reason: str) -> None:
        if self.device.state != "connecting" or reason in self._reasons:
            return  # after a loss the "lost" line said it all; a failure said once is enough
        self._reasons.add(reason)
        self._troubled = True
        self.say(f"EMG {self.spec} is not connected: {reason}; livegen keeps trying, z stays neutral meanwhile")


class EmgControls(ControlSource):
    name = "emg"
    watch_every = 0.02  # s between checks for a quiet armband (and glide steps)
    stall = 0.2  # s without samples before the armband counts as quiet
    RECENT_SECONDS = 2.0  # raw samples kept: a mapping put on the armband settles on them (0.7 s by default)

    def __init__(self, device, processor: Processor, initial: Controls, settings, calibrated: bool,
                 learned: LearnedControls | None = None):
        super().__init__()
        self._learned = learned
        self._recent: deque[np.ndarray] = deque()  # the last RECENT_SECONDS of raw blocks, to prime a mapping
        self._recent_samples = 0
        self.device, self.processor, self.settings = device, processor, settings
        self.calibrated = calibrated
        self.current = initial
        z = [float(v) for v in initial.z[:8]] if initial.z else []
        self.z_sent = tuple(z + [0.0] * (8 - len(z)))  # floats, not an array: compared at every sample
        self.rate = RateMeter()
        self.latency: deque[float] = deque(maxlen=20000)  # s from a block's arrival to its z in the engine
        self.process_seconds: deque[float] = deque(maxlen=20000)  # per block
        self.publishes = 0
        self.notices: DeviceNotices | None = None  # a performance's lines about the device
        self._tap: list[np.ndarray] | None = None  # envelopes kept while the panel calibrates
        self._lock = threading.Lock()  # the reader thread and the watchdog both publish
        self._last_arrival: float | None = None
        self._quiet_since: float | None = None
        self._glide_from = self.z_sent
        self._gesture: str | None = None
        self._gesture_since = 0.0
        self._theme_recalled: str | None = None

    @classmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "EmgControls":
        loaded = presets.load(preset)
        settings = loaded.emg
        mapping = preset_mapping(loaded.learn.mapping, "emg")
        spec = args or settings.source
        device = open_device(spec)
        device.open()  # a wrong port is an error now, before the engine starts
        source = cls.for_device(device, settings, initial, mapping)
        source.notices = DeviceNotices(device, spec)  # what it finds later must not stop the music
        return source

    @classmethod
    def for_device(cls, device, settings, initial: Controls | None = None,
                   mapping: Mapping | None = None) -> "EmgControls":
        """``mapping``: a learned mapping to play through (None: z from the channels, as the preset says)."""
        calibration = load_profile(settings.user)
        calibrated = calibration is not None
        if calibration is None:
            calibration = Calibration.default(device.value_range, device.channels, device.rectified)
        processor = Processor.for_device(device, EmgMapping.from_preset(settings), calibration)
        learned = LearnedControls(mapping).for_device(device, calibration) if mapping is not None else None
        return cls(device, processor, initial or Controls(), settings, calibrated, learned)

    @property
    def learned(self) -> LearnedControls | None:
        return self._learned

    @learned.setter
    def learned(self, controls: LearnedControls | None) -> None:
        """A mapping put on a playing armband starts from its last samples, not from silence."""
        with self._lock:
            for block in self._recent if controls is not None else ():
                controls.prime(block)
            self._learned = controls

    def initial(self) -> Controls:
        return self.current

    def start(self, sink, clock) -> None:
        """Start the device and follow it (a wrong port was a ``UserError`` at ``open``; what the
        device meets later, a missing adapter or a pulled cable, goes to ``notices``)."""
        self._sink, self._clock = sink, clock
        self.device.start(self._on_samples)
        super().start(sink, clock)

    def stop(self) -> None:
        super().stop()
        self.device.stop()

    def begin_capture(self) -> None:
        """Start keeping envelopes (device units) for a calibration taken while the music plays."""
        with self._lock:
            self._tap = []

    def end_capture(self) -> np.ndarray:
        """The envelopes kept since ``begin_capture``, (n, channels)."""
        with self._lock:
            blocks, self._tap = self._tap or [], None
        return np.concatenate(blocks) if blocks else np.zeros((0, self.processor.channels))

    def calibrate(self, rest: np.ndarray, top: np.ndarray, device: str) -> list[int]:
        """Use (and save to the user's profile) a calibration from captured rest and max
        envelopes; returns the channels that hardly rose above rest."""
        calibration, weak = calibrate_from(rest, top, device, self.processor.mapping)
        calibration.save(profile_path(self.settings.user))
        with self._lock:
            self.processor.set_calibration(calibration)
            self.calibrated = True
        return weak

    def view(self) -> EmgView:
        with self._lock:
            return EmgView(self.device.state, tuple(float(v) for v in self.processor.levels),
                           self.z_sent, self._gesture, self.calibrated, self.counts(), self.device.error)

    def counts(self) -> dict:
        """The device's counters, with the values processing clamped and the faults both threads survived."""
        return {**self.device.stats.as_dict(), "clamped": self.processor.clamped,
                "faults": self.device.faults.count + self.faults.count}

    # --- the reader thread ------------------------------------------------------------------------

    def _on_samples(self, block: np.ndarray, arrival: float) -> None:
        started = time.perf_counter()
        with self._lock:
            self.rate.add(len(block), arrival)
            levels = self.processor.run(block)[-1]
            if self.processor.clamped:
                low, high = self.processor.limits
                self.device.notice_once("clamped", f"samples beyond the device's range {low:g}..{high:g} were "
                                        "clamped (counted in clamped): noise on the line, or a serial board that "
                                        "needs its range, like range=0..1023")
            if self._tap is not None:
                self._tap.append(self.processor.last_envelopes.copy())
            self._last_arrival, self._quiet_since = arrival, None
            self._keep_recent(block)
            if self._learned is not None:
                self._learned.feed_emg(block, arrival, self._stamp(arrival))
            else:
                theme = self._recall(levels, arrival)
                self._send(self.processor.z(levels).tolist(), arrival, theme)
        self.process_seconds.append(time.perf_counter() - started)

    def _keep_recent(self, block: np.ndarray) -> None:
        self._recent.append(np.array(block, dtype=float))
        self._recent_samples += len(block)
        keep = self.RECENT_SECONDS * self.device.nominal_rate_hz
        while self._recent_samples - len(self._recent[0]) >= keep:
            self._recent_samples -= len(self._recent.popleft())

    def _recall(self, levels: np.ndarray, now: float) -> str | None:
        """A learned gesture held for ``gesture_hold`` s recalls its theme (once per hold)."""
        if not self.settings.gestures:
            return None
        gesture = self.processor.gesture(levels)
        if gesture != self._gesture:
            self._gesture, self._gesture_since = gesture, now
            return None
        if gesture in (None, "rest") or now - self._gesture_since < self.settings.gesture_hold:
            return None
        theme = self.processor.calibration.gestures[gesture].theme
        return theme if theme != self._theme_recalled else None

    def _send(self, z: list[float], arrival: float, theme: str | None = None) -> None:
        moved = max(map(abs, map(operator.sub, z, self.z_sent)))
        if theme is None and (moved == 0 or moved < self.settings.publish_step and any(z)):  # any(): not neutral
            return
        self.z_sent = z = tuple(z)
        changes: dict = {"z": z}
        if theme is not None:
            self._theme_recalled = changes["theme"] = theme
            changes["toward"], changes["mix"] = None, 0.0
        controls = dataclasses.replace(self.current, **changes)
        self.publish(controls, self._stamp(arrival))
        self.publishes += 1
        self.latency.append(time.monotonic() - arrival)

    def _stamp(self, arrival: float) -> float | None:
        """Performance time of samples that arrived at ``arrival`` (monotonic)."""
        return None if self._clock is None else self._clock() - (time.monotonic() - arrival)

    # --- the watchdog thread ----------------------------------------------------------------------

    def _step(self) -> bool:
        """Every ``watch_every`` s: is the armband quiet? Then hold z, and later glide it to neutral."""
        if self._stop.wait(self.watch_every):
            return True
        now = time.monotonic()
        with self._lock:
            quiet = self.device.state in ("lost", "reconnecting", "ended") or (
                self._last_arrival is None or now - self._last_arrival > self.stall)
            if not quiet or self.learned is not None:  # a learned mapping's outputs hold
                return False
            if self._quiet_since is None:
                self._quiet_since, self._glide_from = now, self.z_sent
            into = now - self._quiet_since - self.settings.lost_hold
            if into <= 0:
                return False
            left = max(0.0, 1.0 - into / self.settings.lost_glide) if self.settings.lost_glide > 0 else 0.0
            self._send([v * left for v in self._glide_from], now)
        return False


def require_device_alive(source: EmgControls) -> None:
    """A fatal device error (no adapter, no armband found) as a ``UserError``."""
    if source.device.error and source.device.state == "lost":
        raise UserError(source.device.error)
