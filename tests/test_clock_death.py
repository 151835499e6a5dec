"""The output clock process dies mid-take (kill -9 at random instants): nothing keeps sounding at
the receiving port, the take is a valid, well-formed file, and a new clock plays on."""
import os
import random
import signal
import time

import mido

from livegen.models.checkpoint import load_model
from livegen.engine.engine import MAX_CLOCK_RESTARTS, Engine, EngineSettings, Layer, OutputChoice
from livegen.music.conditioning import Controls
from test_note_integrity import check_stream, recorded_notes


def output_to(receiver) -> OutputChoice:
    from livegen.midi import ports

    return OutputChoice("jack", ports.match_port(receiver.name, ports.list_ports("jack")["outputs"]))


def note_ons(receiver) -> int:
    return sum(1 for m in receiver.notes() if m.type == "note_on" and m.velocity)


def wait_for_notes(receiver, count: int, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while note_ons(receiver) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert note_ons(receiver) >= count, "the take did not play"


def kill_the_clock(engine) -> None:
    """kill -9 the clock process, then wait until a new one plays or the take has failed."""
    restarts = engine.stats.clock_restarts
    os.kill(engine._proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while engine.stats.clock_restarts == restarts and engine.failed is None and time.monotonic() < deadline:
        time.sleep(0.05)


def test_killing_the_clock_at_random_instants_leaves_nothing_sounding_and_the_take_plays_on(receiver, tmp_path):
    rng = random.Random(5)
    record = tmp_path / "take.mid"
    said = []
    engine = Engine(load_model("charrnn"), output_to(receiver), EngineSettings(seed=2),
                    Controls(density=0.9), record=str(record), log=said.append)
    engine.start()
    try:
        for kill in range(MAX_CLOCK_RESTARTS):
            wait_for_notes(receiver, 10 * (kill + 1))
            time.sleep(rng.uniform(0.2, 1.5))
            kill_the_clock(engine)
            assert engine.running and engine.stats.clock_restarts == kill + 1, said
        wait_for_notes(receiver, 10 * (MAX_CLOCK_RESTARTS + 1))  # the last new clock plays on
    finally:
        engine.stop()
    receiver.settle()
    assert receiver.hanging() == 0
    assert engine.stats.clock_restarts == MAX_CLOCK_RESTARTS
    assert sum("the output clock process died" in line and "a new clock plays on" in line for line in said) == 3
    check_stream(recorded_notes(record))  # one valid file: the new clocks went on with the same take
    assert mido.MidiFile(record).length > 2.0


def test_a_clock_that_keeps_dying_stops_the_take_cleanly(receiver, tmp_path):
    record = tmp_path / "take.mid"
    said = []
    bass = Layer(load_model("dcrnn"), output_to(receiver), channel=1)
    engine = Engine(load_model("charrnn"), output_to(receiver), EngineSettings(seed=2),
                    Controls(density=0.9), record=str(record), log=said.append, layers=[bass])
    engine.start()
    try:
        deadline = time.monotonic() + 20
        while not any(m.channel == 1 for m in receiver.notes()) and time.monotonic() < deadline:
            time.sleep(0.05)  # both layers play before the first death
        for kill in range(MAX_CLOCK_RESTARTS + 1):
            wait_for_notes(receiver, 5 * (kill + 1))
            kill_the_clock(engine)
    finally:
        engine.stop()
    receiver.settle()
    assert engine.failed is not None and "so the take stops" in engine.failed
    assert receiver.hanging() == 0
    check_stream(recorded_notes(record))
    assert {channel for _, (channel, _), _ in recorded_notes(record)} == {0, 1}
    names = [track.name for track in mido.MidiFile(record).tracks]
    assert names == ["livegen take", "1 charrnn ch1", "2 dcrnn ch2"]  # as a take closed by its clock
