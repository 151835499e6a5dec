"""Muscle samples -> levels 0..1 per channel -> z values -1..1 for the DCRNN.

Per block of samples (vectorised over a long block and the channels; the few samples a live read
brings go one by one on floats, see ``SMALL_BLOCK``): a high-pass removes the electrodes' offset
and movement drift, the signal is rectified and its envelope taken (moving RMS over ``window`` s,
or an exponential average of |x| with that time constant), the calibration maps each channel's
rest level to 0 and its strongest contraction to 1, a one-pole smoothing follows, and the
preset's mapping puts channels on z dims (level 0 -> z -1, level 1 -> z +1). Devices that
already send envelopes (``rectified``) skip the high-pass and rectification.

Garbage never reaches the filters: a sample beyond the device's limits (a glitch, a number
mangled on a serial line) is clamped to them and a NaN holds the channel's sample before, so one
absurd value moves a level no more than the strongest real one would; a filter state that went
non-finite all the same (limits too wide for float64) starts over. Levels and z are always
finite and in range.

Calibration is stored per user in ``USER.toml`` in ``livegen.paths.emg_profiles_dir()``
(``~/.config/livegen/emg`` on Linux; ``$LIVEGEN_HOME`` moves it with the rest): rest and maximum
envelopes per channel, and optionally named gestures (nearest centroid on the levels) each
recalling a DCRNN theme when held.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen import extras, paths
from livegen.errors import UserError

HIGHPASS_HZ = 10.0  # below the EMG band (20-450 Hz), above electrode drift and movement artefacts
DEFAULT_REST, DEFAULT_MAX = 0.03, 0.35  # uncalibrated: fractions of the half-range a Myo reads at rest / full
Z_DIMS = 8
CHANNELS = 8  # a Myo's, a Cyton's; boards with fewer channels are padded (their missing ones drive nothing)
# Blocks up to this many samples (one serial line, a BLE notification's two) go sample by sample on
# lists of floats: on 8 values each numpy call costs more than its arithmetic, and a sample must be
# through in well under 50 µs. Longer blocks (a replay, a calibration) are vectorised.
SMALL_BLOCK = 4
INT8_LIMITS = (-128.0, 127.0)  # a Myo's raw samples, the default device's


def profile_path(user: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", user) or user.startswith("."):
        raise UserError(f"EMG user name {user!r}: use letters, digits, '.', '_' or '-' (it names a file)")
    return paths.emg_profiles_dir() / f"{user}.toml"


# --- calibration profile --------------------------------------------------------------------------

@dataclass
class Gesture:
    centroid: list[float]  # mean levels (0..1 per channel) while the gesture was held
    theme: str  # the DCRNN theme it recalls


@dataclass
class Calibration:
    """Per-channel envelopes (device units) at rest and at the strongest contraction."""

    rest: list[float]
    max: list[float]
    device: str = ""  # the source it was taken on (shown to the user, not enforced)
    envelope: str = "rms"
    window: float = 0.075
    gestures: dict[str, Gesture] = field(default_factory=dict)

    @classmethod
    def default(cls, value_range: tuple[float, float], channels: int, rectified: bool) -> "Calibration":
        """Levels before any calibration: a fraction of the device's range (an envelope device
        reads 0 at rest)."""
        half = (value_range[1] - value_range[0]) / 2
        rest = 0.0 if rectified else DEFAULT_REST * half
        top = value_range[1] if rectified else DEFAULT_MAX * half
        return cls([rest] * channels, [top] * channels)

    def check(self, where: str) -> None:
        if len(self.rest) != len(self.max) or not 1 <= len(self.rest) <= 64:
            raise UserError(f"{where}: rest and max must list the same number of channels")
        if not all(math.isfinite(v) for v in self.rest + self.max):
            raise UserError(f"{where}: rest and max must be finite numbers")
        for name, g in self.gestures.items():
            if len(g.centroid) != len(self.rest):
                raise UserError(f"{where}: gesture {name!r} has {len(g.centroid)} values for {len(self.rest)} channels")

    def save(self, path: Path) -> None:
        def numbers(values):
            return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"

        lines = ["# livegen EMG calibration (`livegen calibrate emg`): envelopes per channel at rest and at",
                 "# the strongest contraction, in device units; gestures recall a DCRNN theme when held.",
                 f"device = {_quote(self.device)}", f"envelope = {_quote(self.envelope)}",
                 f"window = {self.window:.6g}", f"rest = {numbers(self.rest)}", f"max = {numbers(self.max)}"]
        for name, g in self.gestures.items():
            lines += ["", f"[gestures.{_quote(name)}]", f"theme = {_quote(g.theme)}",
                      f"centroid = {numbers(g.centroid)}"]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)  # a crash mid-write never leaves half a profile

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the EMG profile {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"EMG profile {path} is not valid TOML ({exc}): calibrate again") from None
        known = {"device", "envelope", "window", "rest", "max", "gestures"}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"EMG profile {path}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")

        def floats(value, key):
            if not (isinstance(value, list) and value and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise UserError(f"EMG profile {path}: {key} must be a list of numbers")
            return [float(v) for v in value]

        if "rest" not in data or "max" not in data:
            raise UserError(f"EMG profile {path} has no rest/max levels: run `livegen calibrate emg`")
        gestures = {}
        raw = data.get("gestures", {})
        if not isinstance(raw, dict):
            raise UserError(f"EMG profile {path}: [gestures] must be a table")
        for name, g in raw.items():
            if not isinstance(g, dict) or set(g) != {"theme", "centroid"} or not isinstance(g["theme"], str):
                raise UserError(f"EMG profile {path}: gesture {name!r} needs exactly theme (text) and centroid")
            gestures[name] = Gesture(floats(g["centroid"], f"gestures.{name}.centroid"), g["theme"])
        window = data.get("window", 0.075)
        if not isinstance(window, (int, float)) or isinstance(window, bool) or window <= 0:
            raise UserError(f"EMG profile {path}: window must be a positive number of seconds")
        calibration = cls(floats(data["rest"], "rest"), floats(data["max"], "max"), str(data.get("device", "")),
                          str(data.get("envelope", "rms")), float(window), gestures)
        calibration.check(f"EMG profile {path}")
        return calibration


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_profile(user: str) -> Calibration | None:
    path = profile_path(user)
    return Calibration.load(path) if path.is_file() else None


# --- filters --------------------------------------------------------------------------------------

class OnePole:
    """y[n] = b0 x[n] + b1 x[n-1] - a1 y[n-1] per channel, state kept between blocks: ``step``
    takes one sample as floats, ``run`` a block through scipy's lfilter."""

    def __init__(self, b0: float, b1: float, a1: float, channels: int):
        self.b, self.a = np.array([b0, b1]), np.array([1.0, a1])
        self.b0, self.b1, self.a1 = b0, b1, a1
        self.x1 = [0.0] * channels
        self.y1 = [0.0] * channels

    @classmethod
    def lowpass(cls, seconds: float, rate_hz: float, channels: int) -> "OnePole":
        """Exponential average with time constant ``seconds``."""
        k = math.exp(-1.0 / (max(seconds, 1e-9) * rate_hz))
        return cls(1.0 - k, 0.0, -k, channels)

    @classmethod
    def highpass(cls, cutoff_hz: float, rate_hz: float, channels: int) -> "OnePole":
        k = math.exp(-2.0 * math.pi * cutoff_hz / rate_hz)
        g = (1.0 + k) / 2.0
        return cls(g, -g, -k, channels)

    def finite(self) -> bool:
        return all(map(math.isfinite, self.x1 + self.y1))

    def reset(self) -> None:
        self.x1 = [0.0] * len(self.x1)
        self.y1 = [0.0] * len(self.y1)

    def step(self, x: list[float]) -> list[float]:
        b0, b1, a1 = self.b0, self.b1, self.a1
        y = [b0 * v + b1 * v1 - a1 * w1 for v, v1, w1 in zip(x, self.x1, self.y1)]
        self.x1, self.y1 = x, y
        return y

    def run(self, x: np.ndarray) -> np.ndarray:
        with extras.needed("emg", "filtering a block of EMG samples"):
            from scipy.signal import lfilter  # scipy.signal takes 2 s to import: only for a block of samples

        zi = (self.b1 * np.array(self.x1) - self.a1 * np.array(self.y1))[None]
        y, _ = lfilter(self.b, self.a, x, axis=0, zi=zi)
        self.x1, self.y1 = x[-1].tolist(), y[-1].tolist()
        return y


