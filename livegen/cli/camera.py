"""``livegen track`` and ``livegen calibrate camera``: the camera hand tracker from the command line."""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

from livegen import paths
from livegen.cli.emg import add_calibrate_options
from livegen.cli.emg import cmd_calibrate as calibrate_emg
from livegen.errors import UserError
from livegen.messages import say
from livegen.vision import TRACKER_NAMES
from livegen.vision.cv import cv2, require_gui


def add_commands(sub) -> None:
    s = sub.add_parser("track", help="follow a hand in a camera, a video file or a folder of images")
    s.add_argument("--source", help="camera index, video file or folder of images in name order "
                   "(default: the preset's camera.source)")
    s.add_argument("--tracker", choices=TRACKER_NAMES, help="default: the preset's camera.tracker")
    s.add_argument("--preset", help="preset name or .toml path for the [camera] settings")
    s.add_argument("--json", action="store_true", help='print one object at the end: {"frames", "frames_with_hand", "fps", "unreadable"}')
    s.add_argument("--frames", action="store_true", help="with --json: also one position per frame")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--preview", action="store_true", help="show the frames with the hand marked (needs a GUI)")
    s.add_argument("--bench", action="store_true", help="each tracker's fps at 320x240 and 640x480 on one core "
                   "(on the --source frames when given) and capture->control latency")
    s.set_defaults(func=cmd_track)

    s = sub.add_parser("calibrate", help="calibrate a sensor and save the settings to a preset (camera) "
                       "or a per-user profile (emg)")
    s.add_argument("target", choices=["camera", "emg"])
    s.add_argument("--source", help="camera: index, video file or folder of images; emg: the device, like "
                   "myo or serial:PORT,BAUD,csv (default: the preset's)")
    s.add_argument("--from-frames", metavar="DIR", help="calibrate headless from a folder of images or a video")
    s.add_argument("--preset", help="preset to start from (default: the shipped default)")
    s.add_argument("--save", metavar="FILE.toml", help="camera: where to write the preset (default: "
                   f"{paths.camera_preset()}); emg: the profile (default: {paths.emg_profiles_dir() / 'USER.toml'})")
    s.add_argument("--tracker", choices=TRACKER_NAMES, help="default: color with --point or a click, else the preset's")
    s.add_argument("--point", metavar="X,Y", help="marker or glove colour at this point of the first frame "
                   "(0..1 from the top left); switches to the color tracker")
    s.add_argument("--preview", action="store_true", help="click on the marker in a window instead of --point")
    s.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror left-right (a camera facing the performer)")
    s.add_argument("--dead-zone", type=float, help="half-width round the centre that reads as neutral")
    s.add_argument("--seconds", type=float, default=10.0, help="how long to watch the hand sweep the region of play")

    add_calibrate_options(s)
    s.set_defaults(func=cmd_calibrate)


# --- track ----------------------------------------------------------------------------------------

def cmd_track(args) -> int:
    from livegen.sensors.camera import camera_settings  # loads numpy: only when the command runs
    from livegen.vision.capture import open_frame_source  # loads numpy: only when the command runs
    from livegen.vision.mapping import HandMapper, MappingSettings  # loads numpy: only when the command runs
    from livegen.vision.trackers import make_tracker  # loads numpy: only when the command runs

    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be a positive number of seconds")
    if args.frames and not args.json:
        raise UserError("--frames adds per-frame positions to --json output: add --json")
    if args.bench:
        return _bench(args)
    settings = camera_settings("", args.preset)
    if args.source is not None:
        settings = dataclasses.replace(settings, source=args.source)
    if args.tracker:
        settings = dataclasses.replace(settings, tracker=args.tracker)
    if args.preview:
        require_gui()
    source = open_frame_source(settings.source, lambda text: say(f"warning: {text}"))
    run = TrackRun(make_tracker(settings.tracker, settings), HandMapper(MappingSettings.from_preset(settings)),
                   echo=not args.json, preview=args.preview, live=source.live)
    frames = _frames(source, args.duration)
    try:
        run.follow(frames)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the run; the summary still comes
    finally:
        frames.close()
    if args.json:
        print(json.dumps(run.summary(with_positions=args.frames)))
    else:
        r = run.summary(with_positions=False)
        print(f"{r['frames']} frames, a hand in {r['frames_with_hand']}, tracking at {r['fps']} fps ({settings.tracker})")
    return 0


