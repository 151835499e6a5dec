"""Frame sources (camera index, video file, image folder) and the capture thread.

The capture thread keeps one slot: in live use it always holds the newest frame, so a tracker
that is slower than the camera skips frames instead of falling further and further behind.
A camera that stops delivering is reopened every second until it returns; files simply end.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from livegen.errors import UserError
from livegen.vision.cv import cv2

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, as OpenCV reads it
    index: int  # frame number in the source (image number in a folder)
    t: float  # time.monotonic() when the frame was captured


class FrameSource(ABC):
    """Where frames come from. ``open`` raises UserError saying what to do; ``read`` returns
    (index, image), or None when the source ended or the device stopped delivering."""

    live = False  # a device: reopen after a failure instead of ending
    fps: float | None = None  # nominal rate, to play files back like a camera

    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> tuple[int, np.ndarray] | None: ...

    def close(self) -> None:
        """Release the device or file; the base holds nothing."""


class _CaptureSource(FrameSource):
    """A source read through cv2.VideoCapture: numbers its frames and releases the capture."""

    def __init__(self, name: str):
        super().__init__(name)
        self._cap = None
        self._count = 0

    def _numbered(self, image: np.ndarray) -> tuple[int, np.ndarray]:
        self._count += 1
        return self._count - 1, image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceSource(_CaptureSource):
    live = True

    def __init__(self, index: int, width: int = 640, height: int = 480):
        super().__init__(f"camera {index}")
        self.index, self.width, self.height = index, width, height

    def open(self) -> None:
        cv = cv2()
        cap = cv.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise UserError(f"no camera at index {self.index}: is it plugged in and not used by another "
                            "program? (try another --source index, a video file or a folder of images)")
        cap.set(cv.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue would hand over stale frames
        self._cap = cap
        self.fps = cap.get(cv.CAP_PROP_FPS) or None

    def read(self):
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        if not ok or image is None:
            return None
        return self._numbered(image)


class VideoFileSource(_CaptureSource):
    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path
        self._first: np.ndarray | None = None

    def open(self) -> None:
        cv = cv2()
        cap = cv.VideoCapture(str(self.path))
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            raise UserError(f"cannot read video {self.path}: not a video file OpenCV can decode")
        self._cap, self._first, self._count = cap, first, 0
        self.fps = cap.get(cv.CAP_PROP_FPS) or 30.0

    def read(self):
        if self._first is not None:
            image, self._first = self._first, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                return None
        return self._numbered(image)


class ImageFolderSource(FrameSource):
    """Images in name order; one that cannot be read is skipped (its number stays unused)."""

    fps = 30.0

    def __init__(self, folder: Path, warn: Callable[[str], None]):
        super().__init__(str(folder))
        self.folder, self.warn = folder, warn
        self.files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        self.files = sorted((p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                            key=lambda p: p.name)
        if not self.files:
            raise UserError(f"no images in {self.folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def read(self):
        cv = cv2()
        while self._next < len(self.files):
            index, path = self._next, self.files[self._next]
            self._next += 1
            image = cv.imread(str(path))
            if image is not None:
                return index, image
            self.warn(f"skipped {path}: not an image OpenCV can read")
        return None


class MemorySource(FrameSource):
    """Frames already in memory, looped: stands in for a camera in the benchmark."""

    def __init__(self, images: Sequence[np.ndarray], fps: float):
        super().__init__("frames in memory")
        self.images, self.fps = list(images), fps
        self._count = 0

    def open(self) -> None:
        if not self.images:
            raise UserError("no frames to play")

    def read(self):
        self._count += 1
        return self._count - 1, self.images[(self._count - 1) % len(self.images)]


def open_frame_source(spec: str, warn: Callable[[str], None], width: int = 640, height: int = 480) -> FrameSource:
    """``--source``: a camera index, a video file or a folder of images; opened, or UserError."""
    spec = str(spec).strip()
    if spec.isdigit():
        source: FrameSource = DeviceSource(int(spec), width, height)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            source = ImageFolderSource(path, warn)
        elif path.is_file():
            source = VideoFileSource(path)
        else:
            raise UserError(f"--source {spec}: no such video file or folder, and not a camera index (0, 1, ...)")
    source.open()
    return source


RUNNING, LOST, ENDED = "running", "lost", "ended"


class FrameGrabber:
    """Reads a source in its own thread and hands over frames through a one-frame slot.

    ``drop_stale`` (live use): a new frame replaces one not yet taken, so the consumer always
    gets the newest. Without it (analysing a file) the thread waits until each frame is taken.
    ``pace`` plays files at their nominal rate, as a camera would deliver them.
    """

    def __init__(self, source: FrameSource, drop_stale: bool = True, pace: bool = False,
                 reconnect_every: float = 1.0, log: Callable[[str], None] = print):
        self.source, self.drop_stale, self.pace = source, drop_stale, pace
        self.reconnect_every, self.log = reconnect_every, log
        self.state = RUNNING
        self.dropped = 0
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-capture", daemon=True)

    def start(self) -> "FrameGrabber":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(2.0)
        if not self._thread.is_alive():  # a driver stuck in read() must not be released under it
            self.source.close()

    def next(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken; None when none came within ``timeout`` or the source ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self.state == ENDED, timeout)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
        return frame

    def _run(self) -> None:
        started, count = time.monotonic(), 0
        while not self._stop.is_set():
            try:
                got = self.source.read()
            except Exception as exc:  # a driver error is a lost camera, never a dead thread
                self.log(f"{self.source.name}: {type(exc).__name__}: {exc}")
                got = None
            if got is None:
                if not self.source.live:
                    break
                self._reconnect()
                started, count = time.monotonic(), 0
                continue
            if self.pace and self.source.fps:
                count += 1
                self._stop.wait(max(0.0, started + count / self.source.fps - time.monotonic()))
            self._hand_over(Frame(got[1], got[0], time.monotonic()))
        with self._cond:
            self.state = ENDED
            self._cond.notify_all()

    def _hand_over(self, frame: Frame) -> None:
        with self._cond:
            if not self.drop_stale:
                self._cond.wait_for(lambda: self._slot is None or self._stop.is_set())
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
            self._cond.notify_all()

    def _reconnect(self) -> None:
        self.state = LOST
        self.log(f"{self.source.name} stopped delivering frames: controls glide to neutral, the music goes on; "
                 f"reconnecting every {self.reconnect_every:g} s")
        self.source.close()
        while not self._stop.wait(self.reconnect_every):
            try:
                self.source.open()
            except UserError:
                continue
            self.state = RUNNING
            self.log(f"{self.source.name} is back")
            return
