"""OSC in and out, with a real python-osc client and server over loopback."""
import json
import signal
import socket
import subprocess
import threading
import time

import mido
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from conftest import livegen_cmd
from livegen.checks import parse_target
from livegen.control.osc import OscServer, OscState
from livegen.errors import UserError
from livegen.music.conditioning import Controls


class FakePerformance:
    """Records what OSC asked for."""

    def __init__(self):
        self.latest = Controls()
        self.calls = []

    def controls(self):
        return self.latest

    def steer(self, controls, t=None):
        self.latest = controls

    def play(self):
        self.calls.append("play")

    def stop(self):
        self.calls.append("stop")

    def panic(self):
        self.calls.append("panic")

    def preset(self, name):
        if name != "known":
            raise UserError(f"preset {name!r} not found")
        self.calls.append(f"preset {name}")


def until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def osc_listener(got, lock):
    """A python-osc server (as TouchDesigner or Max would run) collecting (address, args)."""
    def collect(address, *args):
        with lock:
            got.append((address, args))

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(collect)
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=listener.serve_forever, args=(0.05,), daemon=True).start()
    return listener


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served():
    perf, logs = FakePerformance(), []
    server = OscServer(perf, 0, log=logs.append).start()
    client = SimpleUDPClient(*server.address)
    yield perf, logs, server, client
    client.close()
    server.close()


def test_every_address_steers_or_commands(served):
    perf, logs, server, client = served
    assert server.address[0] == "127.0.0.1"  # local only unless opened on purpose
    client.send_message("/livegen/pitch", 0.8)
    client.send_message("/livegen/density", 0.25)
    client.send_message("/livegen/z/3", -0.5)
    until(lambda: server.received == 3)
    assert (perf.latest.pitch, perf.latest.density) == (pytest.approx(0.8), 0.25)  # OSC floats are 32-bit
    assert perf.latest.z == (0.0, 0.0, 0.0, -0.5, 0.0, 0.0, 0.0, 0.0)
    client.send_message("/livegen/z", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75])
    client.send_message("/livegen/z/7", 1)  # ints are numbers too
    for address in ("/livegen/play", "/livegen/stop", "/livegen/panic"):
        client.send_message(address, [])
    client.send_message("/livegen/play", 0.0)  # a TouchOSC button's release does nothing
    client.send_message("/livegen/preset", "known")
    until(lambda: server.received == 10)
    assert perf.latest.z == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0))
    assert perf.calls == ["play", "stop", "panic", "preset known"]
    assert logs == []


def test_bad_messages_are_logged_once_per_address_and_ignored(served):
    perf, logs, server, client = served
    before = perf.latest
    for _ in range(3):
        client.send_message("/livegen/pitch", "high")
        client.send_message("/livegen/nope", 1.0)
        client.send_message("/livegen/z/8", 0.5)
        client.send_message("/livegen/z", [0.1, 0.2])
        client.send_message("/livegen/preset", "unknown")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"\x00\x01garbage", server.address)
    until(lambda: server.ignored == 18)
    assert perf.latest == before and perf.calls == []
    assert len(logs) == 6 and all(line.startswith("osc: ignored") for line in logs)
    assert any("/livegen/pitch ('high',): expects one number 0..1" in line for line in logs)
    assert any("'unknown' not found" in line for line in logs)
    client.send_message("/livegen/density", 1.7)  # out of range: clamped, said once
    client.send_message("/livegen/density", 2.0)
    until(lambda: server.received == 2)
    assert perf.latest.density == 1.0 and sum("clamped" in line for line in logs) == 1


def test_state_goes_out_to_a_real_osc_server():
    got, lock = [], threading.Lock()
    listener = osc_listener(got, lock)
    perf = FakePerformance()
    state = OscState(perf, *listener.server_address, playing=lambda: True, clock=lambda: 1.5).start()
    try:
        state.on_sent([(0.1, [0x91, 60, 100]), (0.2, [0xB1, 7, 100]), (0.3, [0x81, 60, 0])])
        perf.steer(Controls(pitch=0.9))
        until(lambda: len([a for a, _ in got if a == "/livegen/state/time"]) >= 2)
    finally:
        state.close()
        listener.shutdown()
        listener.server_close()
    with lock:
        messages = dict(got)
        notes = [args for address, args in got if address == "/livegen/note"]
    assert notes == [(2, 60, 100), (2, 60, 0)]  # channel 1..16; the control change is not a note
    assert messages["/livegen/state/pitch"] == (pytest.approx(0.9),)
    assert messages["/livegen/state/playing"] == (1,)
    assert len(messages["/livegen/state/z"]) == 8
    assert sum(1 for a, _ in got if a == "/livegen/state/pitch") == 1  # sent when it changes, not every tick


def test_parse_target():
    assert parse_target("10.0.0.2:9001") == ("10.0.0.2", 9001)
    assert parse_target("9001") == ("127.0.0.1", 9001)
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_target("somewhere")


def test_perform_is_driven_and_followed_over_osc_and_the_session_keeps_it(tmp_path):
    got, lock = [], threading.Lock()
    listener = osc_listener(got, lock)
    port = free_port()
    take = tmp_path / "take.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--no-port", "--osc", str(port), "--osc-out",
                                        "127.0.0.1:%d" % listener.server_address[1], "--record", str(take),
                                        "--density", "0.8"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    client = SimpleUDPClient("127.0.0.1", port)

    def seen(address):
        with lock:
            return [args for a, args in got if a == address]

    try:
        until(lambda: seen("/livegen/state/playing") == [(1,)] and len(seen("/livegen/note")) >= 4, 60)
        client.send_message("/livegen/pitch", 0.95)
        client.send_message("/livegen/z/2", 0.5)
        until(lambda: (pytest.approx(0.95),) in seen("/livegen/state/pitch"))
        client.send_message("/livegen/stop", [])
        until(lambda: seen("/livegen/state/playing")[-1] == (0,), 30)
        until(lambda: take.with_suffix(".jsonl").read_text().rstrip().endswith('"end": true}'), 30)
        client.send_message("/livegen/play", 1)
        second = tmp_path / "take-2.mid"
        until(lambda: seen("/livegen/state/playing")[-1] == (1,) and second.exists(), 60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        listener.shutdown()
        listener.server_close()
    assert proc.returncode == 0, err  # Ctrl-C during a take: perform's way to stop
    assert "OSC on 127.0.0.1:%d" % port in err and "Traceback" not in err
    rows = [json.loads(line) for line in take.with_suffix(".jsonl").read_text().splitlines()]
    assert any(r.get("pitch") == pytest.approx(0.95) for r in rows)  # what OSC did is in the session
    assert any(r.get("z") == [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0] for r in rows)
    first_rows = [json.loads(line) for line in second.with_suffix(".jsonl").read_text().splitlines()]
    assert first_rows[1]["pitch"] == pytest.approx(0.95)  # the next take starts where the last one was steered
    for path in (take, second):
        assert any(m.type == "note_on" for m in mido.MidiFile(path))
