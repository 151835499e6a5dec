"""Camera hand tracking: capture, trackers on real photos and on videos made from real
frames, the mapping to controls, a lost camera, the CLI, and a hand sweep steering the engine."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import time

import cv2
import numpy as np
import pytest

import hand_scenes as scenes
from conftest import livegen_cmd, shared_data
from livegen import presets
from livegen.cli import main
from livegen.errors import UserError
from livegen.vision.labels import on_hand
from livegen.music.conditioning import Controls
from livegen.sensors import open_source
from livegen.bench.camera import bench_scene, camera_bench
from livegen.sensors.camera import CameraControls, camera_settings
from livegen.vision import TRACKER_NAMES
from livegen.vision.capture import FrameGrabber, FrameSource, ImageFolderSource, MemorySource
from livegen.vision.mapping import HandMapper, MappingSettings, OneEuroFilter
from livegen.vision.trackers import TRACKERS, ColorTracker, make_tracker


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def corr(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def loop_path(count: int, centre=(0.5, 0.65), radius=(0.32, 0.2)) -> list[tuple[float, float]]:
    return [(centre[0] + radius[0] * np.cos(2 * np.pi * i / count), centre[1] + radius[1] * np.sin(2 * np.pi * i / count))
            for i in range(count)]


@pytest.fixture(scope="module")
def hands():
    return shared_data("hands")


@pytest.fixture(scope="module")
def room(hands):
    """A real room with the performer in it (their hands painted out)."""
    up = sorted(n for n, boxes in scenes.labels(hands).items() if n.startswith("up/") and boxes)
    return scenes.room(hands, up[0])


@pytest.fixture(scope="module")
def hand(hands):
    return scenes.hand_sprite(hands)


# --- mapping ----------------------------------------------------------------------------------------

def test_one_euro_is_steady_at_rest_and_quick_when_the_hand_moves():
    rng = np.random.default_rng(0)
    t = np.arange(120) / 60.0
    rest = 0.4 + rng.normal(0, 0.01, len(t))
    f = OneEuroFilter(min_cutoff=1.0, beta=3.0)
    smoothed = np.array([f(x, ti) for x, ti in zip(rest, t)])
    assert smoothed[30:].std() < 0.3 * rest[30:].std()

    def after_fast_move(beta):  # 0.4 -> 0.9 in 0.1 s, then 0.1 s later
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        for ti in t[:60]:
            f(0.4, ti)
        moved = [f(min(0.9, 0.4 + 5.0 * (ti - t[60])), ti) for ti in 1.0 + np.arange(1, 13) / 60.0]
        return moved[-1]

    assert after_fast_move(3.0) > 0.85  # follows
    assert after_fast_move(0.0) < 0.75  # a plain 1 Hz low-pass lags far behind


def test_height_steers_pitch_and_left_right_density_with_mirror_region_and_dead_zone():
    plain = HandMapper(MappingSettings(mirror=False, dead_zone=0.0))
    assert plain.controls_at(0.5, 0.0) == (1.0, 0.5)  # top of the image: highest pitch
    assert plain.controls_at(0.5, 1.0) == (0.0, 0.5)
    assert plain.controls_at(0.0, 0.5) == (0.5, 0.0)  # image left: sparse
    mirrored = HandMapper(MappingSettings(mirror=True, dead_zone=0.0))
    assert mirrored.controls_at(0.0, 0.5) == (0.5, 1.0)  # the performer's right, seen from the camera
    region = HandMapper(MappingSettings(mirror=False, dead_zone=0.0, region=(0.25, 0.2, 0.75, 0.6)))
    assert region.controls_at(0.25, 0.6) == (0.0, 0.0)
    assert region.controls_at(0.75, 0.2) == (1.0, 1.0)
    assert region.controls_at(0.9, 0.9) == (0.0, 1.0)  # outside the region: clamped
    dead = HandMapper(MappingSettings(mirror=False, dead_zone=0.1))
    assert dead.controls_at(0.55, 0.45) == (0.5, 0.5)
    assert dead.controls_at(1.0, 0.0) == (1.0, 1.0)
    assert 0.5 < dead.controls_at(0.7, 0.5)[1] < 0.7


def test_a_lost_hand_holds_then_glides_to_neutral_and_eases_back():
    m = HandMapper(MappingSettings(mirror=False, dead_zone=0.0, lost_hold=1.0, lost_glide=2.0), neutral=(0.5, 0.5))
    for i in range(30):
        held = m.update((0.9, 0.1), i / 30)
    assert held[0] > 0.85 and held[1] > 0.85
    assert m.update(None, 1.5) == held  # hold
    assert m.update(None, 1.9) == held
    halfway = m.update(None, 1.0 + 1.0 + 1.0)
    assert 0.55 < halfway[0] < held[0]
    assert m.update(None, 5.0) == (0.5, 0.5)  # neutral after hold + glide
    back = m.update((0.9, 0.1), 5.04)
    assert 0.5 < back[0] < 0.85  # eases back in, no jump
    for i in range(30):
        back = m.update((0.9, 0.1), 5.04 + i / 30)
    assert back[0] > 0.85


# --- capture ----------------------------------------------------------------------------------------

def test_capture_hands_over_the_newest_frame_and_drops_stale_ones():
    frames = [np.full((24, 32, 3), i, np.uint8) for i in range(10)]
    grabber = FrameGrabber(MemorySource(frames, fps=200.0), drop_stale=True, pace=True).start()
    try:
        taken = []
        for _ in range(5):
            time.sleep(0.05)  # a slow tracker
            frame = grabber.next(timeout=1.0)
            taken.append(frame.index)
            assert time.monotonic() - frame.t < 0.03  # newest (a queue would hand over ~45 ms old frames)
        assert grabber.dropped > 20
        assert all(b - a > 3 for a, b in zip(taken, taken[1:]))
    finally:
        grabber.stop()


def test_a_folder_is_read_in_name_order_without_losing_frames(tmp_path):
    for i in (2, 0, 1, 3):
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), np.full((24, 32, 3), 10 * i, np.uint8))
    (tmp_path / "f01.png").write_bytes(b"not a png")
    warnings = []
    source = ImageFolderSource(tmp_path, warnings.append)
    source.open()
    grabber = FrameGrabber(source, drop_stale=False).start()
    got = []
    while (frame := grabber.next(timeout=2.0)) is not None:
        got.append((frame.index, int(frame.image[0, 0, 0])))
    grabber.stop()
    assert got == [(0, 0), (2, 20), (3, 30)]
    assert len(warnings) == 1 and "f01.png" in warnings[0]


class UnpluggableCamera(FrameSource):
    """A live source whose cable the test pulls and plugs back: reads fail and reopening fails
    while unplugged, like a USB camera."""

    live = True

    def __init__(self, image):
        super().__init__("camera 7")
        self.image, self.plugged, self.count = image, True, 0

    def open(self):
        if not self.plugged:
            raise UserError("no camera at index 7")

    def read(self):
        time.sleep(1 / 100)
        if not self.plugged:
            return None
        self.count += 1
        return self.count, self.image


def wait_for(condition, seconds=3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_an_unplugged_camera_glides_to_neutral_keeps_publishing_and_reconnects():
    image = np.full((240, 320, 3), 90, np.uint8)
    cv2.circle(image, (64, 48), 20, (40, 200, 40), -1)  # a green marker up and to the image's left
    camera = UnpluggableCamera(image)
    mapper = HandMapper(MappingSettings(mirror=False, dead_zone=0.0, lost_hold=0.1, lost_glide=0.2))
    logged, published = [], []
    controls = CameraControls(camera, ColorTracker((40, 80, 60), (80, 255, 255)), mapper, Controls(), log=logged.append)
    controls.reconnect_every = 0.05
    start = time.monotonic()
    controls.start(lambda c, t: published.append((c, t)), lambda: time.monotonic() - start)
    try:
        assert wait_for(lambda: controls.current.pitch > 0.75 and controls.current.density < 0.25)
        c, t = published[-1]
        assert t <= time.monotonic() - start  # stamped with the capture time
        camera.plugged = False
        assert wait_for(lambda: (controls.current.pitch, controls.current.density) == (0.5, 0.5))
        assert any("stopped delivering" in line for line in logged)
        camera.plugged = True
        assert wait_for(lambda: controls.current.pitch > 0.75)
        assert any("is back" in line for line in logged)
        assert controls._thread.is_alive()
    finally:
        controls.stop()


# --- trackers ---------------------------------------------------------------------------------------

def test_the_tracker_registry_matches_the_names_the_cli_offers():
    assert tuple(TRACKERS) == TRACKER_NAMES
    with pytest.raises(UserError, match="unknown tracker"):
        make_tracker("sonar", presets.CameraPreset())


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed here")
def test_mediapipe_missing_is_one_clear_line(capsys, hands):
    rc, out, err = run_cli(capsys, "track", "--source", str(hands / "custom-gesture" / "palm"), "--tracker", "mediapipe")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "MediaPipe" in err and "livegen[mediapipe]" in err


def test_skin_tracker_lands_on_the_hand_in_real_photos(hands):
    """Every 5th photo of each class; the boxes come from MediaPipe Hands (checked by eye)."""
    labels = scenes.labels(hands)
    tracker = make_tracker("skin", presets.CameraPreset())
    rates = {}
    for cls in ("palm", "up", "left", "right", "down"):
        names = sorted(n for n, boxes in labels.items() if n.startswith(cls + "/") and boxes)[::5]
        on = 0
        for name in names:
            position = tracker.locate(cv2.imread(str(hands / "custom-gesture" / name)))
            on += position is not None and on_hand(*position, labels[name])
        rates[cls] = on / len(names)
    assert min(rates.values()) >= 0.6, rates
    assert np.mean(list(rates.values())) >= 0.7, rates


def test_the_bench_reports_every_trackers_detection_rate_on_real_photos(hands):
    from livegen.bench.camera import hand_detection

    rates = hand_detection(str(hands), every=25)
    assert rates["photos"] >= 30 and set(TRACKERS) <= set(rates)
    assert rates["skin"]["on_hand"] >= 0.6 and rates["skin"]["detected"] >= rates["skin"]["on_hand"]
    assert rates["color"]["detected"] < 0.2  # nobody in these photos wears the glove it looks for


def test_skin_tracker_mostly_says_no_hand_in_real_rooms_without_one(hands):
    """Rooms with the performer's hands painted out: "no hand" is what lets the controls glide
    to neutral when the hand leaves, so the tracker must not always latch onto something."""
    names = sorted(n for n, boxes in scenes.labels(hands).items() if boxes)[::16]
    tracker = make_tracker("skin", presets.CameraPreset())
    reported = sum(tracker.locate(scenes.room(hands, name)) is not None for name in names)
    assert reported <= 0.6 * len(names), f"a hand in {reported} of {len(names)} empty rooms"


def test_motion_tracker_follows_a_real_hand_along_a_known_path(tmp_path, hands, room, hand):
    """Through the installed command, as a user runs it: `livegen track ... --json --frames`."""
    path = [None] * 20 + loop_path(180, centre=(0.5, 0.5), radius=(0.3, 0.3))
    video = tmp_path / "loop.avi"
    scenes.write_video(video, room, *hand, path)
    done = subprocess.run(livegen_cmd("track", "--source", str(video), "--tracker", "motion", "--json", "--frames"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["frames"] == len(path) and result["fps"] > 0
    pairs = [(p, q) for p, q in zip(result["positions"], path) if q is not None and p is not None]
    assert len(pairs) >= 0.95 * 180 and result["frames_with_hand"] >= 0.95 * 180
    assert corr([p["x"] for p, _ in pairs], [q[0] for _, q in pairs]) > 0.95
    assert corr([p["y"] for p, _ in pairs], [q[1] for _, q in pairs]) > 0.95
    assert np.median([np.hypot(p["x"] - q[0], p["y"] - q[1]) for p, q in pairs]) < 0.03


def test_skin_tracker_follows_a_real_hand_past_the_performers_face(tmp_path, capsys, room, hand):
    path = loop_path(120)
    video = tmp_path / "skin.avi"
    scenes.write_video(video, room, *hand, path)
    rc, out, _ = run_cli(capsys, "track", "--source", str(video), "--tracker", "skin", "--json", "--frames")
    assert rc == 0
    got = json.loads(out)["positions"]
    assert all(p is not None for p in got)
    assert corr([p["x"] for p in got], [q[0] for q in path]) > 0.95
    assert corr([p["y"] for p in got], [q[1] for q in path]) > 0.95


def green_glove(hand):
    """The real hand's shading in a green glove: the marker colour the color tracker follows."""
    sprite, alpha = hand
    hsv = cv2.cvtColor(sprite, cv2.COLOR_BGR2HSV)
    hsv[:, :, 0] = 60
    hsv[:, :, 1] = np.maximum(hsv[:, :, 1], 150)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), alpha


