"""The output clock process dies mid-take (kill -9 at random instants): nothing keeps sounding at
the receiving port, the take is a valid, well-formed file, and a new clock plays on."""
import os
import random
import signal
import time

import mido

from livegen.models.checkpoint import load_model
from livegen.engine.engine import MAX_CLOCK_RESTARTS, Engine, EngineSettings, Layer, OutputChoice
from livegen.engine.player import SpareClock
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


def test_a_spare_clock_plays_the_take_it_is_handed_and_one_that_died_is_replaced(receiver):
    """The command line starts a clock before its take is known; the engine hands it the take. A spare
    that died meanwhile costs nothing but the time to start a fresh one; one not used ends on close."""
    for kill_it in (False, True):
        spare = SpareClock()
        spare_pid = spare._proc.pid
        if kill_it:
            os.kill(spare_pid, signal.SIGKILL)
            spare._proc.join(5)
        engine = Engine(load_model("charrnn"), output_to(receiver), EngineSettings(seed=2), Controls(density=0.9))
        engine.spare_clock = spare
        engine.start()
        try:
            wait_for_notes(receiver, 5 * (1 + kill_it))
            assert (engine._proc.pid == spare_pid) is not kill_it and engine.spare_clock is None
        finally:
            engine.stop()
    unused = SpareClock()
    process = unused._proc
    unused.close()
    assert not process.is_alive() and unused.hand_over(None) is None
    receiver.settle()
    assert receiver.hanging() == 0


def test_a_performance_asks_for_priority_and_the_commentary_gives_it_up():
    """``livegen perform`` at PERFORMANCE_NICE where allowed (root here), the commentary's thread
    back at 0: a sentence must not take the CPU from the other programs on stage."""
    import subprocess
    import sys

    from livegen.priority import PERFORMANCE_NICE

    probe = ("import os, threading\nfrom livegen.priority import ask_for_priority, background_priority\n"
             "allowed = ask_for_priority()\nseen = []\n"
             "t = threading.Thread(target=lambda: (background_priority(), seen.append(os.getpriority(os.PRIO_PROCESS, "
             "threading.get_native_id()))))\nt.start(); t.join()\n"
             "print(allowed, os.getpriority(os.PRIO_PROCESS, 0), seen[0])")
    allowed, main_nice, background_nice = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                                         timeout=60).stdout.split()
    if allowed == "True":
        assert (int(main_nice), int(background_nice)) == (PERFORMANCE_NICE, 0)
    else:
        assert int(main_nice) >= 0
    run = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['livegen', 'perform', '--help']\n"
                          "import os, livegen.__main__; print(os.getpriority(os.PRIO_PROCESS, 0))"],
                         capture_output=True, text=True, timeout=60)
    assert int(run.stdout.split()[-1]) == (PERFORMANCE_NICE if allowed == "True" else 0)
