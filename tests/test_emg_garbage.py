"""Absurd EMG input on stage: a sample no device can read (1e200 on a serial line, nan, inf) never
poisons the levels or z, filters recover on their own, and a serial line of garbage is skipped,
counted and said once while the reader reads on."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from livegen import presets
from livegen.bench.emg import PtyFeeder, csv_lines
from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.sensors.emg import myo, open_device
from livegen.sensors.emg.cyton import Cyton, CytonFrames, encode_frame
from livegen.sensors.emg.device import DeviceStats
from livegen.sensors.emg.processing import INT8_LIMITS, Calibration, Mapping, MovingRms, OnePole, Processor
from livegen.sensors.emg.serial_csv import CsvLines
from livegen.sensors.emg.serial_port import parse_range
from livegen.sensors.emg.source import DeviceNotices, EmgControls

RATE = 200.0
WINDOW = round(Mapping().window * RATE)  # samples in one envelope window
ABSURD = [1e200, -1e200, 1e308, -1e308, math.inf, -math.inf, math.nan, 5e-324]
LIMITS = {"myo int8": INT8_LIMITS, "arduino": (0.0, 1023.0), "none": (-math.inf, math.inf)}
CHAINS = {  # name: (mapping, rectified)
    "raw rms, smoothed": (Mapping(), False),
    "raw ema": (Mapping(envelope="ema"), False),
    "envelope rms, unsmoothed": (Mapping(smoothing=0.0), True),
}


def processor(chain: str, limits=INT8_LIMITS) -> Processor:
    mapping, rectified = CHAINS[chain]
    low, high = limits if math.isfinite(limits[0]) else INT8_LIMITS
    calibration = Calibration.default((low, high), 8, rectified)
    return Processor(RATE, mapping, calibration, rectified, limits)


def run_in_blocks(p: Processor, samples: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Levels of every sample, the samples handed over in blocks of ``sizes`` (cycled): one by
    one, a BLE notification's two, a serial burst, a replay's long block."""
    out, start, i = [], 0, 0
    while start < len(samples):
        size = sizes[i % len(sizes)]
        out.append(p.run(samples[start:start + size]))
        start, i = start + size, i + 1
    return np.concatenate(out) if out else np.zeros((0, p.channels))


def valid(limits, rectified: bool, channels: int = 8):
    low, high = limits if math.isfinite(limits[0]) else INT8_LIMITS
    low = max(low, 0.0) if rectified else low
    return st.integers(1, 300).flatmap(lambda n: arrays(np.float64, (n, channels), elements=st.floats(low, high)))


def garbage(channels: int = 8):
    element = st.one_of(st.floats(), st.sampled_from(ABSURD))  # st.floats(): nan, inf, 1e308 and all between
    return st.integers(1, 40).flatmap(lambda n: arrays(np.float64, (n, channels), elements=element))


block_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=st.sampled_from(sorted(CHAINS)), limits=st.sampled_from(sorted(LIMITS)), channels=st.sampled_from([8, 3]),
       data=st.data(), sizes=block_sizes)
def test_any_floats_give_finite_levels_and_z_in_range(chain, limits, channels, data, sizes):
    element = st.one_of(st.floats(), st.sampled_from(ABSURD))
    samples = data.draw(st.integers(1, 120).flatmap(lambda n: arrays(np.float64, (n, channels), elements=element)))
    p = processor(chain, LIMITS[limits])
    levels = run_in_blocks(p, samples, sizes)
    z = p.z(levels)
    assert np.isfinite(levels).all() and (levels >= 0).all() and (levels <= 1).all()
    assert np.isfinite(z).all() and (z >= -1).all() and (z <= 1).all()
    assert np.isfinite(p.envelopes(samples)).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=st.sampled_from(["myo int8", "arduino"]), data=st.data(), sizes=block_sizes)
