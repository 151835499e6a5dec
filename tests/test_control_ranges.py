"""One range table: every source clamps through ``CONTROL_RANGES``, so narrowing a range there
narrows it for scripts, OSC, the camera's mapping and the engine's followed tempo alike."""
import pytest
from pythonosc.udp_client import SimpleUDPClient

from livegen.control.osc import OscServer
from livegen.music import conditioning
from livegen.music.conditioning import Controls
from livegen.sensors.base import clamp_controls
from test_osc import FakePerformance, until


@pytest.fixture
def narrow(monkeypatch):
    ranges = dict(conditioning.CONTROL_RANGES, pitch=(0.2, 0.8), z=(-0.5, 0.5), bpm=(60.0, 180.0))
    monkeypatch.setattr(conditioning, "CONTROL_RANGES", ranges)


def test_scripts_and_sensors_clamp_through_the_table(narrow):
    warned = []
    c = clamp_controls({"pitch": 1.0, "z": [1.0, -1.0], "bpm": 300.0}, Controls(), lambda k, text: warned.append(text))
    assert c.pitch == 0.8 and c.z == (0.5, -0.5) and c.bpm == 180.0
    assert any("outside 0.2..0.8" in text for text in warned)


def test_osc_clamps_through_the_table(narrow):
    perf, logs = FakePerformance(), []
    server = OscServer(perf, 0, log=logs.append).start()
    client = SimpleUDPClient(*server.address)
    try:
        client.send_message("/livegen/pitch", 0.1)
        until(lambda: perf.latest.pitch == 0.2)
        assert any("outside 0.2..0.8" in line for line in logs)
    finally:
        client.close()
        server.close()


def test_the_camera_mapping_clamps_through_the_table(narrow):
    from livegen.vision.mapping import HandMapper, MappingSettings

    pitch, density = HandMapper(MappingSettings()).update((0.5, 0.0), 0.0)  # the hand at the top of the frame
    assert pitch == 0.8 and density == 0.5

