"""From a hand position in the image to pitch (height) and density (left-right).

Mirror, region of play, a dead zone round the centre, One Euro smoothing (quick when the hand
moves fast, steady when it rests), and a lost hand: hold the last value, then glide to neutral.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from livegen.music.conditioning import clamp_control


class OneEuroFilter:
    """Casiez, Roussel & Vogel (CHI 2012): a low-pass whose cutoff rises with the speed of the
    signal, so slow motion is smoothed (no jitter) and fast motion is followed (little lag)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 3.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self, value: float | None = None, t: float | None = None) -> None:
        self.value, self.t, self.speed = value, t, 0.0

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: float, t: float) -> float:
        if self.value is None or self.t is None or t <= self.t:
            if self.value is None:
                self.value = x
            self.t = t if self.t is None else max(self.t, t)
            return self.value
        dt = t - self.t
        speed = (x - self.value) / dt
        self.speed += self._alpha(self.d_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * abs(self.speed)
        self.value += self._alpha(cutoff, dt) * (x - self.value)
        self.t = t
        return self.value


@dataclass
class MappingSettings:
    mirror: bool = True  # a camera facing the performer: their left is the image's right
    region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1 of the image
    dead_zone: float = 0.05  # half-width round the centre that reads as exactly neutral
    min_cutoff: float = 1.0  # Hz, One Euro smoothing at rest
    beta: float = 3.0  # how fast the cutoff rises with hand speed
    lost_hold: float = 1.0  # s the last value holds after the hand is lost
    lost_glide: float = 2.0  # s then to glide to neutral

    @classmethod
    def from_preset(cls, camera) -> "MappingSettings":
        return cls(camera.mirror, tuple(camera.region), camera.dead_zone, camera.min_cutoff, camera.beta,
                   camera.lost_hold, camera.lost_glide)


def _dead_zone(v: float, half_width: float) -> float:
    """0..1 with a flat stretch of ``half_width`` each side of 0.5; continuous at its ends."""
    d = v - 0.5
    if abs(d) <= half_width:
        return 0.5
    return 0.5 + math.copysign((abs(d) - half_width) / (0.5 - half_width) * 0.5, d)


class HandMapper:
    """``update(position, t)`` -> (pitch, density); position None while no hand is seen.

    ``t`` is the capture time (seconds, any clock), so smoothing and the lost-hand timers follow
    the frames' own timing, not when they happened to be processed.
    """

    def __init__(self, settings: MappingSettings, neutral: tuple[float, float] = (0.5, 0.5)):
        self.settings, self.neutral = settings, neutral
        self.filters = (OneEuroFilter(settings.min_cutoff, settings.beta), OneEuroFilter(settings.min_cutoff, settings.beta))
        self.value = neutral
        self.held = neutral  # the value when the hand was lost
        self.lost_since: float | None = None

    def controls_at(self, x: float, y: float) -> tuple[float, float]:
        """Unsmoothed (pitch, density) for a position in normalised image coordinates."""
        s = self.settings
        if s.mirror:
            x = 1.0 - x
        x0, y0, x1, y1 = s.region
        if s.mirror:
            x0, x1 = 1.0 - x1, 1.0 - x0
        across = min(max((x - x0) / (x1 - x0), 0.0), 1.0)  # where in the region of play, 0..1
        up = min(max((y1 - y) / (y1 - y0), 0.0), 1.0)  # image y grows downwards
        return _dead_zone(up, s.dead_zone), _dead_zone(across, s.dead_zone)

    def update(self, position: tuple[float, float] | None, t: float) -> tuple[float, float]:
        if position is None:
            return self._lost(t)
        if self.lost_since is not None:
            if t - self.lost_since > self.settings.lost_hold:  # glided away: ease back in from here
                for f, v in zip(self.filters, self.value):
                    f.reset(v, t - 1.0 / 30.0)
            self.lost_since = None
        target = self.controls_at(*position)
        self.value = tuple(clamp_control(key, f(v, t)) for key, f, v in zip(("pitch", "density"), self.filters, target))
        return self.value

    def _lost(self, t: float) -> tuple[float, float]:
        if self.lost_since is None:
            self.lost_since, self.held = t, self.value
        s = self.settings
        gone = t - self.lost_since - s.lost_hold
        if gone <= 0:
            return self.value
        if gone >= s.lost_glide:
            self.value = self.neutral
            return self.value
        k = gone / s.lost_glide
        k = k * k * (3.0 - 2.0 * k)  # smoothstep: no jump at either end of the glide
        self.value = tuple(h + (n - h) * k for h, n in zip(self.held, self.neutral))
        return self.value
