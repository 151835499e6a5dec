"""Sessions: a take's control stream is recorded beside it and replays the same MIDI, note for note."""
import json
import random
import signal
import subprocess
import threading
import time

from dataclasses import replace
from pathlib import Path

import mido
import pytest

from conftest import livegen_cmd
from livegen.bench.music import render
from livegen.engine.engine import CONTROL_DELAY, Engine, EngineSettings, OutputChoice, make_generator
from livegen.errors import UserError
from livegen.models.checkpoint import load_model
from livegen.music.conditioning import Controls
from livegen.music.control_stream import read_stream
from livegen.sensors.base import clamp_controls
from livegen.sessions import VERSION, list_sessions, played_with, read_take, session_path


def notes(path):
    """(tick, type, channel, note, velocity) of every note message: ticks are exact, seconds are not."""
    out, tick = [], 0
    for track in mido.MidiFile(path).tracks:
        for m in track:
            tick += m.time
            if m.type in ("note_on", "note_off"):
                out.append((tick, m.type, m.channel, m.note, m.velocity))
    return out


def live_take(model_name, path, seconds=6.0, seed=7):
    """A take steered the way sensors do it: values arrive at whatever moment, unstamped."""
    from livegen.models.checkpoint import load_model

    engine = Engine(load_model(model_name), OutputChoice(), EngineSettings(seed=seed), Controls(density=0.7),
                    record=str(path), end=seconds)
    engine.start()
    rng = random.Random(seed)
    stop = threading.Event()

    def hand():
        while not stop.wait(rng.uniform(0.05, 0.4)):
            z = tuple(rng.uniform(-1, 1) for _ in range(8)) if rng.random() < 0.4 else None
            key = rng.choice([None, (1.0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1)])
            engine.set_controls(Controls(pitch=rng.random(), density=rng.uniform(0.3, 1.0), histogram=key, z=z,
                                         theme=rng.choice("AB"), temperature=rng.choice([None, 0.4, 1.6])))

    sensor = threading.Thread(target=hand, daemon=True)
    sensor.start()
    while engine.now() < seconds + 0.05:
        time.sleep(0.02)
    stop.set()
    sensor.join()
    engine.stop()
    return engine


@pytest.mark.parametrize("model", ["charrnn", "expressive", "dcrnn"])
def test_a_live_take_replays_note_for_note(tmp_path, model):
    take = tmp_path / "take.mid"
    engine = live_take(model, take)
    assert engine.stats.late_rollbacks == 0
    session = session_path(take)
    lines = [json.loads(line) for line in session.read_text().splitlines()]
    assert lines[0]["livegen"] == "session" and lines[0]["seed"] == 7 and lines[0]["model"] == model
    assert lines[-1] == {"t": 6.0, "end": True}
    assert len(lines) > 10  # the header, the initial state, the changes, the end
    assert {0.4, 1.6} <= {line.get("temperature") for line in lines}  # changed mid-take, and recorded
    again = tmp_path / "again.mid"
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--model", model, "--controls", f"replay:{session}",
                                     "--seed", "7", "--record", str(again)), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "for 6 s" in run.stderr  # the replay ends where the take ended
    first, second = notes(take), notes(again)
    assert len([n for n in first if n[1] == "note_on" and n[4]]) >= 10
    assert second == first
    replayed = [json.loads(line) for line in session_path(again).read_text().splitlines()]
    assert replayed[1:] == lines[1:]  # and the replay's own session is the same stream


def test_a_replay_with_another_seed_warns_and_differs(tmp_path):
    take = tmp_path / "take.mid"
    script = tmp_path / "g.jsonl"
    script.write_text('{"t": 0, "pitch": 0.4, "density": 0.8}\n{"t": 1.5, "pitch": 0.9}\n')
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"script:{script}", "--record", str(take),
                                     "--duration", "3", "--seed", "1"), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    other = tmp_path / "other.mid"
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"replay:{take}", "--seed", "2",
                                     "--record", str(other)), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "recorded with seed 1 (now 2)" in run.stderr
    assert notes(other) != notes(take)
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"replay:{take}", "--record", str(take)),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "would overwrite the take being replayed" in run.stderr


