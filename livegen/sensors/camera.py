"""``--controls camera[:SOURCE][,KEY=VALUE...]``: a hand in front of a camera steers the music.

Height steers pitch, left-right steers density. Settings come from the ``[camera]`` section of
the default preset (``preset=NAME`` picks another, e.g. the one ``livegen calibrate camera``
saved), then overrides: ``camera:1``, ``camera:clip.avi,tracker=motion``, ``camera:mirror=false``.

Capture runs in its own thread (newest frame only), tracking and mapping in this source's
thread, and every value is published with its capture time, so the engine measures latency
from the moment the camera saw the hand. A camera that stops delivering never stops the music:
the controls hold, glide to neutral, and follow the hand again when the camera returns.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque

import numpy as np

from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.sensors.base import ControlSource, clamp_controls
from livegen.vision.capture import ENDED, FrameGrabber, FrameSource, MemorySource, open_frame_source
from livegen.vision.cv import cv2
from livegen.vision.mapping import HandMapper, MappingSettings
from livegen.vision.trackers import TRACKERS, Tracker, make_tracker

OVERRIDES = {"source": str, "tracker": str, "preset": str, "mirror": bool, "dead_zone": float,
             "min_cutoff": float, "beta": float, "lost_hold": float, "lost_glide": float}


def say(text: str) -> None:
    print(f"livegen: {text}", file=sys.stderr, flush=True)


def camera_settings(args: str = "", preset: str | None = None):
    """The ``[camera]`` preset section with ``SOURCE,KEY=VALUE,...`` overrides applied."""
    from livegen import presets

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
                 pace: bool = False, log=say):
        super().__init__(log)
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
        return cls(source, tracker, mapper, initial, pace=not source.live)

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
            self._send(self.mapper.update(position, frame.t), frame.t)
            self.latency.append(time.monotonic() - frame.t)
            return False
        now = time.monotonic()
        if grabber.state == ENDED:
            if not self._ended_said:
                self._ended_said = True
                self.log(f"{self.source.name} ended: controls glide to neutral")
            self._stop.wait(0.05)
        if now - self._last_frame > self.stall:
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


# --- benchmark ------------------------------------------------------------------------------------

def bench_scene(width: int = 640, height: int = 480, count: int = 90) -> list[np.ndarray]:
    """Frames for the benchmark when no real ones are given: a textured room-like background and
    a skin-coloured hand with a green marker moving across it."""
    cv = cv2()
    rng = np.random.default_rng(0)
    background = cv.GaussianBlur(rng.integers(40, 200, (height // 8, width // 8, 3)).astype(np.uint8), (3, 3), 0)
    background = cv.resize(background, (width, height), interpolation=cv.INTER_CUBIC)
    frames = []
    for i in range(count):
        phase = i / count
        centre = (int(width * (0.2 + 0.6 * phase)), int(height * (0.5 + 0.3 * np.sin(2 * np.pi * phase))))
        frame = background.copy()
        cv.ellipse(frame, centre, (width // 18, height // 10), 0, 0, 360, (150, 170, 215), -1)
        cv.circle(frame, centre, width // 60, (60, 200, 60), -1)
        frames.append(frame)
    return frames


def _tracker_fps(name: str, frames: list[np.ndarray], min_seconds: float) -> float:
    from livegen import presets

    tracker = make_tracker(name, presets.CameraPreset())
    for image in frames[:5]:
        tracker.locate(image)
    done, spent = 0, 0.0
    while spent < min_seconds or done < len(frames):
        image = frames[done % len(frames)]
        started = time.perf_counter()
        tracker.locate(image)
        spent += time.perf_counter() - started
        done += 1
    return done / spent


def _latency(frames: list[np.ndarray], tracker_name: str, seconds: float) -> dict:
    """Capture -> control value through the live pipeline (capture thread, newest-frame slot,
    tracker, mapping), on frames played at 60 fps like a camera."""
    from livegen import presets

    settings = presets.CameraPreset()
    source = MemorySource(frames, fps=60.0)
    source.open()
    controls = CameraControls(source, make_tracker(tracker_name, settings),
                              HandMapper(MappingSettings.from_preset(settings)), Controls(), pace=True,
                              log=lambda text: None)
    start = time.monotonic()
    controls.start(lambda c, t: None, lambda: time.monotonic() - start)
    time.sleep(seconds)
    controls.stop()
    latency, tracking = np.asarray(controls.latency) * 1e3, np.asarray(controls.tracker_seconds) * 1e3
    return {"tracker": tracker_name, "frames": len(latency),
            "latency_ms_p50": float(np.percentile(latency, 50)), "latency_ms_p99": float(np.percentile(latency, 99)),
            "tracker_ms_p50": float(np.percentile(tracking, 50)),
            "overhead_ms_p50": float(np.percentile(latency, 50) - np.percentile(tracking, 50))}


def camera_bench(images: list[np.ndarray] | None = None, seconds: float = 1.0) -> dict:
    """Each tracker's fps at 320x240 and 640x480 on one core, and capture -> control latency.

    ``images``: frames to track (e.g. real photos); default ``bench_scene()``. Trackers that
    cannot run here (mediapipe not installed) report why instead of a number.
    """
    cv = cv2()
    cv.setNumThreads(1)
    frames = images if images else bench_scene()
    result: dict = {"fps": {}, "threads": 1, "frames": f"{len(images)} given frames" if images else "generated scene"}
    for size in ((320, 240), (640, 480)):
        scaled = [cv.resize(f, size, interpolation=cv.INTER_AREA) for f in frames]
        label = f"{size[0]}x{size[1]}"
        for name in TRACKERS:
            try:
                fps = round(_tracker_fps(name, scaled, seconds), 1)
            except UserError as exc:
                fps = f"unavailable: {exc}"
            result["fps"].setdefault(name, {})[label] = fps
    small = [cv.resize(f, (320, 240), interpolation=cv.INTER_AREA) for f in frames]
    result["latency"] = [_latency(small, name, max(0.5, seconds)) for name in ("color", "motion")]
    return result


def hand_detection(folder: str, every: int = 1) -> dict:
    """Each tracker on real photos of a hand (``../shared/data/hands``): the share of photos where
    it reports a hand, and where that position lies on a labelled hand (MediaPipe's box grown by
    30 %). Photos are independent, so ``motion`` (which needs a static camera) sees each as a
    first frame and ``color`` looks for a glove nobody wears: their rates say so, honestly."""
    from pathlib import Path

    from livegen import presets
    from livegen.vision.labels import on_hand, read_labels

    root = Path(folder)
    labels = read_labels(root)
    names = sorted(n for n, boxes in labels.items() if boxes)[::every]
    cv = cv2()
    photos = [(name, cv.imread(str(root / "custom-gesture" / name))) for name in names]
    photos = [(n, p) for n, p in photos if p is not None]
    result: dict = {"photos": len(photos)}
    for tracker_name in TRACKERS:
        try:
            tracker = make_tracker(tracker_name, presets.CameraPreset())
        except UserError as exc:
            result[tracker_name] = f"unavailable: {exc}"
            continue
        found = hits = 0
        for name, photo in photos:
            position = tracker.locate(photo)
            found += position is not None
            hits += position is not None and on_hand(*position, labels[name])
        result[tracker_name] = {"detected": round(found / len(photos), 3), "on_hand": round(hits / len(photos), 3)}
    return result
