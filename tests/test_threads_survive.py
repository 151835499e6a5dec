"""Every long-running thread lives through an exception: a sensor source's thread, an EMG device's
reader, the commentary worker and the panel's workers each get one injected failure, and each
says it once (what, and what to do), counts it, and its values keep flowing."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from livegen import presets
from livegen.faults import Faults, guarded, run_steps
from livegen.music.conditioning import Controls
from livegen.sensors.base import ControlSource
from livegen.sensors.emg.device import EmgDevice
from livegen.sensors.emg.processing import Calibration, Mapping, Processor
from livegen.sensors.emg.source import DeviceNotices, EmgControls


def wait_for(condition, limit: float = 20.0) -> None:
    """Poll until ``condition()`` holds (the limit only ends a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


class FailsOnce:
    """Wraps ``call``: the first ``times`` calls raise ``error`` (at one place), later ones go through."""

    def __init__(self, call, error: Exception, times: int = 1):
        self.call, self.error, self.left = call, error, times

    def __call__(self, *args, **kwargs):
        if self.left > 0:
            self.left -= 1
            raise self.error
        return self.call(*args, **kwargs)


def the_line_about(said: list[str], error: str) -> str:
    lines = [line for line in said if error in line]
    assert len(lines) == 1, said  # said exactly once
    return lines[0]


# --- the template ----------------------------------------------------------------------------------

def test_run_steps_records_each_failure_says_each_kind_once_and_goes_on():
    said, done = [], []
    faults = Faults("the test thread", "do this", said.append)

    def step() -> bool:
        done.append(len(done))
        if len(done) <= 3:
            raise ValueError("always the same")
        if len(done) == 4:
            raise KeyError("another kind")
        return len(done) == 6

    stop = threading.Event()
    run_steps(step, stop, faults)
    assert len(done) == 6 and faults.count == 4 and faults.last == "KeyError: 'another kind'"
    assert len(said) == 2
    line = the_line_about(said, "ValueError: always the same")
    assert line.startswith("the test thread met an error and carries on") and "do this" in line
    assert "test_threads_survive.py" in line  # where it was raised


def test_a_closed_stderr_cannot_end_the_thread_it_reports_for():
    def broken_say(text: str) -> None:
        raise ValueError("I/O operation on closed file")

    faults = Faults("the test thread", "do this", broken_say)
    guarded(FailsOnce(lambda: None, RuntimeError("boom")), faults)()
    assert faults.count == 1


# --- a control source ------------------------------------------------------------------------------

class Counting(ControlSource):
    """Publishes a new pitch every step (a camera, an armband)."""

    name = "counting"

    def __init__(self, said: list[str]):
        super().__init__(said.append)
        self.steps = 0

    @classmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "Counting":
        return cls([])

    def _step(self) -> bool:
        self.steps += 1
        self.publish(Controls(pitch=(self.steps % 100) / 100), None)
        time.sleep(0.002)
        return False


@pytest.mark.parametrize("failures", [1, 5])
def test_a_control_source_lives_through_a_failing_step(failures):
    said: list[str] = []
    source = Counting(said)
    source._step = FailsOnce(source._step, RuntimeError("the sensor hiccuped"), failures)
    published: list[Controls] = []
    source.start(lambda controls, t: published.append(controls), time.monotonic)
    try:
        wait_for(lambda: len(published) >= 30)
        assert source._thread.is_alive()
    finally:
        source.stop()
    assert source.faults.count == failures
    line = the_line_about(said, "RuntimeError: the sensor hiccuped")
    assert "the counting controls" in line and "restart the source" in line


def test_the_camera_lives_through_a_failure_past_the_tracker():
    from livegen.sensors.camera import CameraControls
    from livegen.vision.capture import MemorySource
    from livegen.vision.mapping import HandMapper, MappingSettings

    class Sweep:
        """A tracker seeing a hand move left to right."""

        name = "sweep"

        def __init__(self):
            self.frames = 0

        def locate(self, image):
            self.frames += 1
            return (self.frames % 60) / 60, 0.5

    source = MemorySource([np.zeros((8, 8, 3), np.uint8)] * 4, fps=200.0)
    mapper = HandMapper(MappingSettings(dead_zone=0.0))
    mapper.update = FailsOnce(mapper.update, ZeroDivisionError("float division by zero"))
    said: list[str] = []
    camera = CameraControls(source, Sweep(), mapper, Controls(), pace=True, log=said.append)
    published: list[Controls] = []
    camera.start(lambda controls, t: published.append(controls), time.monotonic)
    try:
        wait_for(lambda: len(published) >= 20)
        assert camera._thread.is_alive()
    finally:
        camera.stop()
    assert camera.faults.count == 1
    assert "the camera controls" in the_line_about(said, "ZeroDivisionError")


def test_the_armbands_watchdog_lives_through_a_failing_check():
    """No samples come: z holds, then glides to neutral, through one failed glide step."""
    device = Silent()
    settings = presets.EmgPreset(user="nobody", lost_hold=0.0, lost_glide=0.5, publish_step=0.01)
    processor = Processor(200.0, Mapping(), Calibration.default((-128.0, 127.0), 8, False))
    said: list[str] = []
    source = EmgControls(device, processor, Controls(z=(0.8,) * 8), settings, calibrated=False)
    source.faults.say = said.append
    source._send = FailsOnce(source._send, KeyError("z"))
    published: list[Controls] = []
    source.start(lambda controls, t: published.append(controls), time.monotonic)
    try:
        wait_for(lambda: published and published[-1].z == (0.0,) * 8)
        assert source._thread.is_alive()
    finally:
        source.stop()
    assert source.faults.count == 1 and len(published) >= 5
    assert "the emg controls" in the_line_about(said, "KeyError: 'z'")


# --- an EMG device's reader ------------------------------------------------------------------------

class Silent(EmgDevice):
    """An armband that never sends."""

    name = "silent"

    @classmethod
    def from_spec(cls, args: str) -> "Silent":
        return cls()

    def _step(self) -> bool:
        return self._stop.wait(0.01)


class Steady(EmgDevice):
    """A board sending one sample per step."""

    name = "steady"

    def __init__(self):
        super().__init__()
        self.sent = 0

    @classmethod
    def from_spec(cls, args: str) -> "Steady":
        return cls()

    def _step(self) -> bool:
        self._set_state("connected")
        self.sent += 1
        self.emit(np.full((1, 8), float(40 * (self.sent % 3))))
        time.sleep(0.002)
        return False


def test_an_emg_reader_lives_through_a_failing_read():
    device = Steady()
    said: list[str] = []
    DeviceNotices(device, "steady", said.append)
    device._step = FailsOnce(device._step, OSError(5, "Input/output error"))
    blocks: list[np.ndarray] = []
    device.start(lambda block, arrival: blocks.append(block))
    try:
        wait_for(lambda: len(blocks) >= 30)
        assert device._thread.is_alive() and device.state == "connected"
    finally:
        device.stop()
    assert device.faults.count == 1 and device.error is None
    line = the_line_about(said, "OSError: [Errno 5] Input/output error")
    assert line.startswith("EMG steady: the EMG steady reader met an error") and "reconnect the device" in line


def test_a_block_the_processing_fails_on_is_left_behind_and_z_flows_on():
    device = Steady()
    settings = presets.EmgPreset(user="nobody", publish_step=0.01)
    processor = Processor(200.0, Mapping(smoothing=0.0), Calibration([0.0] * 8, [40.0] * 8), limits=(-128.0, 127.0))
    processor.run = FailsOnce(processor.run, FloatingPointError("overflow in the envelope"))
    source = EmgControls(device, processor, Controls(z=(0.0,) * 8), settings, calibrated=True)
    said: list[str] = []
    source.notices = DeviceNotices(device, "steady:", said.append)
    published: list[Controls] = []
    source.start(lambda controls, t: published.append(controls), time.monotonic)
    try:
        wait_for(lambda: len(published) >= 10)
        assert device._thread.is_alive()
    finally:
        source.stop()
    assert device.faults.count == 1 and source.counts()["faults"] == 1
    assert "FloatingPointError" in the_line_about(said, "overflow in the envelope")


# --- the commentary worker -------------------------------------------------------------------------

def test_the_commentary_worker_lives_through_a_failing_sentence():
    from livegen.commentary.commentator import Comment
    from livegen.commentary.worker import CommentaryWorker
    from livegen.music.events import Note

    class Writer:
        def comment(self, notes, now, programs, drums, seconds):
            return Comment(f"{len(notes)} notes were played just now, softly", ["calm"], now)

    writer = Writer()
    writer.comment = FailsOnce(writer.comment, IndexError("list index out of range"), times=3)
    played = [Note(t / 4, t / 4 + 0.2, 60 + t % 12, 80) for t in range(40)]
    said: list[str] = []
    worker = CommentaryWorker(lambda: (played, 10.0), writer, every_bars=0.05, bpm=600, log=said.append).start()
    try:
        wait_for(lambda: len(worker.history) >= 3)
        assert worker.running
    finally:
        worker.stop()
    assert worker.faults.count == 3
    line = the_line_about(said, "IndexError: list index out of range")
    assert "switch the commentary off" in line and worker.error == line.removeprefix("livegen: ")


# --- the panel's workers ---------------------------------------------------------------------------

def drain(errors) -> list[str]:
    out = []
    while not errors.empty():
        out.append(errors.get())
    return out


def test_the_panels_take_worker_lives_through_a_failing_job():
    from livegen.errors import UserError
    from livegen.gui.workers import TakeWorker
    from livegen.take.controls import ControlHub

    def refuse() -> None:
        raise UserError("no such port: synth")

    takes = TakeWorker(ControlHub())
    done: list[int] = []
    crash = FailsOnce(lambda: None, AttributeError("'NoneType' object has no attribute 'start'"), times=2)
    try:
        takes._submit(crash)
        takes._submit(crash)  # the same bug again: counted, not shown twice
        takes._submit(refuse)
        takes._submit(done.append, 1)
        wait_for(lambda: not takes.busy)
    finally:
        takes.shutdown()
    assert done == [1] and takes.faults.count == 2
    errors = drain(takes.errors)
    assert errors[1] == "no such port: synth" and len(errors) == 2  # a user's error is said every time
    assert "press Play again" in the_line_about(errors, "AttributeError")


def test_the_panels_port_listing_lives_through_a_failing_listing():
    from types import SimpleNamespace

    from livegen.gui.workers import PortWatch

    watch = PortWatch()

    def open_lister(api: str) -> None:
        watch._api, watch._resolved = api, api
        watch._lister = SimpleNamespace(get_ports=lambda: ["synth"], delete=lambda: None)

    watch._open_lister = FailsOnce(open_lister, TypeError("bad api"))
    try:
        watch.refresh("alsa")
        wait_for(lambda: watch._future.done())
        watch.refresh("alsa")
        wait_for(lambda: watch.latest is not None)
    finally:
        watch.shutdown()
    assert watch.latest[1] == ["synth"] and watch.faults.count == 1
    assert "port lists" in the_line_about(drain(watch.errors), "TypeError: bad api")


def test_the_panels_osc_worker_lives_through_a_failing_restart():
    from livegen.gui.workers import OscLink, PanelPerformance, TakeWorker
    from livegen.take.controls import ControlHub

    hub = ControlHub()
    takes = TakeWorker(hub)
    link = OscLink(PanelPerformance(hub, lambda name: None, lambda preset: None), takes, lambda text: None)
    restarts: list[int] = []
    link._restart = FailsOnce(lambda port, host, out: restarts.append(port), OSError(98, "Address in use"))
    try:
        link.configure(9000, "127.0.0.1", "")
        link.configure(9001, "127.0.0.1", "")
    finally:
        link.shutdown()
        takes.shutdown()
    assert restarts == [9001] and link.faults.count == 1
    line = the_line_about(drain(link.errors), "Address in use")
    assert line.startswith("OSC: the panel's OSC worker met an error") and "switch it off and on" in line


def test_the_panels_commentary_loader_says_why_instead_of_dying(qtbot, monkeypatch, tmp_path):
    pytest.importorskip("PyQt6")
    monkeypatch.chdir(tmp_path)
    from livegen.gui import window as panel_window
    from livegen.gui.app import application
    from livegen.gui.window import MainWindow

    class Loaded:
        def __init__(self, use_lcgan: bool):
            self.model = None

    monkeypatch.setattr(panel_window, "Commentator", Loaded)
    monkeypatch.setattr(panel_window, "CommentaryWorker",
                        FailsOnce(None, RecursionError("maximum recursion depth exceeded")))
    application()
    window = MainWindow(presets.Preset())
    qtbot.addWidget(window)
    try:
        window.commentary.setChecked(True)
        window._start_commentary()
        window._commentary_loading.join(30)
        assert window.commentary_faults.count == 1
        qtbot.waitUntil(lambda: "maximum recursion depth" in window.banner.text.text(), timeout=5000)
    finally:
        window.close()
