"""EMG input: serial CSV and Cyton devices over real ptys fed by emulator threads replaying the
real Myo recordings, the parsers under random bytes, processing and calibration on real data,
the CLI contracts, and the DCRNN played by the muscles."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import livegen_cmd, shared_data
from livegen import presets
from livegen.bench.emg import PtyFeeder, csv_lines, dcrnn_features, parse_process_us, separation, session_z
from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.sensors.emg import open_device
from livegen.sensors.emg.cyton import Cyton, CytonFrames, counts_to_microvolts, encode_frame
from livegen.sensors.emg.device import DeviceStats, EmgDevice
from livegen.sensors.emg.processing import (Calibration, Gesture, Mapping, Processor, calibrate_from,
                                            load_profile, profile_path)
from livegen.sensors.emg.replay import Replay, load_recording
from livegen.sensors.emg.serial_csv import CsvLines
from livegen.sensors.emg.source import DeviceNotices, EmgControls

MYO = ("emg", "myo-readings")


def fist_rows() -> tuple[np.ndarray, np.ndarray]:
    rec = load_recording(shared_data(*MYO, "12345-1", "7.txt"))
    return rec.samples, rec.labels


def wait_for(condition, limit: float = 30.0) -> None:
    """Poll until ``condition()`` holds (not a timing assertion: the limit only ends a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


class Collector:
    """A device sink keeping every block."""

    def __init__(self):
        self.blocks: list[np.ndarray] = []
        self.lock = threading.Lock()

    def __call__(self, block, arrival):
        with self.lock:
            self.blocks.append(np.array(block))

    def samples(self) -> np.ndarray:
        with self.lock:
            return np.concatenate(self.blocks) if self.blocks else np.zeros((0, 8))


# --- devices over real ptys ---------------------------------------------------------------------

def test_csv_lines_over_a_pty_arrive_whole_with_garbage_counted():
    rows, _ = fist_rows()
    rows = rows[:1500]
    feeder = PtyFeeder(csv_lines(rows), rate_hz=1500, count=len(rows), garbage_every=100)
    device = open_device(f"serial:{feeder.port},115200,csv")
    sink = Collector()
    device.start(sink)
    try:
        feeder.start()
        wait_for(lambda: device.stats.samples >= len(rows))
    finally:
        device.stop()
        feeder.stop()
    np.testing.assert_array_equal(sink.samples(), rows)
    assert device.stats.parse_errors == len(rows) // 100
    assert device.state == "stopped" and device.stats.reconnects == 0


def test_cyton_frames_over_a_pty_resync_and_count_gaps():
    rows, _ = fist_rows()
    rows = rows[:1200]
    counts = rows.astype(np.int64) * 1000  # int8 Myo units re-encoded as ADS1299 counts
    frames = [encode_frame(i, c) for i, c in enumerate(counts)]
    lost = {300, 301, 302}  # frames the "radio" loses: a sample-number gap of 3
    sent = [f for i, f in enumerate(frames) if i not in lost]
    feeder = PtyFeeder(sent, rate_hz=1500, count=len(sent), garbage_every=200,
                       garbage=b"OpenBCI V3 8-16 channel\n\xa0\x01garbage$$$")
    device = open_device(f"cyton:{feeder.port}")
    sink = Collector()
    device.start(sink)
    try:
        feeder.start()
        wait_for(lambda: device.stats.samples >= len(sent))
    finally:
        device.stop()
        feeder.stop()
    keep = [i for i in range(len(rows)) if i not in lost]
    got = sink.samples()
    expected = counts[keep] * counts_to_microvolts(24.0)
    np.testing.assert_allclose(got, expected)
    assert device.stats.dropped == 3
    assert device.stats.resyncs == len(sent) // 200  # one per garbage burst


def test_cyton_asks_the_board_to_stream_and_to_stop():
    feeder = PtyFeeder([encode_frame(0, [0] * 8)], rate_hz=100, count=0)
    device = Cyton(feeder.port)
    device.start(Collector())
    device.stop()
    said = b""
    while len(said) < 2:  # bytes come as they were written, maybe in two reads
        said += os.read(feeder.master, 16)
    assert said == b"bs"
    feeder.stop()


def test_serial_reconnects_after_unplug_and_z_glides_to_neutral(tmp_path, capsys):
    rows, labels = fist_rows()
    gesture = rows[labels == 7][:4000]  # a held fist
    link = tmp_path / "ttyEMG"
    first = PtyFeeder(csv_lines(gesture), rate_hz=400)
    link.symlink_to(first.port)
    preset = tmp_path / "quick.toml"
    preset.write_text("[emg]\nlost_hold = 0.0\nlost_glide = 0.3\npublish_step = 0.0\n")
    spec = f"serial:{link},115200,csv"
    source = EmgControls.from_spec(spec, Controls(z=(0.0,) * 8), str(preset))  # as perform --emg builds it
    published: list[Controls] = []
    source.start(lambda controls, t: published.append(controls), time.monotonic)
    second = None
    try:
        first.start()
        wait_for(lambda: source.device.stats.samples > 400)
        assert max(map(abs, published[-1].z)) > 0.3  # the muscles, not neutral
        first.stop()  # the cable is pulled
        wait_for(lambda: source.device.state == "reconnecting")
        wait_for(lambda: published[-1].z == (0.0,) * 8)  # glided to neutral while the device is gone
        second = PtyFeeder(csv_lines(gesture), rate_hz=400)
        link.unlink()
        link.symlink_to(second.port)  # plugged in again (as udev would re-point /dev/serial/by-id)
        second.start()
        wait_for(lambda: source.device.stats.reconnects == 1 and source.device.state == "connected")
        before = source.device.stats.samples
        wait_for(lambda: source.device.stats.samples > before + 200)
        wait_for(lambda: max(map(abs, published[-1].z)) > 0.3)  # following the muscles again
    finally:
        source.stop()
        if second is not None:
            second.stop()
    view = source.view()
    assert view.state == "stopped" and view.stats["reconnects"] == 1
    said = capsys.readouterr().err.splitlines()  # the performer is told, one line each time
    assert len(said) == 2, said
    assert said[0].startswith(f"livegen: EMG {spec} lost: {link} stopped answering")
    assert said[0].endswith("z glides to neutral while livegen reconnects")
    assert said[1] == f"livegen: EMG {spec} reconnected: the muscles play z again"


def test_a_missing_port_is_one_line_at_start():
    device = open_device("serial:/dev/ttyDOESNOTEXIST,115200,csv")
    with pytest.raises(UserError, match="cannot open the serial port /dev/ttyDOESNOTEXIST"):
        device.start(Collector())
    with pytest.raises(UserError, match="unknown EMG source"):
        open_device("bluetooth:xx")
    for bad in ("serial:", "serial:/dev/x,fast", "serial:/dev/x,115200,csv,range=9..1", "serial:/dev/x,csv,rate=-3",
                "cyton:/dev/x,gain=5", "replay:/nonexistent.csv", "serial:/dev/x,115200,json"):
        with pytest.raises(UserError):
            open_device(bad)


def _quiet_radio(fails: Exception | None = None):
    """A bleak scanner backend for a radio that hears no armband, or (``fails``) has none."""
    from bleak.backends.scanner import BaseBleakScanner

    class Radio(BaseBleakScanner):
        scans = 0

        def __init__(self, detection_callback, service_uuids, scanning_mode="active", **kwargs):
            super().__init__(detection_callback, service_uuids)

        async def start(self) -> None:
            Radio.scans += 1
            if fails is not None:
                raise fails

        async def stop(self) -> None:
            pass

    return Radio


@pytest.mark.parametrize("bluetooth", ["no armband", "no adapter"])
def test_a_performance_says_why_the_armband_does_not_play(monkeypatch, capsys, bluetooth):
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

    from livegen.sensors.emg import myo_ble, source as emg_source

    monkeypatch.setattr(myo_ble, "SCAN_TIMEOUT_S", 0.05)
    monkeypatch.setattr(myo_ble, "MAX_BACKOFF_S", 0.05)
    no_radio = BleakBluetoothNotAvailableError("no radio", BleakBluetoothNotAvailableReason.NO_BLUETOOTH)
    radio = _quiet_radio(no_radio if bluetooth == "no adapter" else None)
    monkeypatch.setattr(emg_source, "open_device", lambda spec: myo_ble.MyoBle.from_spec("", scanner_backend=radio))
    source = EmgControls.from_spec("myo", Controls())  # what perform --emg myo builds
    source.start(lambda controls, t: None, time.monotonic)
    try:
        wait_for(lambda: radio.scans >= 3 or source.device.state == "lost")
    finally:
        source.stop()
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1, said  # once, however many tries
    if bluetooth == "no adapter":
        assert radio.scans == 1 and source.device.error
        assert said[0].startswith("livegen: EMG myo is off, the music plays on with z at neutral: myo: Bluetooth "
                                  "is not available (no_bluetooth)") and "bluetoothd" in said[0]
    else:
        assert said[0] == ("livegen: EMG myo is not connected: no Myo found (is it charged and awake? tap it, or plug "
                           "it in and out); livegen keeps trying, z stays neutral meanwhile")


class Scripted(EmgDevice):
    """A device whose turns the test plays through the base class's own state and retry calls."""

    name = "scripted"

    @classmethod
    def from_spec(cls, args: str) -> "Scripted":
        return cls()

    def _step(self) -> bool:
        return True


def test_notices_say_each_turn_of_the_device_once():
    device, said = Scripted(), []
    DeviceNotices(device, "x", said.append)
    device._retry_later("no Myo found (tap it)", 0.5)
    device._retry_later("no Myo found (tap it)", 1.0)  # the same again: already said
    device._set_state("connected", "streaming")
    device._set_state("lost", "the armband went away")
    device._set_state("reconnecting")
    device._retry_later("no Myo found (tap it)", 0.5)  # while reconnecting: the lost line said it
    device.stats.reconnects += 1
    device._set_state("connected")
    device._set_state("connected")  # no change, no line
    device.error = "myo: firmware 0.9 is too old"
    device._set_state("lost")
    assert said == [
        "EMG x is not connected: no Myo found (tap it); livegen keeps trying, z stays neutral meanwhile",
        "EMG x connected: the muscles play z",
        "EMG x lost: the armband went away; z glides to neutral while livegen reconnects",
        "EMG x reconnected: the muscles play z again",
        "EMG x is off, the music plays on with z at neutral: myo: firmware 0.9 is too old"]


def test_notices_say_a_replay_ended(tmp_path):
    rows, _ = fist_rows()
    device = Replay.from_spec(f"{_recording(tmp_path, rows[:50])},speed=50")
    said: list[str] = []
    DeviceNotices(device, "replay:take.csv", said.append)
    device.start(Collector())
    wait_for(lambda: device.state == "ended")
    device.stop()
    assert said == ["EMG replay:take.csv: the recording ended; z glides to neutral"]


# --- parsers under random bytes ------------------------------------------------------------------

def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 10_000), max_size=8),
       start=st.integers(0, 5000))
