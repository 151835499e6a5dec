"""One bad OSC message never disables OSC: whatever a message does, it is counted, said once, and
the listener goes on (with a real listener on 127.0.0.1, and a real `livegen perform --osc`)."""
import signal
import socket
import subprocess
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from conftest import livegen_cmd
from livegen.control.osc import OscServer
from livegen.errors import UserError
from livegen.music.conditioning import Controls
from test_osc import FakePerformance, free_port, osc_listener, until


class FailingPerformance(FakePerformance):
    """A performance whose preset lookup fails as a file system does on a name too long for it."""

    def preset(self, name):
        if len(name) > 20:
            raise OSError(36, "File name too long", f"presets/{name}.toml")
        super().preset(name)

    def panic(self):
        raise RuntimeError("the synth went away")


@pytest.fixture
def failing():
    perf, logs = FailingPerformance(), []
    server = OscServer(perf, 0, log=logs.append).start()
    client = SimpleUDPClient(*server.address)
    yield perf, logs, server, client
    client.close()
    server.close()


def test_any_failure_in_a_handler_is_counted_said_once_and_the_listener_goes_on(failing):
    perf, logs, server, client = failing
    for _ in range(3):
        client.send_message("/livegen/preset", "a-name-the-file-system-refuses")
        client.send_message("/livegen/panic", [])
    client.send_message("/livegen/stop", [])
    until(lambda: perf.calls == ["stop"])
    assert server.ignored == 6 and server.received == 1
    assert len(logs) == 2 and all(line.startswith("osc: ignored") and "\n" not in line for line in logs)
    assert any("OSError" in line and "File name too long" in line for line in logs)
    assert any("RuntimeError" in line and "the synth went away" in line for line in logs)
    assert all("README" in line for line in logs)  # says what to do


@pytest.mark.parametrize("name", ["x" * 300, "../../etc/passwd", "/tmp/mine.toml", ".hidden", "", "a\tb"])
def test_preset_names_over_osc_are_checked_before_any_lookup(failing, name):
    perf, logs, server, client = failing
    client.send_message("/livegen/preset", name)
    until(lambda: server.ignored == 1)
    assert perf.calls == [] and len(logs) == 1
    assert "is not a preset name" in logs[0] and len(logs[0]) < 400
    client.send_message("/livegen/preset", "known")
    until(lambda: perf.calls == ["preset known"])


def test_a_sender_spraying_addresses_is_said_a_bounded_number_of_times(failing):
    perf, logs, server, client = failing
    for i in range(100):
        client.send_message(f"/livegen/nothing/{i}", 1.0)
    until(lambda: server.ignored == 100)
    assert len(logs) <= 40 and "only counted" in logs[-1]
    client.send_message("/livegen/stop", [])
    until(lambda: perf.calls == ["stop"])


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (4 - len(data) % 4)


ADDRESSES = st.one_of(st.sampled_from(["/livegen/pitch", "/livegen/density", "/livegen/z", "/livegen/z/0",
                                       "/livegen/z/7", "/livegen/play", "/livegen/stop", "/livegen/panic",
                                       "/livegen/preset", "/livegen/", "/livegen/z/8", "/"]),
                      st.text(min_size=1, max_size=40).map(lambda s: "/" + s.replace("\0", "")))
ARGUMENTS = st.lists(st.one_of(  # (value, OSC type tag; None: python-osc's choice)
    st.tuples(st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(width=32), st.booleans(), st.none(),
                        st.text(max_size=300).map(lambda s: s.replace("\0", "")), st.binary(min_size=1, max_size=64)),
              st.none()),
    st.tuples(st.floats(), st.just("d"))), max_size=10)
PACKETS = st.one_of(st.binary(max_size=512), st.tuples(ADDRESSES, ARGUMENTS),
                    st.tuples(ADDRESSES, st.binary(max_size=64)).map(  # a valid address, garbage after it
                        lambda a: _padded(a[0].encode()) + a[1]),
                    st.binary(max_size=200).map(lambda b: b"#bundle\0" + b))


def _datagram(packet) -> bytes:
    if isinstance(packet, bytes):
        return packet
    address, arguments = packet
    builder = OscMessageBuilder(address)
    for value, tag in arguments:
        builder.add_arg(value, tag)
    return builder.build().dgram


def test_fuzzed_datagrams_never_stop_the_listener():
    """Random addresses, argument types and garbage at a real listener of a performance that fails
    now and then; after each batch a valid message still steers."""
    perf, logs = FailingPerformance(), []
    server = OscServer(perf, 0, log=logs.append).start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    marks = iter(range(1, 10**6))
    try:
        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(packets=st.lists(PACKETS, min_size=1, max_size=6))
        def batch(packets):
            for packet in packets:
                sender.sendto(_datagram(packet), server.address)
            mark = next(marks) / 2**20  # exact as a 32-bit float: this message and no other set it
            sender.sendto(_datagram(("/livegen/density", [(mark, "f")])), server.address)
            until(lambda: perf.latest.density == mark)
            perf.latest = Controls()

        batch()
        assert all("\n" not in line and len(line) < 600 for line in logs)
    finally:
        sender.close()
        server.close()


def test_perform_goes_on_after_a_preset_name_too_long_for_the_file_system():
    """/livegen/stop still ends the take, and stderr has one line about the bad message."""
    got, lock = [], threading.Lock()
    listener = osc_listener(got, lock)
    port = free_port()
    proc = subprocess.Popen(livegen_cmd("perform", "--no-port", "--duration", "60", "--osc", str(port), "--osc-out",
                                        "127.0.0.1:%d" % listener.server_address[1]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = SimpleUDPClient("127.0.0.1", port)

    def playing():
        with lock:
            states = [args for address, args in got if address == "/livegen/state/playing"]
        return states[-1] if states else None

    def notes_sent():
        with lock:
            return any(address == "/livegen/note" for address, _ in got)

    try:
        until(lambda: playing() == (1,) and notes_sent(), 60)  # the take plays: its start-up is over
        client.send_message("/livegen/preset", "x" * 300)
        client.send_message("/livegen/stop", [])
        until(lambda: playing() == (0,), 30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        listener.shutdown()
        listener.server_close()
    assert proc.returncode == 0, err  # Ctrl-C between takes quits as during one
    assert "Traceback" not in err
    assert sum("osc: ignored /livegen/preset" in line for line in err.splitlines()) == 1


def test_a_preset_lookup_that_fails_is_a_user_error():
    from livegen import presets

    with pytest.raises(UserError, match="cannot be looked up|not found"):
        presets.find("x" * 300)
