"""A player's MIDI in, on a real JACK server: a sending port plays POP909 phrases into `livegen perform
--midi-in`, which answers, continues or accompanies them, yields when the player comes back, passes
them thru, survives garbage and an input port that vanishes and returns."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import mido
import numpy as np
import pytest

from conftest import livegen_cmd
from livegen.bench.midi_in import pop909_phrase as bench_phrase
from livegen.midi import ports
from livegen.music.phrase import PlayerPhrase, PlayerPulse, estimate_controls
from livegen.take import midi_in

POP909 = Path(__file__).resolve().parents[2] / "shared" / "data" / "music" / "pop909"
PLAYER_CHANNEL = 4


def pop909_phrase(song: str, start: float = 10.0, seconds: float = 6.0):
    """(onset, end, pitch, velocity) of a POP909 song's melody from ``start`` for ``seconds``."""
    path = POP909 / song / f"{song}.mid"
    if not path.is_file():
        pytest.skip(f"POP909 is not in the shared data ({path})")
    return bench_phrase(path, start, seconds)


class Player:
    """A sending JACK port with a player's hands: phrases played in real time, paced so that JACK
    delivers each message whole."""

    def __init__(self, name):
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        self.name = name
        self.port = backend.open_output(name, virtual=True)

    def send(self, msg):
        self.port.send(msg)
        time.sleep(0.002)

    def play(self, notes):
        events = sorted([(s, 1, n, v) for s, _, n, v in notes] + [(e, 0, n, 0) for _, e, n, _ in notes])
        t0 = time.monotonic()
        for t, on, note, velocity in events:
            while time.monotonic() - t0 < t:
                time.sleep(0.0005)
            kind = "note_on" if on else "note_off"
            self.send(mido.Message(kind, note=note, velocity=velocity, channel=PLAYER_CHANNEL))
        return time.monotonic()

    def close(self):
        self.port.close()


@pytest.fixture
def player(jack_server, request):
    p = Player(f"player-{request.node.name[:16]}")
    time.sleep(0.3)
    yield p
    p.close()


TAKES: list[subprocess.Popen] = []  # each test's livegen processes, ended if the test fails first


@pytest.fixture(autouse=True)
def _no_take_left_running():
    yield
    while TAKES:
        proc = TAKES.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.reader.join(5)
        proc.stderr.close()