def test_after_one_window_of_valid_samples_an_envelope_chain_forgets_the_garbage(limits, data, sizes):
    """Moving RMS without smoothing is a window of the last samples only: one window after the
    garbage its levels are those of a chain that never saw it (to rounding: clamped to the
    device's limits, no square is large enough to leave more in the running sums)."""
    chain = "envelope rms, unsmoothed"
    before = data.draw(valid(LIMITS[limits], True))
    bad = data.draw(garbage())
    after = data.draw(valid(LIMITS[limits], True).filter(lambda a: len(a) >= WINDOW))
    seen = run_in_blocks(processor(chain, LIMITS[limits]), np.vstack([before, bad, after]), sizes)
    fresh = processor(chain, LIMITS[limits]).run(after)
    np.testing.assert_allclose(seen[len(before) + len(bad) + WINDOW - 1:], fresh[WINDOW - 1:], atol=1e-6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=st.sampled_from(sorted(CHAINS)), limits=st.sampled_from(["myo int8", "arduino"]), data=st.data(),
       sizes=block_sizes)
def test_garbage_moves_the_levels_no_more_than_the_strongest_real_sample(chain, limits, data, sizes):
    """Beyond the device's limits is clamped to them, a NaN holds the sample before: the levels
    are exactly those of that stream of real samples. The high-pass and the smoothing remember
    a spike only as long as they would a real one: 2 s later the levels are those of a chain
    that never saw it."""
    low, high = LIMITS[limits]
    bad = data.draw(garbage())
    after = data.draw(valid(LIMITS[limits], False).filter(lambda a: len(a) >= WINDOW))
    after = np.vstack([after] * (1 + 2 * int(RATE) // len(after)))
    stream = np.vstack([bad, after])
    real = np.clip(stream, low, high)
    for i, row in enumerate(real):  # a NaN holds its channel's sample before (the first: 0 within the limits)
        previous = real[i - 1] if i else np.clip(np.zeros(8), low, high)
        real[i] = np.where(np.isnan(row), previous, row)
    p = processor(chain, LIMITS[limits])
    seen = run_in_blocks(p, stream, sizes)
    np.testing.assert_allclose(seen, processor(chain, LIMITS[limits]).run(real), atol=1e-7)  # blocks: rounding
    fresh = processor(chain, LIMITS[limits]).run(after)
    settled = len(bad) + 2 * int(RATE)
    np.testing.assert_allclose(seen[settled:], fresh[settled - len(bad):], atol=1e-6)
    assert p.clamped == np.count_nonzero(~((stream >= low) & (stream <= high)))


def test_one_absurd_line_in_a_serial_burst_leaves_z_valid_within_a_window():
    """What a stage serial line did: a burst read at once with 1e200 inside, between single lines."""
    t = np.arange(2000) / RATE
    rows = np.round(60 * np.sin(2 * np.pi * 70 * t)[:, None] * (1 + np.arange(8)) / 8)
    burst = np.vstack([rows[1000:1005], np.full((1, 8), 1e200), rows[1005:1010]])
    p, fresh = processor("raw rms, smoothed"), processor("raw rms, smoothed")
    z = [p.z(p.run(rows[i:i + 1])) for i in range(1000)] + [p.z(p.run(burst))]
    z += [p.z(p.run(rows[i:i + 1])) for i in range(1010, 2000)]
    z = np.vstack(z)
    assert np.isfinite(z).all() and np.abs(z).max() <= 1
    full_scale = fresh.z(fresh.run(np.vstack([rows[:1005], np.full((1, 8), 127.0), rows[1005:]])))
    np.testing.assert_allclose(z, full_scale, atol=1e-9)  # it played as one full-scale sample would


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_a_filter_state_gone_non_finite_starts_over(chain):
    """With no limits to clamp to (a device that declares none), 1e200 overflows the squares: the
    filters whose state broke start over instead of holding a NaN (or an inf) forever."""
    p = processor(chain, LIMITS["none"])
    rows = np.random.default_rng(3).integers(0, 100, (600, 8)).astype(float)
    p.run(rows[:100])
    p.run(np.full((1, 8), 1e200))
    p.run(np.full((6, 8), math.inf))
    levels = np.vstack([p.run(rows[i:i + 1]) for i in range(100, 600)])
    assert np.isfinite(levels).all()
    assert all(part is None or part.finite() for part in (p.highpass, p.envelope, p.smooth))
    fresh = processor(chain, LIMITS["none"]).run(rows[100:600])
    np.testing.assert_allclose(levels[-100:], fresh[-100:], atol=1e-6)


def test_filters_say_whether_their_state_is_finite_and_reset():
    smooth, rms = OnePole.lowpass(0.05, RATE, 2), MovingRms(4, 2)
    smooth.step([math.nan, 1.0])
    rms.step([1e200, 0.0])
    assert not smooth.finite() and not rms.finite()
    smooth.reset()
    rms.reset()
    assert smooth.finite() and rms.finite() and rms.step([3.0, 0.0]) == [1.5, 0.0]


# --- what a device can send ------------------------------------------------------------------------

def test_each_device_knows_the_values_its_samples_can_take():
    assert open_device("serial:/dev/null,115200,csv").sample_limits == INT8_LIMITS
    assert open_device("serial:/dev/null,115200,csv,range=0..1023").sample_limits == (0.0, 1023.0)
    assert myo.EmgMode.RAW_FILTERED.sample_limits == INT8_LIMITS
    extremes = np.array([[-(2 ** 23), 2 ** 23 - 1] * 4])
    counts = CytonFrames(DeviceStats()).feed(encode_frame(0, extremes[0]) + encode_frame(1, extremes[0]) + b"\xa0")
    cyton = Cyton("/dev/null", gain=24.0)
    low, high = cyton.sample_limits
    assert low == counts.min() * cyton.scale and high == counts.max() * cyton.scale
    assert myo.decode_filtered_emg(myo.encode_filtered_emg(np.full(8, 65535))).max() <= \
        myo.EmgMode.FILTERED.sample_limits[1]


@pytest.mark.parametrize("text", ["-inf..inf", "0..1e300", "nan..1", "1..1"])
def test_a_declared_range_must_be_one_a_device_can_have(text):
    with pytest.raises(UserError, match="range="):
        parse_range(text, "serial")


def test_the_processor_for_a_device_clamps_to_that_devices_limits():
    device = open_device("serial:/dev/null,115200,csv,range=0..1023")
    p = Processor.for_device(device, Mapping(), Calibration.default(device.value_range, 8, False))
    assert p.limits == (0.0, 1023.0) and p.rate_hz == device.nominal_rate_hz
    p.run(np.array([[2000.0] * 8, [-5.0] * 8, [500.0] * 8]))
    assert p.clamped == 16


# --- serial lines ---------------------------------------------------------------------------------

GARBAGE_LINES = [b"1e200,0,0,0,0,0,0,0", b"nan,1,2,3,4,5,6,7", b"inf,-inf,0,0,0,0,0,0", b"NaN", b"1e999",
                 b"hello", b"1,2,x,4,5,6,7,8", b"1;2;3", b"1,2,3,4,5,6,7,8,9", b"\x00\xff\xfe\x80", b"-", b"emg1:",
                 b"1,2,3", b"9" * 400, b"0x10,1,2,3,4,5,6,7", b"\x1b[2J", b"1" * 600]
garbage_line = st.one_of(st.sampled_from(GARBAGE_LINES),
                         st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and b.strip() and
                                                                   CsvLines._numbers(b) is None))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), junk=st.lists(garbage_line, min_size=1, max_size=20),
       places=st.lists(st.integers(0, 40), min_size=20, max_size=20), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_every_garbage_line_is_skipped_counted_and_handed_on_once_each(seed, junk, places, cuts):
    rows = np.random.default_rng(seed).integers(-128, 128, (40, 8)).astype(float)
    lines = csv_lines(rows)
    stream = lines[:2]  # the width is learned first: garbage after it is news
    for i, line in enumerate(lines[2:], 2):
        stream += [bad + b"\n" for bad, at in zip(junk, places) if at == i] + [line]
    data = b"".join(stream)
    stats, skipped = DeviceStats(), []
    parser = CsvLines(stats, on_skip=skipped.append)
    points = sorted({c % (len(data) + 1) for c in cuts})
    got = [parser.feed(data[a:b]) for a, b in zip([0, *points], [*points, len(data)])]
    np.testing.assert_array_equal(np.concatenate([block for block in got if len(block)]), rows)
    wrongly_placed = sum(1 for at in places[:len(junk)] if not 2 <= at < 40)
    assert stats.parse_errors == len(skipped) == len(junk) - wrongly_placed


