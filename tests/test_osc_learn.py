"""A learned mapping of OSC values another tool sends: through a real UDP client into the OSC
listener, the mapping and the control hub, in-process and through ``livegen perform``."""
import json
import math
import subprocess
import time
from types import SimpleNamespace

import pytest
from pythonosc.udp_client import SimpleUDPClient

from conftest import livegen_cmd
from livegen.control.osc import OscServer
from livegen.models.learners import KnnConfig
from livegen.music.conditioning import Controls
from livegen.sensors.learn import ExampleRecorder, fit_mapping
from livegen.sensors.learn.live import LearnedControls, preset_mapping
from livegen.sessions import session_path
from livegen.take.controls import ControlHub
from livegen.take.runner import TakeRunner

INPUTS = ["osc:/fader/1", "osc:/fader/2"]


def fader_mapping(path):
    """/fader/1 0..1 -> pitch 0..1, /fader/2 0..1 -> temperature 0.3..1.8 (one neighbour: exact at examples)."""
    recorder = ExampleRecorder(INPUTS, ["pitch", "temperature"])
    recorder.start()
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        for b in (0.0, 0.5, 1.0):
            recorder.add((a, b), {"pitch": a, "temperature": 0.3 + 1.5 * b})
    recorder.stop()
    mapping = fit_mapping([recorder.source()], model="knn")
    for output in mapping.outputs.values():
        output.smoothing, output.knn = 0.0, KnnConfig(k=1)
    mapping.fit()
    mapping.save(path)
    return mapping


def until(predicate, timeout=10.0, every=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        if every is not None:
            every()
        time.sleep(0.05)


def test_osc_values_steer_the_controls_through_the_mapping_and_garbage_is_ignored(tmp_path):
    mapping = fader_mapping(tmp_path / "faders.toml")
    hub = ControlHub(Controls(density=0.25))
    got: list[Controls] = []
    hub.attach(SimpleNamespace(running=True, set_controls=lambda c, t=None: got.append(c), now=lambda: 0.0))
    runner = TakeRunner(hub)
    logs: list[str] = []
    server = OscServer(runner, 0, log=logs.append).start()
    learned = LearnedControls(mapping, hub.learned)
    server.learned = learned
    client = SimpleUDPClient(*server.address)
    try:
        client.send_message("/fader/1", 1.0)
        client.send_message("/fader/2", 1.0)
        until(lambda: got and got[-1].pitch > 0.9 and got[-1].temperature > 1.6)
        for _ in range(3):  # garbage, each kind sent again: one line per address and kind at most
            client.send_message("/fader/1", math.nan)
            client.send_message("/fader/1", "loud")
            client.send_message("/fader/2", [0.1, 0.2])
            client.send_message("/fader/9", 0.5)
        client.send_message("/fader/1", 0.0)  # the latest value of /fader/2 (1.0) holds
        until(lambda: got[-1].pitch < 0.1)
        assert got[-1].temperature > 1.6 and all(c.density == 0.25 for c in got)
        assert server.ignored == 12 and len(logs) == 3, logs
        assert any("/fader/9" in line and "learned mapping" in line for line in logs)
        client.send_message("/livegen/temperature", 5.0)  # OSC's own address: clamped into 0.2..2
        until(lambda: got[-1].temperature == 2.0)
        server.learned = None  # the take ended: its addresses are unknown again
        client.send_message("/fader/1", 1.0)
        until(lambda: server.ignored == 13)
        assert got[-1].pitch < 0.1
    finally:
        client.close()
        server.close()
    assert learned.vector.tolist() == [0.0, 1.0]


def test_a_preset_mapping_of_osc_inputs_is_the_osc_sensors_alone(tmp_path):
    fader_mapping(tmp_path / "faders.toml")
    path = str(tmp_path / "faders.toml")
    assert preset_mapping(path, "osc") is not None
    assert preset_mapping(path, "emg") is None and preset_mapping(path, "camera") is None


def _rows(path):
    return [json.loads(line) for line in session_path(path).read_text().splitlines()][1:]


def test_perform_plays_a_preset_mapping_of_osc_values_sent_by_another_tool(tmp_path):
    fader_mapping(tmp_path / "faders.toml")
    with __import__("socket").socket(2, 2) as s:  # a free UDP port for the preset
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    preset = tmp_path / "faders-preset.toml"
    preset.write_text(f'[gui]\nosc_port = {port}\n\n[learn]\nmapping = "{tmp_path / "faders.toml"}"\n')
    take = tmp_path / "take.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--no-port", "--preset", str(preset), "--duration", "30",
                                        "--record", str(take)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    client = SimpleUDPClient("127.0.0.1", port)

    def rows():
        return _rows(take) if session_path(take).exists() else []

    def send(pitch, heat):
        client.send_message("/fader/1", pitch)
        client.send_message("/fader/2", heat)

    try:
        until(lambda: any(r.get("pitch", 0) > 0.9 and r.get("temperature", 0) > 1.6 for r in rows()), 60,
              every=lambda: send(1.0, 1.0))
        until(lambda: any(r.get("pitch", 1) < 0.1 for r in rows()), 20, every=lambda: send(0.0, 0.0))
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert f"OSC on 127.0.0.1:{port} for the learned mapping's inputs" in err and "Traceback" not in err
    temperatures = [r["temperature"] for r in _rows(take) if r.get("temperature") is not None]
    assert min(temperatures) < 0.5 and max(temperatures) > 1.6


def test_a_preset_mapping_of_osc_inputs_without_a_port_is_one_line(tmp_path):
    fader_mapping(tmp_path / "faders.toml")
    preset = tmp_path / "faders-preset.toml"
    preset.write_text(f'[learn]\nmapping = "{tmp_path / "faders.toml"}"\n')
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--preset", str(preset), "--duration", "2"),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "--osc PORT" in run.stderr and "gui.osc_port" in run.stderr