def test_calibrating_on_a_glove_saves_a_preset_the_color_tracker_then_follows(tmp_path, capsys, room, hand):
    path = loop_path(120)
    video, saved = tmp_path / "glove.avi", tmp_path / "stage.toml"
    scenes.write_video(video, room, *green_glove(hand), path)
    x, y = path[0]
    rc, out, err = run_cli(capsys, "calibrate", "camera", "--from-frames", str(video), "--point", f"{x:.3f},{y:.3f}",
                           "--save", str(saved), "--no-mirror")
    assert rc == 0, err
    camera = presets.load(str(saved)).camera
    assert camera.tracker == "color" and camera.mirror is False
    assert 50 <= camera.hsv_low[0] <= 60 <= camera.hsv_high[0] <= 70
    x0, y0, x1, y1 = camera.region  # where the glove went
    assert x0 < 0.2 and x1 > 0.8 and 0.35 < y0 < 0.45 and 0.85 < y1 < 0.95
    rc, out, err = run_cli(capsys, "track", "--preset", str(saved), "--json", "--frames")
    got = json.loads(out)["positions"]
    assert rc == 0 and all(p is not None for p in got)
    assert corr([p["x"] for p in got], [q[0] for q in path]) > 0.99
    assert corr([p["y"] for p in got], [q[1] for q in path]) > 0.99