class TrackRun:
    """Positions per frame and the time the tracker itself took (the reported fps). Files keep
    their frame numbers; a camera's frames are numbered as tracked (the dropped ones never were)."""

    def __init__(self, tracker, mapper, echo: bool, preview: bool, live: bool):
        self.tracker, self.mapper, self.echo, self.preview, self.live = tracker, mapper, echo, preview, live
        self.positions: dict[int, tuple[float, float] | None] = {}
        self.spent = 0.0

    def follow(self, frames) -> None:
        for frame in frames:
            started = time.perf_counter()
            position = self.tracker.locate(frame.image)
            self.spent += time.perf_counter() - started
            index = len(self.positions) if self.live else frame.index
            self.positions[index] = position
            pitch, density = self.mapper.update(position, frame.t)
            if self.echo:
                where = f"x {position[0]:.3f} y {position[1]:.3f}" if position else "no hand"
                print(f"frame {index}: {where} -> pitch {pitch:.2f} density {density:.2f}", flush=True)
            if self.preview and _show(frame.image, position):
                return

    def summary(self, with_positions: bool) -> dict:
        found = sum(p is not None for p in self.positions.values())
        fps = round(len(self.positions) / self.spent, 1) if self.spent > 0 else None
        # a folder's frames are its images, the unreadable ones too (they have no position)
        frames = len(self.positions) if self.live else max(self.positions, default=-1) + 1
        result: dict = {"frames": frames, "frames_with_hand": found, "fps": fps,
                        "unreadable": frames - len(self.positions)}
        if with_positions:  # one entry per frame number; null where no hand (or an unreadable image)
            result["positions"] = [
                {"frame": i, "x": round(p[0], 4), "y": round(p[1], 4)} if (p := self.positions.get(i)) else None
                for i in range(max(self.positions, default=-1) + 1)]
        return result


def _frames(source, duration: float | None):
    """Frames of a source through the capture thread until it ends, ``duration`` passes or Ctrl-C.
    Files and folders are read in step with the tracker (every frame); cameras newest-first."""
    from livegen.vision.capture import ENDED, FrameGrabber  # loads numpy: only when the command runs

    grabber = FrameGrabber(source, drop_stale=source.live, log=say).start()
    started = time.monotonic()
    try:
        while duration is None or time.monotonic() - started < duration:
            frame = grabber.next(timeout=0.5)
            if frame is not None:
                yield frame
            elif grabber.state == ENDED:
                return
    finally:
        grabber.stop()