class MovingRms:
    """RMS over the last ``size`` samples per channel (the first ``size`` samples ramp up). ``step``
    (one sample, as floats) updates a running sum, re-summed exactly once per window so rounding
    never drifts; ``run`` takes a block through cumulative sums."""

    def __init__(self, size: int, channels: int):
        self.size = max(1, size)
        self.channels = channels
        self.reset()

    def finite(self) -> bool:
        return bool(np.isfinite(self.ring).all() and np.isfinite(self.total).all())

    def reset(self) -> None:
        self.ring = [[0.0] * self.channels for _ in range(self.size)]  # squares of the last ``size`` samples
        self.position = 0  # where the next square goes
        self.total = [0.0] * self.channels

    def step(self, x: list[float]) -> list[float]:
        squares = [v * v for v in x]
        old, self.ring[self.position] = self.ring[self.position], squares
        self.position += 1
        if self.position == self.size:
            self.position = 0
            self.total = [sum(column) for column in zip(*self.ring)]
        else:
            self.total = [t + s - o for t, s, o in zip(self.total, squares, old)]
        size = self.size
        return [math.sqrt(t / size) if t > 0.0 else 0.0 for t in self.total]

    def run(self, x: np.ndarray) -> np.ndarray:
        squares = x * x
        history = np.roll(np.array(self.ring), -self.position, axis=0)[1:]  # the size-1 squares before, oldest first
        joined = np.vstack((history, squares))
        sums = np.cumsum(joined, axis=0)
        windows = sums[self.size - 1:].copy()
        windows[1:] -= sums[:len(x) - 1]
        ring = joined[-self.size:]
        self.ring, self.position, self.total = ring.tolist(), 0, ring.sum(axis=0).tolist()
        return np.sqrt(np.maximum(windows, 0.0) / self.size)