# --- command line -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source, says", [("9", "no camera at index 9"), ("missing.avi", "no such video file"),
                                          ("empty", "no images in"), ("broken.avi", "cannot read video")])
def test_bad_sources_are_one_clear_line(tmp_path, capsys, monkeypatch, source, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.avi").write_bytes(b"RIFF but not a video")
    rc, out, err = run_cli(capsys, "track", "--source", source, "--json")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("livegen: error:") and says in err


def test_preview_without_a_gui_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((24, 32, 3), np.uint8))
    rc, _, err = run_cli(capsys, "track", "--source", str(tmp_path), "--preview")
    assert rc == 2 and err.count("\n") == 1 and "--preview needs" in err


def test_controls_spec_overrides_the_preset(tmp_path):
    settings = camera_settings("clip.avi,tracker=motion,mirror=false,lost_hold=0.5")
    assert (settings.source, settings.tracker, settings.mirror, settings.lost_hold) == ("clip.avi", "motion", False, 0.5)
    with pytest.raises(UserError, match="unknown setting 'colour'"):
        camera_settings("colour=red")
    with pytest.raises(UserError, match="camera.tracker"):
        camera_settings("tracker=sonar")
    with pytest.raises(UserError, match="no camera at index 9"):
        open_source("camera:9", Controls())