def test_csv_parser_survives_any_bytes_and_resyncs_at_the_next_line(garbage, cuts, start):
    rows = np.random.default_rng(start).integers(-128, 128, (12, 8)).astype(float)
    lines = b"".join(csv_lines(rows))
    stats = DeviceStats()
    parser = CsvLines(stats)
    out = [parser.feed(b"".join(csv_lines(rows[:2])))]
    for chunk in _split(garbage + b"\n" + lines, cuts):
        block = parser.feed(chunk)
        assert block.ndim == 2 and block.shape[1] == 8
        out.append(block)
    got = np.concatenate(out)
    np.testing.assert_array_equal(got[-len(rows):], rows)  # every line after the garbage, whole


LINE_FORMATS = {  # what boards print, one sample per line
    "comma": ",".join,
    "comma and space": ", ".join,
    "tab": "\t".join,
    "space": " ".join,
    "trailing comma, CRLF": lambda values: ",".join(values) + ",\r",
    "plotter labels": lambda values: " ".join(f"emg{i + 1}:{v}" for i, v in enumerate(values)),
    "spaced labels, tab": lambda values: "\t".join(f"ch_{i}.raw : {v}" for i, v in enumerate(values)),
}
GARBAGE_LINES = [b"hello", b"1,2,x", b"nan", b"1e999,2", b"1;2;3", b"1,2,3,4,5,6,7,8,9", b"emg1:", b"\x00\xff", b"5,6"]