def perform(receiver, player, tmp_path, *flags, seconds=25):
    """`livegen perform` listening to ``player``, returned once its take plays."""
    take = tmp_path / "take.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--api", "jack", "--port", receiver.name, "--midi-in", player.name,
                                        "--duration", str(seconds), "--record", str(take), *flags),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    TAKES.append(proc)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    proc.said, proc.reader = lines, reader
    deadline = time.monotonic() + 20
    while not any("performing on" in line for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("".join(lines))
        time.sleep(0.05)
    time.sleep(0.3)
    return proc, take


def finish(proc):
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.reader.join(5)
        proc.stderr.close()
    time.sleep(0.2)
    return "".join(proc.said)


def answers_after(receiver, since):
    return [(t, m) for t, m in list(receiver.messages)
            if t > since and m.type == "note_on" and m.velocity and m.channel != PLAYER_CHANNEL]


@pytest.mark.parametrize("mode", ["answer", "continue"])
def test_a_phrase_is_answered_after_the_silence_in_its_key_and_the_answer_yields(receiver, player, tmp_path, mode):
    phrase = pop909_phrase("101")
    proc, take = perform(receiver, player, tmp_path, "--respond", mode, "--answer-after", "0.5", "--seed", "3")
    time.sleep(1.0)
    assert not answers_after(receiver, 0), "livegen plays before the player has played"
    end = player.play(phrase)
    time.sleep(2.5)
    answer = answers_after(receiver, end)
    assert len(answer) >= 4
    assert 0.45 <= answer[0][0] - end <= 0.6  # the silence threshold, then at once
    heard = np.bincount([n % 12 for _, _, n, _ in phrase], minlength=12)
    played = np.bincount([m.note % 12 for _, m in answer], minlength=12)
    assert np.corrcoef(heard, played)[0, 1] >= 0.5
    player.send(mido.Message("note_on", note=60, velocity=80, channel=PLAYER_CHANNEL))
    back = time.monotonic()
    time.sleep(1.0)
    player.send(mido.Message("note_off", note=60, channel=PLAYER_CHANNEL))
    assert not answers_after(receiver, back + 0.3), "livegen went on over the player"
    proc.terminate()
    finish(proc)
    receiver.settle()
    assert receiver.hanging() == 0
    recorded = mido.MidiFile(take)
    assert [t.name for t in recorded.tracks][-1] == "player"
    on_track = [m.bytes() for m in recorded.tracks[-1] if m.type in ("note_on", "note_off")]
    rows = [json.loads(line) for line in take.with_suffix(".jsonl").read_text().splitlines()]
    assert rows[0]["respond"]["mode"] == mode
    assert on_track == [r["player"] for r in rows if "player" in r]  # the track and the session hold the same
    assert len(on_track) >= 0.9 * (2 * len(phrase) + 2)  # what JACK delivered whole of what was sent


def test_accompany_plays_along_in_the_players_key_and_thru_passes_their_notes(receiver, player, tmp_path):
    phrase = pop909_phrase("404", seconds=8.0)
    proc, take = perform(receiver, player, tmp_path, "--respond", "accompany", "--thru", seconds=20)
    start = time.monotonic()
    end = player.play(phrase)
    proc.terminate()
    finish(proc)
    receiver.settle()
    thru = [m for _, m in receiver.messages if m.type == "note_on" and m.velocity and m.channel == PLAYER_CHANNEL]
    assert [m.note for m in thru] == [n for _, n in sorted((s, n) for s, _, n, _ in phrase)]  # as sent: a chord low to high
    along = [m for t, m in receiver.messages if start + 3 < t < end and m.type == "note_on" and m.velocity
             and m.channel != PLAYER_CHANNEL]
    assert len(along) >= 4  # it plays while the player plays
    heard = np.bincount([n % 12 for _, _, n, _ in phrase], minlength=12)
    played = np.bincount([m.note % 12 for m in along], minlength=12)
    assert np.corrcoef(heard, played)[0, 1] >= 0.5
    assert receiver.hanging() == 0


# A broken controller in a process of its own: a flood sent from the test's process would hold its
# interpreter lock, and the receiver's callback (run by rtmidi in JACK's cycle) would wait for it, garbling
# what the receiver hears, not what livegen sends.
BROKEN_CONTROLLER = """
import sys, time, mido
port = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True).open_output(sys.argv[1], virtual=True)
raw = port._rt  # raw bytes, as a broken controller sends them
print("open", flush=True)
sys.stdin.readline()
for _ in range(50):
    raw.send_message([0xF0] + [0x11] * 200 + [0xF7])  # SysEx
    raw.send_message([0x94, 200 & 0x7F, 0x7F])
    raw.send_message([0x3C, 0x40])  # data bytes with no status
t0 = time.monotonic()
while time.monotonic() - t0 < 2.0:  # a flood, thousands of messages a second
    for note in range(0, 128, 8):
        raw.send_message([0x94, note, 100])
        raw.send_message([0x84, note, 0])
print("sent", flush=True)
sys.stdin.readline()
"""


def test_garbage_and_a_flood_never_stop_the_music(receiver, jack_server, tmp_path):
    controller = subprocess.Popen([sys.executable, "-c", BROKEN_CONTROLLER, "broken-keys"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
    try:
        assert controller.stdout.readline().strip() == "open"
        proc, take = perform(receiver, SimpleNamespace(name="broken-keys"), tmp_path, "--respond", "accompany",
                             seconds=12)
        controller.stdin.write("go\n")
        controller.stdin.flush()
        assert controller.stdout.readline().strip() == "sent"
        before = len(receiver.notes())
        time.sleep(2.0)
        assert len(receiver.notes()) > before, "the music stopped after the garbage"
        err = finish(proc)
    finally:
        controller.stdin.close()
        controller.wait(10)
        controller.stdout.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    receiver.settle()
    assert receiver.hanging() == 0
    assert receiver.unreadable == 0
    # what livegen sent (its recording) is what arrived, message for message: no note lost on the way
    assert [tuple(m.bytes()) for m in receiver.notes()] == [m for _, m in layer_notes(take)]


def test_an_input_port_that_vanishes_is_said_once_and_reconnects(receiver, jack_server, tmp_path):
    player = Player("vanishing-keys")
    time.sleep(0.3)
    phrase = pop909_phrase("222", seconds=3.0)  # before the take: a skip must not leave it running
    proc, take = perform(receiver, player, tmp_path, "--respond", "answer", seconds=14)
    player.close()
    time.sleep(2.5)
    player = Player("vanishing-keys")
    time.sleep(2.0)
    end = player.play(phrase)
    time.sleep(1.5)
    answered = answers_after(receiver, end)
    err = finish(proc)  # before the keyboard goes again: that would be a second vanishing, rightly said
    player.close()
    assert proc.returncode == 0, err
    assert err.count("is gone") == 1 and "is back" in err
    assert len(answered) >= 2
    receiver.settle()
    assert receiver.hanging() == 0


def test_the_watcher_looks_through_one_open_client(jack_server, monkeypatch):
    """A new MIDI client per look held the interpreter lock 85-150 ms and stalled the model's
    thread for seconds on a busy machine: the watcher asks one client, look after look, and still
    sees a port go and come back."""
    opened = []
    real_client = ports.rtmidi_client
    monkeypatch.setattr(ports, "rtmidi_client", lambda *a, **k: opened.append(a) or real_client(*a, **k))
    monkeypatch.setattr(midi_in, "WATCH_EVERY", 0.05)
    said = []
    player = Player("watched-keys")
    time.sleep(0.3)
    inputs = midi_in.PlayerInputs("jack", (player.name,), hub=None, report=said.append)
    before = len(opened)
    inputs.start(None)
    try:
        time.sleep(1.0)  # about 20 looks
        assert len(opened) - before == 2, opened  # the port's own client and the watcher's
        player.close()
        time.sleep(0.5)
        player = Player("watched-keys")
        time.sleep(0.8)
    finally:
        inputs.stop()
        player.close()
    assert sum("is gone" in line for line in said) == 1 and sum("is back" in line for line in said) == 1, said


def eighths(bpm, seconds, seed=0, jitter=0.01):
    """(onset, end, pitch, velocity) of a melody in 8ths and quarters at ``bpm``, played by hand."""
    rng = np.random.default_rng(seed)
    notes, t, eighth = [], 0.0, 30.0 / bpm
    while t < seconds:
        length = eighth * rng.choice([1, 1, 2])
        start = max(0.0, t + rng.normal(0.0, jitter))
        notes.append((start, start + 0.8 * length, int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72])), 90))
        t += length
    return notes