def emg_settings(**changes):
    return presets.EmgPreset(user="nobody", **changes)


def test_absurd_lines_over_a_pty_are_said_once_and_z_plays_on():
    """The acceptance scenario in one process: a board at 200 Hz, bursts with 1e200 (and other
    garbage) inside; every z the engine gets is finite, the reader thread lives, one line says why
    lines were skipped."""
    t = np.arange(1200) / RATE
    rows = np.round(100 * np.sin(2 * np.pi * 3 * t)[:, None] * np.sin(2 * np.pi * 60 * t)[:, None]
                    * np.linspace(0.3, 1, 8)).clip(-128, 127)
    chunks = csv_lines(rows)
    burst = b"".join(chunks[:5]) + b"1e200,1e200,1e200,1e200,1e200,1e200,1e200,1e200\nnan,0,0,0,0,0,0,0\n\xff\xfe\n"
    feeder = PtyFeeder(chunks, rate_hz=RATE, count=len(rows), garbage_every=150, garbage=burst)
    device = open_device(f"serial:{feeder.port},115200,csv")
    device.open()
    source = EmgControls.for_device(device, emg_settings())
    said: list[str] = []
    source.notices = DeviceNotices(device, "serial:pty", said.append)
    zs: list[tuple] = []
    source.start(lambda controls, when: zs.append(controls.z), time.monotonic)
    try:
        feeder.start()
        feeder.wait(30)
        deadline = time.monotonic() + 10
        while device.stats.samples < len(rows) + 35 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert source.device._thread.is_alive() and source._thread.is_alive()
    finally:
        source.stop()
        feeder.stop()
    assert device.stats.samples >= len(rows) + 35  # the 5 lines of each burst arrive too
    assert device.stats.parse_errors >= 3 * 7 and device.faults.count == 0 and source.faults.count == 0
    assert len(zs) > 50 and all(math.isfinite(v) and -1 <= v <= 1 for z in zs for v in z)
    skipped = [line for line in said if "skipped a line" in line]
    assert len(skipped) == 1 and "parse_errors" in skipped[0] and "baud" in skipped[0]
    assert source.counts()["parse_errors"] == device.stats.parse_errors


