"""The live engine on a real JACK server: every note arrives, in order, and every note ends.

JACK's dummy driver proves delivery, not timing (its frame clock jumps by tens of ms on VMs);
timing is measured at the send point by `livegen bench`.
"""
import json
import signal
import subprocess
import time

import mido
import pytest

from conftest import livegen_cmd
from livegen.engine.engine import Engine, EngineSettings, OutputChoice
from livegen.music.conditioning import Controls


def recorded_notes(path):
    return [(m.type, m.note) if m.type == "note_off" or m.velocity else ("note_off", m.note)
            for m in mido.MidiFile(path) if m.type in ("note_on", "note_off")]


def received_notes(receiver):
    return [(m.type, m.note) if m.type == "note_off" or m.velocity else ("note_off", m.note)
            for m in receiver.notes()]


def test_perform_delivers_every_recorded_note_in_order_and_balanced(receiver, tmp_path):
    take = tmp_path / "take.mid"
    run = subprocess.run(livegen_cmd("perform", "--api", "jack", "--port", receiver.name, "--duration", "5",
                                     "--record", str(take), "--seed", "1"), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    receiver.settle()
    sent = recorded_notes(take)
    assert len([n for n in sent if n[0] == "note_on"]) >= 10
    assert received_notes(receiver) == sent
    assert receiver.hanging() == 0


@pytest.mark.parametrize("how", ["sigint", "sigterm", "sigkill"])
def test_stopping_any_way_ends_every_note(receiver, tmp_path, how):
    take = tmp_path / "take.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--api", "jack", "--port", receiver.name, "--record", str(take),
                                        "--density", "0.9"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while len(receiver.notes()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal({"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how])
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:  # never leave a hung performer behind on a test's JACK server
        proc.kill()
        proc.communicate()
        raise
    receiver.settle()
    assert receiver.hanging() == 0, err
    if how != "sigkill":  # a killed engine cannot choose its exit code; its clock still ends the notes
        assert proc.returncode == 0, err  # Ctrl-C and SIGTERM are the ways to stop a performance
    assert received_notes(receiver) == recorded_notes(take)  # the take closes cleanly even after kill -9


class ExplodingModel:
    """Wraps the real model's live runtime; its step fails after a while, as a runaway model might."""

    kind = name = "charrnn"

    def __init__(self, model, after):
        self.model, self.after, self.calls = model, after, 0
        self.config, self.initial_state, self.condition = model.config, model.initial_state, model.condition

    def step(self, *args):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("model blew up")
        return self.model.step(*args)


def test_an_exception_in_the_generator_stops_cleanly_with_notes_off(receiver, tmp_path):
    from livegen.midi import ports
    from livegen.models import checkpoint

    model = checkpoint.load_model("charrnn")
    port = ports.match_port(receiver.name, ports.list_ports("jack")["outputs"])
    logs = []
    engine = Engine(ExplodingModel(model, 150), OutputChoice("jack", port), EngineSettings(seed=2),
                    Controls(density=0.9), record=str(tmp_path / "t.mid"), log=logs.append)
    engine.start()
    deadline = time.monotonic() + 20
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.stop()
    receiver.settle()
    assert engine.failed and "model blew up" in engine.failed and logs
    assert len(receiver.notes()) > 4 and receiver.hanging() == 0
    assert received_notes(receiver) == recorded_notes(tmp_path / "t.mid")


def test_control_changes_roll_back_without_losing_or_hanging_notes(receiver, tmp_path):
    from livegen.midi import ports
    from livegen.models import checkpoint

    model = checkpoint.load_model("charrnn")
    port = ports.match_port(receiver.name, ports.list_ports("jack")["outputs"])
    engine = Engine(model, OutputChoice("jack", port), EngineSettings(seed=3), Controls(density=0.8),
                    record=str(tmp_path / "t.mid"))
    engine.start()
    while engine.now() < 0:  # changes before the first note have no latency to count
        time.sleep(0.01)
    for i in range(40):
        time.sleep(0.1)
        engine.set_controls(Controls(pitch=0.1 + 0.8 * (i % 2), density=0.8))
    time.sleep(0.2)
    stats = engine.stop()
    receiver.settle()
    assert len(stats.control_to_midi) == 40 and stats.late_rollbacks == 0
    assert receiver.hanging() == 0
    assert received_notes(receiver) == recorded_notes(tmp_path / "t.mid")


def test_ports_lists_the_jack_port_and_a_wrong_name_lists_them_all(receiver):
    run = subprocess.run(livegen_cmd("ports", "--api", "jack"), capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "API: jack" in run.stdout and receiver.name in run.stdout
    run = subprocess.run(livegen_cmd("perform", "--api", "jack", "--port", "no-such-port-xyz", "--duration", "2"),
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "no MIDI output matches 'no-such-port-xyz'" in line and receiver.name in line


def test_virtual_port_appears_while_performing(jack_server):
    from livegen.midi import ports

    proc = subprocess.Popen(livegen_cmd("perform", "--api", "jack", "--virtual", "lgvirtual", "--duration", "6"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not any("lgvirtual" in p for p in ports.list_ports("jack")["inputs"]):
            assert time.monotonic() < deadline and proc.poll() is None, "virtual port never appeared"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_panic_sends_all_notes_off_on_every_channel(receiver):
    run = subprocess.run(livegen_cmd("panic", "--api", "jack", "--port", receiver.name), capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    receiver.settle()
    channels = {m.channel for _, m in receiver.messages if m.type == "control_change" and m.control == 123}
    assert channels == set(range(16))


def test_switching_ports_ends_notes_on_the_old_one_and_plays_on_the_new(jack_server, tmp_path):
    from conftest import Receiver
    from livegen.midi import ports
    from livegen.models import checkpoint

    first, second = Receiver("switch-a"), Receiver("switch-b")
    try:
        time.sleep(0.3)
        outputs = ports.list_ports("jack")["outputs"]
        engine = Engine(checkpoint.load_model("charrnn"), OutputChoice("jack", ports.match_port(
            "switch-a", outputs)), EngineSettings(seed=4), Controls(density=0.9), record=str(tmp_path / "t.mid"))
        engine.start()
        deadline = time.monotonic() + 20
        while len(first.notes()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        engine.switch_output(OutputChoice("jack", ports.match_port("switch-b", outputs)))
        first.settle()
        count_a = len(first.notes())
        deadline = time.monotonic() + 20
        while len(second.notes()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        engine.stop()
        first.settle()
        second.settle()
        assert first.hanging() == 0 and len(first.notes()) == count_a  # nothing more went to the old port
        assert len(second.notes()) >= 10 and second.hanging() == 0
        assert engine.player_info["port"].endswith("switch-b") and engine.port_error is None
    finally:
        first.close()
        second.close()



def test_startup_bench_times_launches_to_the_first_note_at_a_jack_port(jack_server):
    run = subprocess.run(livegen_cmd("bench", "--parts", "startup", "--launches", "2", "--json"),
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert set(result) == {"startup"}  # only the part asked for ran
    startup = result["startup"]
    assert startup["launches"] == 2 and startup["failed"] == []
    assert 0 < startup["min_s"] <= startup["median_s"] <= startup["max_s"] < 60
    assert len(startup["first_note_s"]) == 2


def test_a_take_ends_its_notes_with_note_offs_then_all_notes_off_on_its_channel(receiver):
    """The note-offs end the music; all-notes-off after them ends a note whose note-off the MIDI
    system lost (a JACK xrun drops a cycle's messages)."""
    run = subprocess.run(livegen_cmd("perform", "--api", "jack", "--port", receiver.name, "--duration", "3",
                                     "--channel", "3"), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    receiver.settle()
    messages = [m for _, m in receiver.messages]
    assert receiver.hanging() == 0 and sum(m.type == "note_on" and m.velocity > 0 for m in messages) >= 3
    assert messages[-1].type == "control_change" and (messages[-1].control, messages[-1].channel) == (123, 2)
    assert [m for m in messages if m.type == "control_change" and m.control == 123] == [messages[-1]]