def _show(image, position) -> bool:
    """Draw the frame with the hand marked; True when the user pressed q or Esc."""
    cv = cv2()
    if position is not None:
        h, w = image.shape[:2]
        image = image.copy()
        cv.circle(image, (int(position[0] * w), int(position[1] * h)), max(6, w // 40), (0, 255, 255), 2)
    cv.imshow("livegen", image)
    return cv.waitKey(1) & 0xFF in (ord("q"), 27)


def _bench(args) -> int:
    from livegen.bench.camera import camera_bench  # loads numpy: only when the command runs
    from livegen.vision.capture import open_frame_source  # loads numpy: only when the command runs

    images = None
    if args.source is not None:  # up to 200 frames of it, read once
        source = open_frame_source(args.source, lambda text: None)
        images = [image for _, image in itertools.islice(iter(source.read, None), 200)]
        source.close()
    result = camera_bench(images)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"camera trackers on one core ({result['frames']}):")
    for name, sizes in result["fps"].items():
        why = next((fps for fps in sizes.values() if isinstance(fps, str)), None)
        print(f"  {name:9s} " + (why if why else "  ".join(f"{size} {fps:7.1f} fps" for size, fps in sizes.items())))
    for row in result["latency"]:
        print(f"  capture -> control ({row['tracker']}, 320x240): p50 {row['latency_ms_p50']:.2f} ms, "
              f"p99 {row['latency_ms_p99']:.2f} ms; tracker p50 {row['tracker_ms_p50']:.2f} ms, "
              f"overhead p50 {row['overhead_ms_p50']:.2f} ms")
    return 0


# --- calibrate ------------------------------------------------------------------------------------

def cmd_calibrate(args) -> int:
    if args.target == "emg":
        return calibrate_emg(args)
    import numpy as np  # only when the command runs: see livegen/cli/__init__.py

    from livegen import presets  # loads numpy: only when the command runs
    from livegen.sensors.camera import camera_settings  # loads numpy: only when the command runs
    from livegen.vision.capture import open_frame_source  # loads numpy: only when the command runs
    from livegen.vision.trackers import make_tracker, marker_range  # loads numpy: only when the command runs

    if args.source and args.from_frames:
        raise UserError("give --source or --from-frames, not both")
    if args.seconds <= 0:
        raise UserError("--seconds must be positive")
    point = _point(args.point) if args.point else None
    if args.preview and point is None:
        require_gui()
    camera = camera_settings("", args.preset)
    changes: dict = {}
    if args.source or args.from_frames:
        changes["source"] = args.source or args.from_frames
    if args.mirror is not None:
        changes["mirror"] = args.mirror
    if args.dead_zone is not None:
        changes["dead_zone"] = args.dead_zone
    camera = dataclasses.replace(camera, **changes)
    source = open_frame_source(camera.source, lambda text: say(f"warning: {text}"))
    frames = _frames(source, args.seconds)
    first = next(frames, None)
    if first is None:
        raise UserError(f"{source.name} gave no frame to calibrate on")
    if args.preview and point is None:
        point = _click(first.image)
    if point is not None:
        low, high = marker_range(first.image, *point)
        camera = dataclasses.replace(camera, hsv_low=low, hsv_high=high, tracker=args.tracker or "color")
        say(f"marker colour at ({point[0]:.2f}, {point[1]:.2f}): HSV {low} .. {high}")
    elif args.tracker:
        camera = dataclasses.replace(camera, tracker=args.tracker)
    tracker = make_tracker(camera.tracker, camera)
    say(f"sweep the hand over the whole region of play ({args.seconds:g} s) ...")
    seen = [p for p in (tracker.locate(f.image) for f in [first, *frames]) if p is not None]
    if len(seen) >= 10:
        xs, ys = np.array(seen).T
        camera = dataclasses.replace(camera, region=_region(xs, ys))
    else:
        say(f"warning: saw the hand in only {len(seen)} frames: region of play left at {camera.region}")
    preset = presets.load(args.preset)
    preset.camera = camera
    path = Path(args.save).expanduser() if args.save else paths.camera_preset()
    path.parent.mkdir(parents=True, exist_ok=True)
    presets.save(preset, path)
    x0, y0, x1, y1 = camera.region
    print(f"saved to {path}: tracker {camera.tracker}, region of play x {x0:.2f}..{x1:.2f} y {y0:.2f}..{y1:.2f}, "
          f"mirror {'on' if camera.mirror else 'off'}; play with: livegen perform --controls camera:preset={path}")
    return 0


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--point {text}: expected X,Y like 0.4,0.6 (0..1 from the top left)") from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise UserError(f"--point {text}: X and Y are 0..1 from the top left of the image")
    return x, y


def _region(xs, ys) -> list[float]:
    """Region of play: where the hand went (2nd..98th percentile), with a margin, at least 0.2 wide."""
    import numpy as np  # only when the command runs: see livegen/cli/__init__.py

    region = []
    for values in (xs, ys):
        lo, hi = np.percentile(values, [2, 98])
        margin = max(0.05, (0.2 - (hi - lo)) / 2)
        region.append((max(0.0, lo - margin), min(1.0, hi + margin)))
    (x0, x1), (y0, y1) = region
    return [round(float(v), 3) for v in (x0, y0, x1, y1)]


def _click(image) -> tuple[float, float]:
    """Wait for a click on the marker in a window; Esc cancels."""
    cv = cv2()
    clicked: list[tuple[float, float]] = []
    h, w = image.shape[:2]
    cv.imshow("livegen", image)
    cv.setMouseCallback("livegen", lambda event, x, y, *_: clicked.append((x / w, y / h))
                        if event == cv.EVENT_LBUTTONDOWN else None)
    print("click on the marker or glove (Esc cancels)", flush=True)
    while not clicked:
        if cv.waitKey(20) & 0xFF == 27:
            raise UserError("calibration cancelled")
    cv.destroyWindow("livegen")
    return clicked[0]
