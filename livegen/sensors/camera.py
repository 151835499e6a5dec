"""``--controls camera[:SOURCE][,KEY=VALUE...]``: a hand in front of a camera steers the music.

Height steers pitch, left-right steers density. Settings come from the ``[camera]`` section of
the default preset (``preset=NAME`` picks another, e.g. the one ``livegen calibrate camera``
saved), then overrides: ``camera:1``, ``camera:clip.avi,tracker=motion``, ``camera:mirror=false``.

Capture runs in its own thread (newest frame only), tracking and mapping in this source's
thread, and every value is published with its capture time, so the engine measures latency
from the moment the camera saw the hand. A camera that stops delivering never stops the music:
the controls hold, glide to neutral, and follow the hand again when the camera returns.

With a learned mapping of the hand in the preset (``[learn] mapping`` reading ``hand_x``,
``hand_y``), the hand plays through it instead (``learned``): its outputs go to ``learned.sink``,
and they hold while no hand is seen.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque

import numpy as np

from livegen import presets
from livegen.errors import UserError
from livegen.messages import say
from livegen.music.conditioning import Controls
from livegen.sensors.base import ControlSource, clamp_controls
from livegen.sensors.learn.live import LearnedControls, preset_mapping
from livegen.vision.capture import ENDED, FrameGrabber, FrameSource, open_frame_source
from livegen.vision.mapping import HandMapper, MappingSettings
from livegen.vision.trackers import Tracker, make_tracker

OVERRIDES = {"source": str, "tracker": str, "preset": str, "mirror": bool, "dead_zone": float,
             "min_cutoff": float, "beta": float, "lost_hold": float, "lost_glide": float}


def camera_settings(args: str = "", preset: str | None = None):
    """The ``[camera]`` preset section with ``SOURCE,KEY=VALUE,...`` overrides applied."""
    changes: dict = {}
    for item in filter(None, (part.strip() for part in args.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            key, value = "source", item
        key = key.strip().replace("-", "_")
        if key not in OVERRIDES:
            raise UserError(f"--controls camera: unknown setting {key!r} (known: {', '.join(OVERRIDES)})")
        kind = OVERRIDES[key]
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                changes[key] = value.lower() in ("true", "1", "yes")
            else:
                changes[key] = kind(value)
        except ValueError:
            raise UserError(f"--controls camera: {key}={value} is not a {kind.__name__}") from None
    camera = presets.load(changes.pop("preset", preset)).camera
    return dataclasses.replace(camera, **changes)  # checked again by CameraPreset.__post_init__


class CameraControls(ControlSource):
    """Frames -> tracker -> mapping -> engine, in this source's thread; see the module docstring."""

    name = "camera"
    publish_step = 0.004  # smaller changes are not sent: a resting hand must not keep the engine regenerating
    stall = 0.25  # s without a frame before the hand counts as lost
    reconnect_every = 1.0  # s between tries to reopen a camera that stopped delivering

    def __init__(self, source: FrameSource, tracker: Tracker, mapper: HandMapper, initial: Controls,
                 pace: bool = False, log=say, learned: LearnedControls | None = None):
        super().__init__(log)
        self.learned = learned
        self.source, self.tracker, self.mapper = source, tracker, mapper
        self.pace, self.log = pace, log
        self.current = initial
        self.frames = self.frames_with_hand = 0
        self.latency: deque[float] = deque(maxlen=2000)  # s from capture to the value handed to the engine
        self.tracker_seconds: deque[float] = deque(maxlen=2000)
        self._latest: tuple[np.ndarray | None, tuple[float, float] | None] = (None, None)
        self._grabber: FrameGrabber | None = None  # started by the first step
        self._last_frame = 0.0  # when the newest frame was captured (the grabber's start before the first)
        self._ended_said = False

    def latest_frame(self) -> tuple[np.ndarray | None, tuple[float, float] | None]:
        """The newest frame (BGR) and the hand position found in it, for displays; read-only."""
        return self._latest

    @property
    def state(self) -> str:
        """"running", "lost" (reconnecting) or "ended", for status lights."""
        return self._grabber.state if self._grabber is not None else "running"

    @classmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "CameraControls":
        settings = camera_settings(args, preset)
        source = open_frame_source(settings.source, lambda text: say(f"warning: {text}"))
        tracker = make_tracker(settings.tracker, settings)
        mapper = HandMapper(MappingSettings.from_preset(settings), neutral=(initial.pitch, initial.density))
        mapping = preset_mapping(presets.load(preset).learn.mapping, "camera")
        learned = LearnedControls(mapping) if mapping is not None else None
        return cls(source, tracker, mapper, initial, pace=not source.live, learned=learned)

    def _step(self) -> bool:
        """Track the newest frame, or glide to neutral when none came for ``stall`` s."""
        grabber = self._grabber
        if grabber is None:
            grabber = self._grabber = FrameGrabber(self.source, drop_stale=True, pace=self.pace,
                                                   reconnect_every=self.reconnect_every, log=self.log).start()
            self._last_frame = time.monotonic()
        frame = grabber.next(timeout=0.05)
        if frame is not None:
            self._last_frame = frame.t
            position = self._locate(frame.image)
            self._latest = (frame.image, position)
            if self.learned is None:
                self._send(self.mapper.update(position, frame.t), frame.t)
            elif position is not None:
                self.learned.set_inputs({"hand_x": position[0], "hand_y": 1.0 - position[1]}, frame.t,
                                        self._clock() - (time.monotonic() - frame.t))
            self.latency.append(time.monotonic() - frame.t)
            return False
        now = time.monotonic()
        if grabber.state == ENDED:
            if not self._ended_said:
                self._ended_said = True
                self.log(f"{self.source.name} ended: controls glide to neutral")
            self._stop.wait(0.05)
        if now - self._last_frame > self.stall and self.learned is None:
            self._send(self.mapper.update(None, now), now)
        return False

    def stop(self) -> None:
        super().stop()
        if self._grabber is not None:
            self._grabber.stop()

    def _locate(self, image: np.ndarray):
        """The tracker's position; a tracker failure on one odd frame counts as no hand."""
        self.frames += 1
        started = time.perf_counter()
        try:
            position = self.tracker.locate(image)
        except Exception as exc:  # never let one frame end the performance's control stream
            self.warn_once("tracker", f"{self.tracker.name} tracker failed on a frame ({type(exc).__name__}: {exc})")
            position = None
        self.tracker_seconds.append(time.perf_counter() - started)
        self.frames_with_hand += position is not None
        return position

    def _send(self, value: tuple[float, float], captured: float) -> None:
        pitch, density = value
        moved = max(abs(pitch - self.current.pitch), abs(density - self.current.density))
        if moved == 0 or (moved < self.publish_step and value != self.mapper.neutral):  # a glide ends on neutral
            return
        controls = clamp_controls({"pitch": pitch, "density": density}, self.current, self.warn_once)
        self.publish(controls, self._clock() - (time.monotonic() - captured))