@pytest.mark.parametrize("channels", [1, 3, 8])
@pytest.mark.parametrize("form", LINE_FORMATS)
def test_csv_lines_round_trip_every_format(form, channels):
    rows = np.random.default_rng(channels).integers(-128, 128, (20, channels)).astype(float)
    rows[::3] += 0.25  # decimals too
    text = "".join(LINE_FORMATS[form]([f"{v:g}" for v in row]) + "\n" for row in rows).encode()
    stats = DeviceStats()
    parser = CsvLines(stats)
    got = [parser.feed(text), parser.feed(b"\n".join(GARBAGE_LINES) + b"\n"), parser.feed(text)]
    np.testing.assert_array_equal(np.concatenate(got), np.vstack([rows, rows]))
    assert parser.channels == channels
    assert stats.parse_errors == len(GARBAGE_LINES)  # each line that is not a sample counted once


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 10_000), max_size=8),
       start=st.integers(0, 11_000))
def test_cyton_parser_survives_any_bytes_and_resyncs_within_one_frame(garbage, cuts, start):
    rows, _ = fist_rows()
    counts = rows[start:start + 10].astype(np.int64) * 1000
    frames = b"".join(encode_frame(start + i, c) for i, c in enumerate(counts))
    stats = DeviceStats()
    parser = CytonFrames(stats)
    out = [parser.feed(frames)]  # locked on
    for chunk in _split(garbage + frames, cuts):
        out.append(parser.feed(chunk))
    got = np.concatenate(out)
    assert got.shape[1] == 8
    np.testing.assert_array_equal(got[-(len(counts) - 1):], counts[1:])  # at most the first frame lost
    assert len(parser._buffer) <= 2 * 33  # nothing piles up


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=400))
def test_recording_loader_says_what_is_wrong_or_loads(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("rec") / "take.csv"
    path.write_text(text)
    try:
        rec = load_recording(path)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert rec.samples.ndim == 2 and 1 <= rec.samples.shape[1] <= 8 and rec.rate_hz > 0


_number = st.one_of(st.integers(-300, 300).map(str), st.floats(-500, 500).map(lambda v: f"{v:.2f}"))
_row = st.builds(lambda values, sep: sep.join(values), st.lists(_number, min_size=1, max_size=12),
                 st.sampled_from([",", "\t", " ", ", "]))
_stray = st.one_of(st.sampled_from(["", "  ", "e1,e2,e3", "hello", "1,2,x", "nan,1", "1e999", ",,"]),
                   st.text(max_size=12))


def _first_bad_line(text: str) -> int | None:
    """What a careful reader says is wrong first: the number of the first line after an optional
    header (a first line of no numbers) that is not finite numbers, or has another count of them
    than the first sample."""
    width, header = None, True
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in re.split(r"[,\t ]+", line) if v]
        except ValueError:
            values = []
        if not values and header:
            header = False
            continue
        header = False
        if not values or not all(np.isfinite(values)) or (width is not None and len(values) != width):
            return number
        width = len(values)
    return None


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(_row, _row, _row, _stray), max_size=30), same=st.booleans())
def test_recordings_of_uneven_rows_name_the_line(tmp_path_factory, lines, same):
    if same:  # most files are well formed: give every numeric row one width
        lines = [",".join(["1"] * 4) if re.fullmatch(r"[-0-9., \t]+", line) else line for line in lines]
    text = "\n".join(lines)
    path = tmp_path_factory.mktemp("rec") / "take.csv"
    path.write_text(text)
    bad = _first_bad_line(text)
    try:
        rec = load_recording(path)
    except UserError as exc:
        assert "\n" not in str(exc)
        if bad is not None:
            assert re.search(rf"\bline {bad}\b", str(exc)), (str(exc), bad)
    else:
        assert bad is None
        assert rec.samples.ndim == 2 and 1 <= rec.samples.shape[1] <= 8 and rec.rate_hz > 0


