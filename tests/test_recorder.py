"""Recording: incremental, valid after a clean close, recoverable after a kill."""
import os
import signal
import subprocess
import sys
import time

import mido
import pytest

from livegen import paths
from livegen.midi.recorder import Recorder, recover_unfinished, repair


def note(on, pitch):
    return [0x90 if on else 0x80, pitch, 100 if on else 0]


def test_clean_take_is_a_valid_midi_file_with_tempo(tmp_path):
    path = tmp_path / "take.mid"
    rec = Recorder(path)
    rec.add(0.0, note(True, 60))
    rec.add(0.5, note(False, 60))
    rec.add(1.25, [0xC0, 5])
    rec.close()
    mid = mido.MidiFile(path)
    msgs = list(mid)
    assert any(m.type == "set_tempo" for m in msgs)
    times = [round(sum(m.time for m in msgs[:i + 1]), 3) for i, m in enumerate(msgs) if not m.is_meta]
    assert times == [0.0, 0.5, 1.25]
    assert not list(paths.journal_dir().glob("*.json"))  # a finished take leaves no journal entry


def test_events_reach_the_disk_before_close(tmp_path):
    path = tmp_path / "take.mid"
    rec = Recorder(path)
    size = path.stat().st_size
    rec.add(0.0, note(True, 60))
    rec.flush()
    assert path.stat().st_size > size


def test_a_killed_recording_is_recovered_by_the_next_run(tmp_path):
    path = tmp_path / "take.mid"
    code = f"""
import time
from livegen.midi import recorder
rec = recorder.Recorder({str(path)!r})
rec.add(0.0, [0x90, 40, 90])  # left sounding: recovery must end it
i = 0
while True:
    rec.add(i * 0.05, [0x90, 60 + i % 12, 90])
    rec.add(i * 0.05 + 0.04, [0x80, 60 + i % 12, 0])
    if rec.flush_due():
        rec.flush()
        print(i, flush=True)
    i += 1
    time.sleep(0.01)
"""
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        lines = [proc.stdout.readline() for _ in range(3)]  # three flushes: ~1.5 s recorded
        os.kill(proc.pid, signal.SIGKILL)
    assert all(lines)
    assert len(list(paths.journal_dir().glob("*.json"))) == 1  # the child's journal: LIVEGEN_HOME is inherited
    with pytest.raises(Exception):
        list(mido.MidiFile(path))  # unfinished: the track length is a placeholder
    [found] = recover_unfinished()
    assert found["path"] == str(path) and found["seconds"] >= 1.0
    ons = offs = 0
    for m in mido.MidiFile(path):
        ons += m.type == "note_on" and m.velocity > 0
        offs += m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)
    assert ons > 20 and ons == offs and found["ended_notes"] == 1
    assert recover_unfinished() == []  # journal cleared


def test_repair_cuts_a_torn_last_event(tmp_path):
    path = tmp_path / "take.mid"
    rec = Recorder(path)
    for i in range(10):
        rec.add(i * 0.1, note(True, 60 + i))
    rec.flush()
    with open(path, "ab") as f:
        f.write(b"\x10\x90\x3c")  # half an event
    info = repair(path)
    assert info["notes"] == 10 and info["ended_notes"] == 10
    assert len([m for m in mido.MidiFile(path) if m.type == "note_off"]) == 10


def test_repair_ends_each_layers_notes_on_that_layers_track(tmp_path):
    """A killed layered take: the notes left sounding end on their own layers' tracks, whichever
    layer wrote last (the DCRNN's note-off once landed on the Char-RNN's track), and a resumed
    recorder goes on under the right prefix."""
    path = tmp_path / "take.mid"
    rec = Recorder(path, track_names=["1 charrnn ch1", "2 dcrnn ch2"])
    rec.add(0.1, [0x91, 61, 90], layer=1)  # the DCRNN's note, still sounding at the kill
    rec.add(0.2, [0x90, 60, 90], layer=0)
    rec.add(0.3, [0x80, 60, 0], layer=0)  # the Char-RNN wrote last
    rec.flush()
    info = repair(path, split=False)
    assert info["ended_notes"] == 1
    resumed = Recorder(path, track_names=["1 charrnn ch1", "2 dcrnn ch2"], resume=(info["tick"], info["layer"]))
    resumed.add(0.5, [0x90, 64, 90], layer=0)
    resumed.add(0.6, [0x80, 64, 0], layer=0)
    resumed.close()
    tracks = mido.MidiFile(path).tracks
    by_track = {t.name: [(m.type, m.channel, m.note) for m in t if m.type in ("note_on", "note_off")] for t in tracks}
    assert by_track["2 dcrnn ch2"] == [("note_on", 1, 61), ("note_off", 1, 61)]
    assert by_track["1 charrnn ch1"] == [("note_on", 0, 60), ("note_off", 0, 60), ("note_on", 0, 64), ("note_off", 0, 64)]


def test_repair_refuses_what_is_not_a_recording(tmp_path):
    bad = tmp_path / "x.mid"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError):
        repair(bad)


def test_recovery_leaves_takes_of_running_processes_alone(tmp_path):
    rec = Recorder(tmp_path / "live.mid")
    rec.add(0.0, note(True, 60))
    time.sleep(0.01)
    assert recover_unfinished() == []
    rec.close()


def test_a_wedged_clock_fails_the_take_instead_of_hanging_and_the_take_stays_valid(tmp_path):
    """A clock that stops reading (its port wedged) must not hang the engine; the take is repaired."""
    from livegen.engine.engine import Engine, EngineSettings, OutputChoice
    from livegen.models import checkpoint
    from livegen.music.conditioning import Controls

    take = tmp_path / "take.mid"
    engine = Engine(checkpoint.load_model("charrnn"), OutputChoice(), EngineSettings(),
                    Controls(density=0.9), record=str(take), log=lambda text: None)
    engine.start()
    time.sleep(1.5)
    os.kill(engine._proc.pid, signal.SIGSTOP)  # the clock stops reading its pipe
    t0 = time.monotonic()
    while engine.failed is None and time.monotonic() - t0 < 30:
        engine._send(("schedule", 0, [(1e6, -1, [0x90, 60, 1])] * 2000))  # a backlog that fills the pipe
    assert engine.failed and "stopped responding" in engine.failed
    engine.stop()
    assert time.monotonic() - t0 < 40 and not engine._proc.is_alive()
    assert sum(m.type == "note_on" and m.velocity > 0 for m in mido.MidiFile(take)) > 0
    assert not list(paths.journal_dir().glob("*.json"))
