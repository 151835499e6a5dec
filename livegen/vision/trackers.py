"""Hand trackers behind one interface, chosen by name (``TRACKERS``).

``color``: HSV threshold on a glove or marker colour (the JeVois ObjectTracker approach: cheap
and robust on stage once calibrated). ``motion``: MOG2 background subtraction, largest moving
blob (static camera). ``skin``: a skin colour model learnt from the performer's own face, found
with OpenCV's bundled Haar cascade, which is then masked out. ``mediapipe``: MediaPipe Hands,
an optional extra.
"""
from __future__ import annotations

import sys
from abc import ABC, abstractmethod

import numpy as np

from livegen.errors import UserError
from livegen.vision.cv import cv2

Point = tuple[float, float]


class Tracker(ABC):
    """Finds one hand in a BGR frame and returns its centre in normalised image coordinates
    (0..1, origin top left), or None.

    Template method: ``locate`` shrinks the frame to ``work_width`` (hands are tens of pixels
    wide even there, and the cost falls with the square of the width); ``_find`` works on it
    and returns pixel coordinates.
    """

    name = "tracker"
    work_width = 320
    min_area = 0.0004  # of the frame: smaller blobs are noise

    def __init__(self):
        self.cv = cv2()
        self.cv.setNumThreads(1)  # one core: the model and the output clock need the others

    @classmethod
    def from_settings(cls, settings) -> "Tracker":
        """Build from a ``CameraPreset``; trackers without settings ignore it."""
        return cls()

    def locate(self, image: np.ndarray) -> Point | None:
        h, w = image.shape[:2]
        if w > self.work_width:
            image = self.cv.resize(image, (self.work_width, round(h * self.work_width / w)),
                                   interpolation=self.cv.INTER_AREA)
        found = self._find(image)
        if found is None:
            return None
        return found[0] / image.shape[1], found[1] / image.shape[0]

    @abstractmethod
    def _find(self, image: np.ndarray) -> Point | None: ...

    def _largest_blob(self, mask: np.ndarray) -> Point | None:
        """Centre of the largest connected region of a cleaned-up mask."""
        mask = self.cv.morphologyEx(mask, self.cv.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, _, stats, centres = self.cv.connectedComponentsWithStats(mask)
        if count < 2:
            return None
        best = 1 + int(np.argmax(stats[1:, self.cv.CC_STAT_AREA]))
        if stats[best, self.cv.CC_STAT_AREA] < self.min_area * mask.size:
            return None
        return float(centres[best][0]), float(centres[best][1])


class ColorTracker(Tracker):
    """The largest blob within an HSV range (hue wraps when low hue > high hue, for reds)."""

    name = "color"

    def __init__(self, low: tuple[int, int, int], high: tuple[int, int, int]):
        super().__init__()
        self.low, self.high = tuple(int(v) for v in low), tuple(int(v) for v in high)

    @classmethod
    def from_settings(cls, settings) -> "ColorTracker":
        return cls(settings.hsv_low, settings.hsv_high)

    def _find(self, image):
        hsv = self.cv.cvtColor(image, self.cv.COLOR_BGR2HSV)
        (h0, s0, v0), (h1, s1, v1) = self.low, self.high
        if h0 <= h1:
            mask = self.cv.inRange(hsv, self.low, self.high)
        else:
            mask = self.cv.inRange(hsv, (h0, s0, v0), (179, s1, v1)) | self.cv.inRange(hsv, (0, s0, v0), (h1, s1, v1))
        return self._largest_blob(mask)


def marker_range(image: np.ndarray, x: float, y: float) -> tuple[list[int], list[int]]:
    """HSV range for ``ColorTracker`` from the colour around a point (normalised coordinates):
    what calibrating by clicking on the glove or marker computes."""
    cv = cv2()
    h, w = image.shape[:2]
    px, py, r = int(x * (w - 1)), int(y * (h - 1)), max(2, w // 80)
    patch = cv.cvtColor(image[max(0, py - r):py + r + 1, max(0, px - r):px + r + 1], cv.COLOR_BGR2HSV)
    hue, sat, val = (float(np.median(patch[:, :, c])) for c in range(3))
    low = [int(hue - 10) % 180, int(max(30, sat * 0.5)), int(max(30, val * 0.4))]
    high = [int(hue + 10) % 180, 255, 255]
    return low, high


class MotionTracker(Tracker):
    """The largest blob that differs from a learnt background (MOG2): needs a static camera."""

    name = "motion"

    def __init__(self):
        super().__init__()
        self.subtractor = self.cv.createBackgroundSubtractorMOG2(history=300, varThreshold=32, detectShadows=False)

    def _find(self, image):
        return self._largest_blob(self.subtractor.apply(image))


class SkinTracker(Tracker):
    """Skin-coloured blob that is not the face.

    The skin model is the colour (Cr, Cb) of the performer's own face, found with the Haar
    cascade: a wooden cabinet or a warm wall matches a generic skin range but rarely a
    particular face. The face is masked out and blobs are scored by a plausible size for a
    hand next to that face and by distance from it; with no face in view, the generic YCrCb
    range and blob size stand in. Blobs cut by the frame's edge (furniture) count less, and
    on video the blob near the last position counts more.
    """

    name = "skin"
    generic_low, generic_high = (40, 135, 85), (255, 180, 135)  # Y, Cr, Cb
    match = 6.0  # squared Mahalanobis distance to the face colour that still counts as skin
    min_score = 0.3  # with a face in view, blobs of an unlikely size or place are no hand at all

    def __init__(self):
        super().__init__()
        self.faces = self.cv.CascadeClassifier(self.cv.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self.faces.empty():
            raise UserError("OpenCV's bundled Haar face cascade is missing: reinstall opencv-python-headless")
        self.face: tuple[int, int, int, int] | None = None
        self.last: np.ndarray | None = None  # where the hand was in the previous frame (pixels)

    def _find(self, image):
        ycc = self.cv.cvtColor(image, self.cv.COLOR_BGR2YCrCb)
        mask = self.cv.inRange(ycc, self.generic_low, self.generic_high)
        self.face = self._find_face(image)
        if self.face is not None:
            x, y, w, h = self.face
            mask = self._face_colour_mask(ycc, mask)
            self.cv.rectangle(mask, (x - w // 8, y - h // 4), (x + w + w // 8, y + h + h // 8), 0, -1)
        mask = self.cv.morphologyEx(mask, self.cv.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, _, stats, centres = self.cv.connectedComponentsWithStats(mask)
        if count < 2:
            return None
        stats, centres = stats[1:], centres[1:]
        area = stats[:, self.cv.CC_STAT_AREA].astype(np.float64)
        score = area * self._inside(stats, image.shape)
        if self.face is not None:
            x, y, w, h = self.face
            ratio = area / (w * h)
            size = np.exp(-0.5 * np.log(ratio / 0.5) ** 2)  # a hand is about half a face's box
            reach = np.hypot(*(centres - (x + w / 2, y + h / 2)).T) / w
            near = np.exp(-0.5 * (reach / 4.0) ** 2)  # an arm's length is a few face widths
            score = score / area * size * near * np.minimum(1.0, ratio / 0.05)
            score[score < self.min_score] = 0.0
        if self.last is not None:  # on video the hand is where it just was; a photo loses little
            step = np.hypot(*(centres - self.last).T) / (0.1 * image.shape[1])  # in hand widths, roughly
            score = score * (0.5 + 0.5 * np.exp(-0.5 * (step / 1.5) ** 2))
        best = int(np.argmax(score))
        if score[best] == 0.0 or area[best] < self.min_area * mask.size:
            self.last = None
            return None
        self.last = centres[best]
        return float(centres[best][0]), float(centres[best][1])

    def _inside(self, stats: np.ndarray, shape) -> np.ndarray:
        """1 for blobs clear of the frame's edge, less for those cut by it: furniture and
        walls run out of the picture, a hand in play rarely does."""
        h, w = shape[:2]
        x, y = stats[:, self.cv.CC_STAT_LEFT], stats[:, self.cv.CC_STAT_TOP]
        right, bottom = x + stats[:, self.cv.CC_STAT_WIDTH], y + stats[:, self.cv.CC_STAT_HEIGHT]
        cut = (x <= 0).astype(int) + (y <= 0) + (right >= w) + (bottom >= h)
        return 0.3 ** cut

    def _find_face(self, image):
        """The largest face; searched first around the last one (cheap on video), then everywhere."""
        gray = self.cv.cvtColor(image, self.cv.COLOR_BGR2GRAY)
        if self.face is not None:
            x, y, w, h = self.face
            x0, y0 = max(0, x - w), max(0, y - h)
            roi = gray[y0:y + 2 * h, x0:x + 2 * w]
            found = self.faces.detectMultiScale(roi, 1.15, 5, minSize=(int(w * 0.7),) * 2,
                                                maxSize=(int(w * 1.4) + 1,) * 2)
            if len(found):
                fx, fy, fw, fh = max(found, key=lambda r: r[2] * r[3])
                return int(fx + x0), int(fy + y0), int(fw), int(fh)
        found = self.faces.detectMultiScale(gray, 1.15, 5)  # down to the cascade's 24 px window
        if not len(found):
            return None
        return tuple(int(v) for v in max(found, key=lambda r: r[2] * r[3]))

    def _face_colour_mask(self, ycc: np.ndarray, generic: np.ndarray) -> np.ndarray:
        """Pixels whose (Cr, Cb) lie near the face's, below eyebrows and glasses, above the chin."""
        x, y, w, h = self.face
        rows, cols = slice(y + int(0.3 * h), y + int(0.8 * h)), slice(x + int(0.25 * w), x + int(0.75 * w))
        chroma = ycc[rows, cols, 1:].reshape(-1, 2).astype(np.float32)
        skin = generic[rows, cols].reshape(-1) > 0
        if skin.sum() > 20:  # leave out glasses, beard and hair where the generic range allows
            chroma = chroma[skin]
        if len(chroma) < 3:
            return generic
        mean = chroma.mean(axis=0)
        inverse = np.linalg.inv(np.cov(chroma.T) + np.eye(2) * 4.0)
        d = ycc[:, :, 1:].astype(np.float32) - mean
        distance = d[:, :, 0] ** 2 * inverse[0, 0] + 2 * d[:, :, 0] * d[:, :, 1] * inverse[0, 1] + d[:, :, 1] ** 2 * inverse[1, 1]
        return ((distance < self.match) & (ycc[:, :, 0] > 30)).astype(np.uint8) * 255


class MediaPipeTracker(Tracker):
    """MediaPipe Hands: the centre of the landmarks of the first hand. Optional: the last
    release with the hand models bundled (0.10.21) needs Python <= 3.12 and numpy < 2.
    Every frame is searched afresh (static image mode): slower than its tracking mode, but it
    never loses the hand between frames that jump, as photos and dropped frames do."""

    name = "mediapipe"
    work_width = 640

    def __init__(self):
        super().__init__()
        try:
            from mediapipe.python.solutions import hands  # an optional extra: only this tracker needs it
        except ImportError:
            why = ("it needs Python <= 3.12, this is " + sys.version.split()[0]) if sys.version_info >= (3, 13) \
                else "pip install 'livegen[mediapipe]' (mediapipe 0.10.21 pins numpy < 2: use a separate venv)"
            raise UserError(f"the mediapipe tracker needs MediaPipe Hands, which is not installed: {why}; "
                            "or use --tracker skin, color or motion") from None
        self.hands = hands.Hands(static_image_mode=True, max_num_hands=1, model_complexity=1)

    def _find(self, image):
        result = self.hands.process(self.cv.cvtColor(image, self.cv.COLOR_BGR2RGB))
        if not result.multi_hand_landmarks:
            return None
        points = result.multi_hand_landmarks[0].landmark
        x = float(np.mean([p.x for p in points])) * image.shape[1]
        y = float(np.mean([p.y for p in points])) * image.shape[0]
        return x, y


TRACKERS: dict[str, type[Tracker]] = {cls.name: cls for cls in (ColorTracker, MotionTracker, SkinTracker, MediaPipeTracker)}


def make_tracker(name: str, settings) -> Tracker:
    if name not in TRACKERS:
        raise UserError(f"unknown tracker {name!r}: use one of {', '.join(TRACKERS)}")
    return TRACKERS[name].from_settings(settings)