# --- the processor --------------------------------------------------------------------------------

@dataclass
class Mapping:
    """What the preset's ``[emg]`` section says about processing (see presets.EmgPreset)."""

    z: list[int] = field(default_factory=lambda: list(range(1, Z_DIMS + 1)))  # z dim i <- channel z[i] (1-based; 0: none)
    envelope: str = "rms"  # rms | ema
    window: float = 0.075  # s
    smoothing: float = 0.05  # s, time constant after normalisation; 0 = none

    @classmethod
    def from_preset(cls, emg) -> "Mapping":
        return cls(list(emg.z), emg.envelope, emg.window, emg.smoothing)


class Processor:
    """Blocks of raw samples -> envelopes -> levels 0..1 -> z; keeps its filter state.
    ``limits``: the values a real sample of the device can take (``EmgDevice.sample_limits``)."""

    def __init__(self, rate_hz: float, mapping: Mapping, calibration: Calibration, rectified: bool = False,
                 limits: tuple[float, float] = INT8_LIMITS):
        channels = self.channels = CHANNELS
        self.rate_hz, self.mapping, self.rectified, self.limits = rate_hz, mapping, rectified, limits
        self.width = channels  # channels the device really has (learned from the blocks)
        self.clamped = 0  # values beyond the limits or NaN, replaced before the filters
        self._previous = np.clip(np.zeros(channels), *limits)  # the last sample, for a NaN to hold
        self.highpass = None if rectified else OnePole.highpass(HIGHPASS_HZ, rate_hz, channels)
        if mapping.envelope == "rms":
            self.envelope = MovingRms(round(mapping.window * rate_hz), channels)
            self._rectify = False
        else:
            self.envelope = OnePole.lowpass(mapping.window, rate_hz, channels)
            self._rectify = True
        self.smooth = OnePole.lowpass(mapping.smoothing, rate_hz, channels) if mapping.smoothing > 0 else None
        self.set_calibration(calibration)
        self.levels = np.zeros(channels)  # the latest levels (0..1), for displays
        # z dim -> channel index; dims mapped to a channel this device lacks, to 0 or not listed stay at 0
        listed = [c - 1 if 1 <= c <= channels else -1 for c in mapping.z[:Z_DIMS]]
        self._z_from = np.array(listed + [-1] * (Z_DIMS - len(listed)), dtype=int)
        self._z_index = np.maximum(self._z_from, 0)
        self._drive_z(channels)

    @classmethod
    def for_device(cls, device, mapping: Mapping, calibration: Calibration) -> "Processor":
        """A processor at the device's rate, for its kind of signal and its limits."""
        return cls(device.nominal_rate_hz, mapping, calibration, device.rectified, device.sample_limits)

    def _drive_z(self, width: int) -> None:
        """z = level * gain + offset: 2 l - 1 on the dims a channel of the device drives, 0 elsewhere
        (levels are >= 0, so that is +0.0)."""
        on = (self._z_from >= 0) & (self._z_from < width)
        self._z_gain, self._z_offset = np.where(on, 2.0, 0.0), np.where(on, -1.0, 0.0)

    def set_calibration(self, calibration: Calibration) -> None:
        rest = _fit(calibration.rest, self.channels)
        top = _fit(calibration.max, self.channels)
        self.calibration = calibration
        self._rest = rest
        self._scale = 1.0 / np.maximum(top - rest, 1e-9 + 1e-3 * np.abs(rest))
        self._rest_scale = list(zip(rest.tolist(), self._scale.tolist()))  # for samples one by one
        self._centroids = None
        if calibration.gestures:
            self._gesture_names = ["rest", *calibration.gestures]
            self._centroids = np.array([np.zeros(self.channels)]
                                       + [_fit(g.centroid, self.channels) for g in calibration.gestures.values()])
            self._half_norms = 0.5 * (self._centroids ** 2).sum(axis=1)

    def envelopes(self, block: np.ndarray) -> np.ndarray:
        """Rectified envelope of each sample (n, channels), in device units."""
        x = self._columns(block)
        if len(x) <= SMALL_BLOCK:
            return np.array([self._envelope(row) for row in x.tolist()]).reshape(len(x), self.channels)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught just below
            if self.highpass is not None:
                x = self.highpass.run(x)
            if self._rectify or self.rectified:
                x = np.abs(x)
            envelopes = self.envelope.run(x)
        if not np.isfinite(envelopes).all():
            self._restart_broken_filters()
            envelopes[~np.isfinite(envelopes)] = 0.0
        return envelopes

    def run(self, block: np.ndarray) -> np.ndarray:
        """Levels 0..1 (after smoothing) of each sample of the block, (n, channels)."""
        if len(block) > SMALL_BLOCK:
            self.last_envelopes = self.envelopes(block)  # kept for a calibration taken while playing
            levels = (self.last_envelopes - self._rest) * self._scale
            np.minimum(np.maximum(levels, 0.0, out=levels), 1.0, out=levels)
            if self.smooth is not None:
                levels = self.smooth.run(levels)
        else:
            envelopes, rows = [], []
            for row in self._columns(block).tolist():
                envelope = self._envelope(row)
                level = [0.0 if (v := (e - rest) * scale) < 0.0 else 1.0 if v > 1.0 else v  # clipped to 0..1
                         for e, (rest, scale) in zip(envelope, self._rest_scale)]
                envelopes.append(envelope)
                rows.append(level if self.smooth is None else self.smooth.step(level))
            self.last_envelopes, levels = np.array(envelopes), np.array(rows)
        self.levels = levels[-1]
        return levels

    def _columns(self, block: np.ndarray) -> np.ndarray:
        """The block as float64 with this processor's channels (a narrower board padded), every
        value one a real sample can take: beyond the limits clamped, NaN holding the sample before."""
        x = np.asarray(block, dtype=np.float64)
        low, high = self.limits
        if not (x.min(initial=low) >= low and x.max(initial=high) <= high):  # NaN fails both
            valid = (x >= low) & (x <= high)
            self.clamped += int(valid.size - np.count_nonzero(valid))
            x = np.clip(x, low, high)
        if x.shape[1] != self.channels:
            if x.shape[1] != self.width:
                self.width = min(x.shape[1], self.channels)
                self._drive_z(self.width)
            x = _fit_columns(x, self.channels)
        missing = np.isnan(x)
        if missing.any():
            x = _hold(x, missing, self._previous)
        if len(x):
            self._previous = x[-1].copy()  # x may be the caller's block, which may change
        return x

    def _restart_broken_filters(self) -> None:
        """A non-finite value got into a filter (limits too wide for float64): each filter whose
        state is no longer finite starts over, so it cannot stay stuck."""
        for part in (self.highpass, self.envelope, self.smooth):
            if part is not None and not part.finite():
                part.reset()

    def _envelope(self, row: list[float]) -> list[float]:
        """One sample's envelope, on floats."""
        if self.highpass is not None:
            row = self.highpass.step(row)
        if self._rectify or self.rectified:
            row = [abs(v) for v in row]
        envelope = self.envelope.step(row)
        if math.isfinite(sum(envelope)):  # envelopes are >= 0: one sum sees a NaN or an inf
            return envelope
        self._restart_broken_filters()
        return [v if math.isfinite(v) else 0.0 for v in envelope]

    def z(self, levels: np.ndarray) -> np.ndarray:
        """z values -1..1 for levels (channels,) or (n, channels)."""
        return levels[..., self._z_index] * self._z_gain + self._z_offset

    def gesture(self, levels: np.ndarray) -> str | None:
        """The nearest learned gesture ("rest" included) for one level vector; None without gestures."""
        if self._centroids is None:
            return None
        # argmin |c - l|^2 = argmin |c|^2 / 2 - c.l: one product instead of four array steps per sample
        return self._gesture_names[int((self._half_norms - self._centroids @ levels).argmin())]