def pulse_of(notes, take_bpm, at_end=0.1):
    pulse = PlayerPulse(take_bpm)
    for start, _, pitch, velocity in notes:
        pulse.hear(1000.0 + start, [0x90 | PLAYER_CHANNEL, pitch, velocity])
        pulse.hear(1000.0 + start + 0.001, [0xB0 | PLAYER_CHANNEL, 64, 127])  # not an onset
    return pulse, 1000.0 + notes[-1][0] + at_end


@pytest.mark.parametrize("player_bpm, take_bpm", [(96, 120), (100, 100), (140, 120), (75, 90)])
def test_the_players_pulse_is_their_tempo_and_16ths(player_bpm, take_bpm):
    pulse, now = pulse_of(eighths(player_bpm, 8.0), take_bpm)
    beat, bpm = pulse.beat_at(now)
    assert bpm == pytest.approx(player_bpm, rel=0.01)
    last = 1000.0 + eighths(player_bpm, 8.0)[-1][0]
    on_grid = pulse.beat_at(last)[0] * 4  # in 16ths: an onset falls on one
    assert abs(on_grid - round(on_grid)) < 0.15


def test_a_pulse_needs_enough_onsets_a_player_still_playing_and_a_grid():
    few, now = pulse_of(eighths(100, 1.5), 100)
    assert few.beat_at(now) is None  # fewer than 8 onsets
    pulse, now = pulse_of(eighths(100, 8.0), 100)
    assert pulse.beat_at(now) is not None and pulse.beat_at(now + PlayerPulse.STOPPED + 0.1) is None
    chord = PlayerPulse(100)
    for i in range(12):  # three-note chords on the beat: 12 onsets, not 36
        for pitch in (60, 64, 67):
            chord.hear(1000.0 + i * 0.6 + pitch * 0.0002, [0x90, pitch, 80])
    assert len(chord._onsets) == 12 and chord.beat_at(1000.0 + 11 * 0.6)[1] == pytest.approx(100, rel=0.01)
    rng = np.random.default_rng(3)
    heard = 0
    for seed in range(20):  # onsets with no pulse at all
        scattered = PlayerPulse(110)
        for t in np.sort(np.random.default_rng(seed).uniform(0, 6, 24)):
            scattered.hear(1000.0 + t, [0x90, int(rng.integers(48, 72)), 80])
        heard += scattered.beat_at(1006.0) is not None
    assert heard <= 2


def test_the_pulse_of_real_melodies_is_their_tempo():
    """POP909 melodies, heard with the take's tempo 15 % off theirs either way (not 738: its melody
    moves in triplets, whose grid is the 16ths of 3/4 of its tempo)."""
    import mido as _mido

    found = 0
    for song in ["001", "082", "164", "246", "328", "410", "492", "574", "656"]:
        notes = pop909_phrase(song, seconds=8.0)
        tempo = next(m.tempo for track in _mido.MidiFile(POP909 / song / f"{song}.mid").tracks
                     for m in track if m.type == "set_tempo")
        for take_bpm in (_mido.tempo2bpm(tempo) * 1.15, _mido.tempo2bpm(tempo) * 0.87):
            pulse, now = pulse_of(notes, take_bpm)
            heard = pulse.beat_at(now)
            if heard is not None:
                found += 1
                assert heard[1] == pytest.approx(_mido.tempo2bpm(tempo), rel=0.02), song
    assert found >= 16  # of 18