def test_a_killed_take_keeps_its_control_stream_and_is_listed(tmp_path):
    take = tmp_path / "crash.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--no-port", "--record", str(take), "--density", "0.9"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while (not session_path(take).exists() or take.stat().st_size < 200) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)
    run = subprocess.run(livegen_cmd("recover"), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    [listed] = list_sessions(tmp_path)
    assert listed.name == "crash" and listed.midi == take and not listed.ended
    assert 0.5 < listed.duration < 60
    assert listed.header["livegen"] == "session"


def test_sessions_are_listed_newest_first_with_their_duration(tmp_path):
    for name, started, end in (("old", "2026-01-01T10:00:00+00:00", 12.5), ("new", "2026-01-02T10:00:00+00:00", 3.0)):
        (tmp_path / f"{name}.jsonl").write_text(
            json.dumps({"livegen": "session", "version": 1, "started": started, "seed": 4, "model": "dcrnn",
                        "bpm": 96.0}) + "\n" + '{"t": 0.0, "pitch": 0.5}\n' + json.dumps({"t": end, "end": True}) + "\n")
    (tmp_path / "gesture.jsonl").write_text('{"t": 0, "pitch": 0.5}\n')  # a script, not a take
    (tmp_path / "junk.jsonl").write_text("not json\n")
    takes = list_sessions(tmp_path)
    assert [(t.name, t.duration, t.ended) for t in takes] == [("new", 3.0, True), ("old", 12.5, True)]
    assert takes[0].perform_args() == ["perform", "--controls", f"replay:{tmp_path / 'new.jsonl'}", "--seed", "4",
                                       "--model", "dcrnn", "--bpm", "96.0"]
    assert takes[0].source().end == 3.0
    with pytest.raises(UserError, match="not a recorded session"):
        read_take(tmp_path / "gesture.jsonl")
    with pytest.raises(UserError, match="does not exist"):
        list_sessions(tmp_path / "nowhere")


@pytest.mark.parametrize("value", ['"hot"', "true", "[1.0]"])
def test_a_temperature_that_is_not_a_number_is_one_line_naming_the_line(tmp_path, value):
    script = tmp_path / "script.jsonl"
    script.write_text('{"t": 0, "pitch": 0.5}\n{"t": 1, "temperature": %s}\n' % value)
    with pytest.raises(UserError, match=r"line 2: temperature must be a number in 0.2..2"):
        read_stream(str(script))


def test_a_temperature_is_clamped_into_its_range_once_warned_and_null_gives_the_engines_back():
    warned: list[str] = []
    merged, seen = Controls(), []
    for value in (9, 0.05, 1.2, None):
        merged = clamp_controls({"temperature": value}, merged, lambda key, text: warned.append(key))
        seen.append(merged.temperature)
    assert seen == [2.0, 0.2, 1.2, None] and warned == ["temperature", "temperature"]


def test_a_take_steered_by_late_stamped_values_replays_and_renders_note_for_note(tmp_path):
    """A camera stamps each value with its capture time, already past when it arrives: every value
    rolls the generator back through its structure (grid waits, key, phrases, rate, register)."""
    take, seconds = tmp_path / "sweep.mid", 5.0
    model = load_model("charrnn")
    engine = Engine(model, OutputChoice(), EngineSettings(seed=1), Controls(), record=str(take), end=seconds)
    engine.start()
    while (now := engine.now()) < seconds + 0.05:
        engine.set_controls(Controls(pitch=0.16 if now < 1 else min(0.83, 0.16 + (now - 1) / 3)), now - 0.06)
        time.sleep(1 / 30)
    engine.stop()
    assert engine.stats.late_controls > 60
    heard = [(tick, note) for tick, kind, _, note, velocity in notes(take) if kind == "note_on" and velocity]
    assert len(heard) >= 10

    again = tmp_path / "again.mid"
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"replay:{session_path(take)}",
                                     "--seed", "1", "--record", str(again)), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert notes(again) == notes(take)

    rows = [json.loads(line) for line in session_path(take).read_text().splitlines()][1:]
    controls = Controls(pitch=rows[0]["pitch"], density=rows[0]["density"])
    offline = make_generator(model, controls, EngineSettings(seed=1))
    for row in rows[1:-1]:
        controls = replace(controls, pitch=row["pitch"])
        offline.timeline.set(row["t"] + CONTROL_DELAY, controls)
    ticks_per_second = 960 * 2  # 120 bpm
    rendered = sorted((round(start * ticks_per_second), pitch) for start, _, pitch in render(offline, seconds))
    assert [p for _, p in rendered] == [p for _, p in sorted(heard)]
    assert max(abs(a - b) for (a, _), (b, _) in zip(rendered, sorted(heard))) <= 1


@pytest.mark.parametrize("version,model,layer,replayed", [
    (1, "charrnn", "charrnn", "expressive"),  # version 1 wrote the kind: its Char-RNN ships as "expressive" now
    (1, "dcrnn", "dcrnn", "dcrnn"),
    (2, "charrnn", "expressive", "charrnn"),
])
def test_a_take_replays_with_the_model_it_was_played_by(tmp_path, version, model, layer, replayed):
    session = tmp_path / "old.jsonl"
    header = {"livegen": "session", "version": version, "seed": 3, "model": model,
              "layers": [{"model": layer, "channel": 2}]}
    session.write_text(json.dumps(header) + "\n" + json.dumps({"t": 0.0, "pitch": 0.5}) + "\n"
                       + json.dumps({"t": 2.0, "end": True}) + "\n")
    take = read_take(session)
    overrides = take.replay_overrides()
    assert overrides["model"] == replayed
    assert overrides["layers"][0].model == ("expressive" if version == 1 and layer == "charrnn" else layer)
    assert take.perform_args()[take.perform_args().index("--model") + 1] == replayed


def test_a_take_recorded_before_rests_followed_the_hand_replays_note_for_note(tmp_path):
    """tests/takes/camera-v2: 8 s steered as a camera steers (a change every 50 ms, density swept
    0.05 to 0.95), recorded by session version 2, whose Char-RNN rests kept the stretch they began
    with. Replayed as its version played, it is the same notes; as today plays, it is not."""
    recorded = Path(__file__).parent / "takes" / "camera-v2.mid"
    again = tmp_path / "again.mid"
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"replay:{recorded}", "--seed", "5",
                                     "--record", str(again)), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert notes(again) == notes(recorded) and len(notes(recorded)) == 60

    header, rows = read_stream(str(session_path(recorded)))
    assert played_with(header) and not played_with({**header, "version": VERSION})
    controls = Controls(pitch=rows[0]["pitch"], density=rows[0]["density"])
    today = make_generator(load_model("charrnn"), controls, EngineSettings(seed=5))
    for row in rows[1:-1]:
        controls = replace(controls, **{k: row[k] for k in ("pitch", "density") if k in row})
        today.timeline.set(row["t"] + CONTROL_DELAY, controls)
    heard = sorted(note for tick, kind, _, note, velocity in notes(recorded) if kind == "note_on" and velocity)
    assert sorted(p for _, _, p in render(today, 8.0)) != heard