def test_samples_beyond_a_serial_boards_range_are_clamped_and_said_once():
    """An Arduino's 0..1023 read without range=: clamped to -128..127, counted, and one line says
    to give the range."""
    rows = np.random.default_rng(5).integers(0, 1024, (300, 8)).astype(float)
    feeder = PtyFeeder(csv_lines(rows), rate_hz=1000, count=len(rows))
    device = open_device(f"serial:{feeder.port},115200,csv")
    device.open()
    source = EmgControls.for_device(device, emg_settings())
    said: list[str] = []
    source.notices = DeviceNotices(device, "serial:pty", said.append)
    source.start(lambda controls, when: None, time.monotonic)
    try:
        feeder.start()
        feeder.wait(30)
        deadline = time.monotonic() + 10
        while device.stats.samples < len(rows) - 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        source.stop()
        feeder.stop()
    clamped = [line for line in said if "clamped" in line]
    assert len(clamped) == 1 and "range=0..1023" in clamped[0] and "-128..127" in clamped[0]
    assert source.view().stats["clamped"] == source.processor.clamped > 0
    assert all(math.isfinite(v) for v in source.view().z)


def test_nan_and_inf_samples_reach_the_source_as_finite_levels_and_z():
    """What the source shows and sends the engine stays finite (a NaN would reach the engine's z)."""
    source = EmgControls.for_device(open_device("serial:/dev/null,115200,csv"), emg_settings(),
                                    Controls(z=(0.0,) * 8))
    source._on_samples(np.array([[math.nan] * 8, [1e200] * 8, [-math.inf] * 8]), time.monotonic())
    assert all(math.isfinite(v) and -1 <= v <= 1 for v in source.view().z + source.view().levels)