def test_a_dcrnn_take_follows_the_players_tempo(receiver, player, tmp_path):
    """--follow-player: a player at 96 bpm in a take set to 120 moves its tempo (and the DCRNN's
    16ths) to theirs, in the session so a replay keeps it; it holds when they stop."""
    melody = eighths(96, 9.0, seed=1)
    proc, take = perform(receiver, player, tmp_path, "--model", "dcrnn", "--follow-player", "--bpm", "120",
                         seconds=14)
    player.play(melody)
    err = finish(proc)
    assert proc.returncode == 0, err
    assert "following the player at" in err and "Traceback" not in err
    rows = [json.loads(line) for line in take.with_suffix(".jsonl").read_text().splitlines()][1:]
    tempi = [(r["t"], r["bpm"]) for r in rows if "bpm" in r]
    assert tempi and np.median([b for t, b in tempi if t > tempi[0][0] + 3.0]) == pytest.approx(96, rel=0.03)
    receiver.settle()
    assert receiver.hanging() == 0


def test_a_phrase_estimate_reads_the_key_density_and_register():
    phrase = PlayerPhrase()
    for i, pitch in enumerate([60, 64, 67, 72] * 4):  # C major, 4 notes a second, around C5
        phrase.hear(i * 0.25, [0x90, pitch, 90])
        phrase.hear(i * 0.25 + 0.2, [0x80, pitch, 0])
    from livegen.music.conditioning import Controls, control_density_to_rate, control_pitch_to_midi

    c = estimate_controls(phrase.between(0, 10), Controls())
    assert np.argsort(c.histogram)[-3:].tolist() == [4, 7, 0] or set(np.flatnonzero(c.histogram)) == {0, 4, 7}
    assert abs(control_density_to_rate(c.density) - 16 / 3.95) < 0.5
    assert abs(control_pitch_to_midi(c.pitch) - 65.75) < 0.5


def layer_notes(path):
    """The livegen layer's note messages of a recorded take, (seconds, bytes), the player's track left out."""
    midi = mido.MidiFile(path)
    t, out = 0.0, []
    for msg in mido.merge_tracks([track for track in midi.tracks if track.name != "player"]):
        t += mido.tick2second(msg.time, midi.ticks_per_beat, 500_000)
        if msg.type in ("note_on", "note_off"):
            out.append((round(t, 3), tuple(msg.bytes())))
    return out


def test_an_answered_take_replays_note_for_note_from_its_session(receiver, player, tmp_path):
    """The session holds the player's notes at their times; a replay feeds them back, so the answers
    are decided and played again as they were live."""
    phrase = pop909_phrase("222", seconds=4.0)
    proc, take = perform(receiver, player, tmp_path, "--respond", "answer", "--seed", "7", seconds=10)
    player.play(phrase)
    err = finish(proc)
    assert proc.returncode == 0, err
    again = tmp_path / "again.mid"
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"replay:{take.with_suffix('.jsonl')}",
                                     "--seed", "7", "--record", str(again)), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    live = layer_notes(take)
    assert sum(1 for _, m in live if m[0] & 0xF0 == 0x90 and m[2]) >= 4  # it answered
    assert layer_notes(again) == live
    assert mido.MidiFile(again).tracks[-1].name == "player"  # the replay records the player's notes again


def test_the_pulse_follows_a_player_who_changes_tempo_after_hundreds_of_notes():
    """The onset window stays full after 256 onsets: the fit must still be made afresh."""
    pulse = PlayerPulse(110)
    t = 1000.0
    for bpm in (100, 120):
        for _ in range(300):
            pulse.hear(t, [0x90, 60, 80])
            t += 30.0 / bpm
        assert pulse.beat_at(t - 0.01)[1] == pytest.approx(bpm, rel=0.01)


def test_closing_an_input_waits_until_its_reader_has_let_go_of_the_port(jack_server):
    """A close freed rtmidi's port after waiting 1 s for the thread reading it; on a loaded machine
    under a flood the thread was still in rtmidi then, and livegen died of SIGSEGV. A close waits
    for the reader however long a busy machine holds it up."""
    player = Player("held-up-keys")
    time.sleep(0.3)
    inside, returned = threading.Event(), []

    def held_up(at, msg):
        inside.set()
        time.sleep(1.5)
        returned.append(time.monotonic())

    port = ports.RtMidiInput("jack", player.name, held_up)
    try:
        player.send(mido.Message("note_on", note=60, velocity=90))
        assert inside.wait(5.0)
        port.close()
        closed = time.monotonic()
    finally:
        player.close()
    assert returned and returned[0] <= closed