def _fit(values, channels: int) -> np.ndarray:
    """A per-channel list for ``channels`` channels (a profile taken on another device: padded/cut)."""
    a = np.asarray(values, dtype=np.float64)[:channels]
    return np.concatenate([a, np.full(channels - len(a), a[-1] if len(a) else 0.0)])


def _hold(x: np.ndarray, missing: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``x`` with each missing value replaced by its channel's last value before it (from
    ``previous``, the block before's last sample, at the top)."""
    rows = np.where(missing, -1, np.arange(len(x))[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = x[np.maximum(rows, 0), np.arange(x.shape[1])]
    return np.where(rows >= 0, filled, previous)


def _fit_columns(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[1] > channels:
        return x[:, :channels]
    wide = np.zeros((len(x), channels))
    wide[:, :x.shape[1]] = x
    return wide


def calibrate_from(rest_envelopes: np.ndarray, max_envelopes: np.ndarray, device: str, mapping: Mapping,
                   gestures: dict[str, tuple[np.ndarray, str]] | None = None) -> tuple[Calibration, list[int]]:
    """A calibration from envelopes recorded at rest and at the strongest contraction: rest is
    the median at rest, max the 95th percentile of the contraction (a single spike does not set
    full scale); gestures are the mean levels over their recordings, under that calibration.
    Also returns the channels (1-based) whose contraction was not clearly above rest."""
    if len(rest_envelopes) < 10 or len(max_envelopes) < 10:
        raise UserError("too few EMG samples to calibrate on: is the armband streaming?")
    rest = np.median(rest_envelopes, axis=0)
    top = np.percentile(max_envelopes, 95, axis=0)
    weak = top <= rest * 1.5 + 1e-9
    top = np.where(weak, np.maximum(rest * 1.5, rest + 1e-3), top)
    calibration = Calibration([float(v) for v in rest], [float(v) for v in top], device, mapping.envelope,
                              mapping.window)
    scale = 1.0 / np.maximum(top - rest, 1e-9)
    for name, (envelopes, theme) in (gestures or {}).items():
        levels = np.clip((envelopes - rest) * scale, 0.0, 1.0)
        calibration.gestures[name] = Gesture([round(float(v), 4) for v in levels.mean(axis=0)], theme)
    return calibration, [int(i) + 1 for i in np.flatnonzero(weak)]