# --- processing and calibration on real data --------------------------------------------------------

@pytest.mark.parametrize("channels, rectified", [(8, False), (2, True)])  # a Myo; a 2-channel MyoWare envelope
def test_blocks_of_any_size_give_the_same_levels(channels, rectified):
    rows, _ = fist_rows()
    rows = np.abs(rows[:3000, :channels]) if rectified else rows[:3000]
    calibration = Calibration.default((-128.0, 127.0), 8, rectified)
    whole = Processor(200.0, Mapping(), calibration, rectified).run(rows)
    processor = Processor(200.0, Mapping(), calibration, rectified)
    sizes = np.random.default_rng(1).integers(1, 40, 400)  # sample by sample up to SMALL_BLOCK, vectorised above
    edges = np.minimum(np.cumsum(np.concatenate([[0], sizes])), len(rows))
    pieces = [processor.run(rows[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    np.testing.assert_allclose(np.concatenate(pieces), whole[:edges[-1]], atol=1e-9)
    ema = Mapping(envelope="ema")
    one_by_one = Processor(200.0, ema, calibration)
    np.testing.assert_allclose(np.concatenate([one_by_one.run(rows[i:i + 1]) for i in range(300)]),
                               Processor(200.0, ema, calibration).run(rows[:300]), atol=1e-9)


def test_calibrated_rest_and_fist_land_at_the_ends_of_z():
    zs = session_z(shared_data(*MYO, "45612-1"))
    rest_z, _ = zs[0]
    fist_z, labels = zs[7]
    assert np.median(rest_z) < -0.8  # a relaxed arm: the dims sit near -1
    held = fist_z[labels == 7]
    assert np.median(held) > np.median(fist_z[labels == 0]) + 0.5
    assert np.all((fist_z >= -1) & (fist_z <= 1))


def test_rest_and_gestures_are_clearly_apart_in_z():
    result = separation(shared_data(*MYO))
    for session in result.values():
        assert session["min"] > 1.5, session  # class means further apart than the spread, every gesture
        assert session["gesture_accuracy"] > 0.6  # 8 classes: chance is 0.125


def test_a_dims_without_a_channel_stay_neutral():
    processor = Processor(200.0, Mapping(z=[2, 0, 1]), Calibration([1.0] * 8, [5.0] * 8))
    levels = processor.run(np.full((50, 2), 40.0))[-1]  # a 2-channel board
    z = processor.z(levels)
    assert z.shape == (8,)  # the dims the preset does not list are there, neutral
    assert z[1] == 0.0 and z[2] > -1 and z[0] > -1 and np.all(z[3:] == 0.0)


def test_profile_round_trip_and_strict_errors():
    calibration = Calibration([1.0] * 8, [9.0] * 8, "serial:/dev/x", gestures={"fist": Gesture([0.5] * 8, "B")})
    calibration.save(profile_path("ana"))
    loaded = load_profile("ana")
    assert loaded.rest == calibration.rest and loaded.gestures["fist"].theme == "B"
    assert load_profile("nobody") is None
    profile_path("bad").write_text("rest = [1, 2]\nmax = [1]\n")
    with pytest.raises(UserError, match="same number"):
        load_profile("bad")
    profile_path("typo").write_text("rest = [1]\nmax = [2]\nrset = 3\n")
    with pytest.raises(UserError, match="rset"):
        load_profile("typo")
    with pytest.raises(UserError):
        profile_path("../etc/passwd")


def test_preset_emg_section_is_strict(tmp_path):
    assert presets.load(None).emg.z == [1, 2, 3, 4, 5, 6, 7, 8]
    with pytest.raises(UserError, match="emg.z"):
        presets.parse("[emg]\nz = [9]\n")
    with pytest.raises(UserError, match="emg.windw"):
        presets.parse("[emg]\nwindw = 0.1\n")
    with pytest.raises(UserError, match="envelope"):
        presets.parse('[emg]\nenvelope = "peak"\n')


# --- sources: gestures, merging ---------------------------------------------------------------------

def _recording(tmp_path, *parts: np.ndarray) -> Path:
    path = tmp_path / "session.csv"
    path.write_text("".join(line.decode() for part in parts for line in csv_lines(part)))
    return path


def test_a_held_gesture_recalls_its_theme(tmp_path):
    rows, labels = fist_rows()
    rest, fist = rows[labels == 0][:600], rows[labels == 7][:1200]
    mapping = Mapping()
    envelopes = Processor(200.0, mapping, Calibration.default((-128.0, 127.0), 8, False)).envelopes
    calibration, _ = calibrate_from(envelopes(rest), envelopes(fist), "test", mapping,
                                    {"fist": (envelopes(fist), "B")})
    calibration.save(profile_path("player"))
    device = Replay.from_spec(f"{_recording(tmp_path, rest, fist)},speed=4")
    source = EmgControls.for_device(device, presets.EmgPreset(user="player"), Controls())
    published: list[Controls] = []
    source.start(lambda controls, t: published.append(controls), time.monotonic)
    try:
        wait_for(lambda: device.state == "ended")
    finally:
        source.stop()
    themes = [c.theme for c in published]
    assert themes[0] == "A" and themes[-1] == "B"
    assert source.calibrated and source.view().gesture == "fist"


def test_the_hub_keeps_the_armbands_part_and_the_others():
    from livegen.take.controls import ControlHub

    got: list[Controls] = []
    hub = ControlHub()
    hub.attach(SimpleNamespace(running=True, set_controls=lambda c, t=None: got.append(c), now=lambda: 0.0))
    muscles, script = hub.armband(), hub.script()
    muscles(Controls(z=(0.5,) * 8, theme="C"))
    hub.gesture(Controls(pitch=0.9, density=0.1))  # a camera: knows nothing of z or the theme
    assert got[-1].pitch == 0.9 and got[-1].z == (0.5,) * 8 and got[-1].theme == "C"
    muscles(Controls(z=(-0.5,) * 8, theme="C"))
    assert got[-1].pitch == 0.9 and got[-1].z == (-0.5,) * 8
    script(Controls(pitch=0.2, theme="D"))  # a script naming its own theme wins
    assert got[-1].theme == "D" and got[-1].z == (-0.5,) * 8


# --- the command line -------------------------------------------------------------------------------

def test_bench_times_bytes_to_the_z_handed_to_the_engine():
    rows, _ = fist_rows()
    result = parse_process_us(rows, count=400)
    assert set(result) == {"csv", "cyton", "myo"}  # a serial line, a Cyton frame, a BLE notification
    for figures in result.values():  # timings are the bench's to report, not a test's to assert
        assert figures["p50"] > 0 and figures["z_handed_per_sample"] > 0  # z reached the sink, not just the parser


def test_emg_json_contract_over_a_pty():
    rows, _ = fist_rows()
    feeder = PtyFeeder(csv_lines(rows), rate_hz=200, garbage_every=100).start()
    try:
        run = subprocess.run(livegen_cmd("emg", "--source", f"serial:{feeder.port},115200,csv", "--json",
                                         "--duration", "3"), capture_output=True, text=True, timeout=60)
    finally:
        feeder.stop()
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    for key in ("samples", "rate_hz", "parse_errors", "dropped", "resyncs", "reconnects"):
        assert key in result
    assert result["samples"] > 100 and result["parse_errors"] >= 1 and result["dropped"] == 0
    assert result["rate_hz"] > 0


def test_emg_replay_ends_by_itself_and_prints_a_meter(tmp_path):
    rows, _ = fist_rows()
    path = _recording(tmp_path, rows[:400])
    run = subprocess.run(livegen_cmd("emg", "--source", f"replay:{path},speed=2"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "|" in run.stdout and "400 samples" in run.stdout


def test_emg_bad_sources_are_one_line_errors(tmp_path):
    uneven = tmp_path / "uneven.csv"
    uneven.write_text("1,2,3,4,5,6,7,8,0\n1,2,3\n")
    for spec, says in (("serial:/dev/ttyNOPE,115200,csv", "ttyNOPE"), ("wifi:1", "unknown EMG source"),
                       ("replay:/nonexistent.csv", "does not exist"), (f"replay:{uneven}", "line 2 has 3 numbers"),
                       (f"replay:{tmp_path}", "is a folder")):
        run = subprocess.run(livegen_cmd("emg", "--source", spec, "--json", "--duration", "1"),
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr and says in run.stderr, run.stderr


def test_calibrate_emg_without_a_terminal(tmp_path):
    rows, labels = fist_rows()
    rest, fist = rows[labels == 0], rows[labels == 7]
    # rest (settle + 2 s), then the strongest contraction (settle + 3 s), then the fist gesture (settle + 2 s);
    # 4 s of fist to spare: the replay streams on while a loaded machine is slow to start each step
    path = _recording(tmp_path, rest[:500], fist[:2000])
    run = subprocess.run(livegen_cmd("calibrate", "emg", "--source", f"replay:{path},speed=2", "--user", "ana",
                                     "--rest-seconds", "2", "--max-seconds", "3", "--settle", "0.5",
                                     "--gesture", "fist=B", "--gesture-seconds", "2"),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    calibration = load_profile("ana")
    assert all(top > low for top, low in zip(calibration.max, calibration.rest))
    assert np.mean(calibration.gestures["fist"].centroid) > 0.2 and calibration.gestures["fist"].theme == "B"
    run = subprocess.run(livegen_cmd("emg", "--source", f"replay:{path},speed=4", "--user", "ana", "--json"),
                         capture_output=True, text=True, timeout=60)
    assert json.loads(run.stdout)["calibrated"] is True
    run = subprocess.run(livegen_cmd("calibrate", "emg", "--source", f"replay:{path},speed=4", "--rest-seconds", "20"),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and "ended during calibration" in run.stderr


def test_camera_calibration_still_answers():
    run = subprocess.run(livegen_cmd("calibrate", "camera", "--seconds", "0"), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "--seconds must be positive" in run.stderr


# --- the muscles play the DCRNN ---------------------------------------------------------------------

def test_perform_dcrnn_with_emg_records_the_z_it_played(tmp_path):
    rows, labels = fist_rows()
    path = _recording(tmp_path, rows[:2000])  # 5 s rest, then the fist
    take = tmp_path / "take.mid"
    run = subprocess.run(livegen_cmd("perform", "--model", "dcrnn", "--no-port", "--duration", "8",
                                     "--emg", f"replay:{path},speed=1", "--pitch", "0.7", "--record", str(take)),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    changes = [json.loads(line) for line in take.with_suffix(".jsonl").read_text().splitlines()]
    zs = np.array([row["z"] for row in changes if "z" in row and row["z"] is not None])
    assert len(zs) > 10 and zs.min() >= -1 and zs.max() <= 1
    assert zs[:, :].max() - zs.min() > 0.5  # rest and fist played different z
    assert all(row.get("pitch", 0.7) == 0.7 for row in changes if "t" in row)  # --pitch kept beside the armband


def test_perform_with_a_missing_emg_port_fails_before_playing():
    run = subprocess.run(livegen_cmd("perform", "--model", "dcrnn", "--no-port", "--duration", "1",
                                     "--emg", "serial:/dev/ttyNOPE"), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "cannot open the serial port /dev/ttyNOPE" in run.stderr and "check the cable" in run.stderr


def test_dcrnn_notes_differ_between_gestures():
    from livegen.models.checkpoint import load_model

    result = dcrnn_features(load_model("dcrnn"), shared_data(*MYO), seconds=8.0)
    rates = [g["notes_per_s"] for g in result["gestures"].values()]
    assert max(rates) - min(rates) > 1.0  # notes per second
    assert result["between_over_within_seeds"] > 1.0


def test_neuro_breakout_recordings_load_at_their_own_rate_and_mode():
    folder = shared_data("emg", "neuro-breakout")
    envelope = load_recording(folder / "20_0x01_filtered.csv")
    raw = load_recording(folder / "20_0x03_raw.csv")
    assert envelope.rectified and 45 < envelope.rate_hz < 55  # mode 0x01: a 50 Hz envelope
    assert not raw.rectified and 190 < raw.rate_hz < 210 and raw.samples.shape[1] == 8


def test_controls_emg_names_the_armband_alone(tmp_path):
    from livegen.sensors import open_source

    rows, _ = fist_rows()
    source = open_source(f"emg:replay:{_recording(tmp_path, rows[:100])}", Controls())
    assert isinstance(source, EmgControls) and source.device.name == "replay"


def test_replay_loop_is_a_flag_after_the_file():
    from livegen.sensors.emg import open_device

    path = shared_data("emg", "myo-readings", "12345-1", "7.txt")
    assert open_device(f"replay:{path},loop").loop and not open_device(f"replay:{path}").loop