# --- performance ------------------------------------------------------------------------------------

def test_a_hand_sweep_from_bottom_to_top_drives_the_engines_pitch_up(tmp_path, room, hand):
    import mido

    from livegen.models.checkpoint import load_model
    from livegen.engine.engine import Engine, EngineSettings, OutputChoice

    fps = 30
    path = [(0.5, 0.85)] * fps + [(0.5, 0.85 - 0.7 * i / (3 * fps)) for i in range(3 * fps)] + [(0.5, 0.15)] * (2 * fps)
    video, take = tmp_path / "sweep.avi", tmp_path / "sweep.mid"
    scenes.write_video(video, room, *hand, path, fps=fps)
    source = open_source(f"camera:{video},tracker=skin,lost_hold=10", Controls())
    engine = Engine(load_model("charrnn"), OutputChoice(), EngineSettings(seed=1), source.initial(), record=str(take))
    engine.start()
    source.start(engine.set_controls, engine.now)
    seen = []
    try:
        while engine.now() < len(path) / fps:
            seen.append(source.current.pitch)
            time.sleep(0.05)
    finally:
        source.stop()
        engine.stop()
    assert source.frames_with_hand >= 0.9 * source.frames > 0
    assert seen[-1] > 0.8 and min(seen) < 0.2  # hand at 0.15..0.85 of the height, dead zone 0.05
    notes, now = [], 0.0
    for msg in mido.MidiFile(str(take)):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            notes.append((now, msg.note))
    times, pitches = np.array(notes).T
    low, high = pitches[times < times.min() + 1.5], pitches[times > times.max() - 1.5]
    assert len(low) >= 3 and len(high) >= 3
    assert high.mean() > low.mean() + 12, (low.mean(), high.mean())


def test_camera_bench_reports_fps_per_tracker_and_capture_to_control_latency():
    result = camera_bench(bench_scene(count=20), seconds=0.05)
    for name in ("color", "motion", "skin"):
        for size in ("320x240", "640x480"):
            assert result["fps"][name][size] > 0  # speed targets are the bench's to report, not a test's
    assert isinstance(result["fps"]["mediapipe"]["320x240"], (str, float))
    for row in result["latency"]:
        assert row["frames"] > 10
        assert row["latency_ms_p50"] > 0 and row["tracker_ms_p50"] > 0


def test_an_unreadable_image_in_a_folder_counts_as_a_frame_without_a_hand(tmp_path, capsys):
    import cv2 as cv

    for name in ("a.png", "c.png"):
        cv.imwrite(str(tmp_path / name), np.zeros((120, 160, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"not an image")
    rc, out, err = run_cli(capsys, "track", "--source", str(tmp_path), "--tracker", "skin", "--json", "--frames")
    assert rc == 0 and "skipped" in err
    result = json.loads(out)
    assert (result["frames"], result["unreadable"], len(result["positions"])) == (3, 1, 3)
    assert result["positions"][1] is None
