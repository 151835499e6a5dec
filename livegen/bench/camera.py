"""The camera's numbers: each tracker's frame rate, capture -> control latency through the live
pipeline, and detection on real photos of a hand."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from livegen import presets
from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.sensors.camera import CameraControls
from livegen.vision.capture import MemorySource
from livegen.vision.cv import cv2
from livegen.vision.labels import on_hand, read_labels
from livegen.vision.mapping import HandMapper, MappingSettings
from livegen.vision.trackers import TRACKERS, make_tracker


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
