"""``livegen bench --parts midi-in``: a player on JACK (POP909 phrases sent from a port of the bench's
own) answered by ``livegen perform --midi-in --respond answer``, measured at a receiving port: the
player's last note -> the first answering note (its excess over the silence threshold), the answer's
key agreement with the phrase (pitch-class correlation), note integrity when the player comes back
mid-answer (notes left sounding, notes struck again while sounding, notes after the yield), a pedal
(``--trigger-cc``) -> the answer's first note, and a player's note -> its copy sent thru. livegen's
own figures at its send point (JACK's dummy driver adds up to a period per hop, so the receiver's
are delivery, not timing): a note's arrival -> its thru copy, a MIDI-learned knob -> the music.
Runs on the JACK server there is, or a private dummy one.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mido
import numpy as np

from livegen.bench.clock import jack_for_bench

PLAYER_CHANNEL = 4  # the player's channel: livegen plays on 1 (0 here), thru keeps the player's
RECEIVER, PLAYER = "livegen-midi-in-bench-rx", "livegen-midi-in-bench-player"
ANSWER_AFTER = 0.5
PHRASE_START, PHRASE_SECONDS = 10.0, 8.0  # s into each song, s long (as the acceptance check plays them)
ANSWER_LISTEN = 3.0  # s of answer heard before the player comes back
BACK_HOLD = 1.0  # s the player's note is held when they come back
SETTLE = 0.3  # s after the player comes back by which livegen must have yielded


def pop909_phrase(path: Path, start: float = PHRASE_START, seconds: float = PHRASE_SECONDS) -> list[tuple]:
    """(onset, end, pitch, velocity) of a POP909 song's notes from ``start`` for ``seconds``."""
    t, on, notes = 0.0, {}, []
    for msg in mido.MidiFile(path):
        t += msg.time
        if t < start:
            continue
        if t > start + seconds:
            break
        if msg.type == "note_on" and msg.velocity:
            on[msg.note] = (t - start, msg.velocity)
        elif msg.type in ("note_on", "note_off") and msg.note in on:
            s, v = on.pop(msg.note)
            notes.append((s, t - start, msg.note, v))
    return notes


class Receiver:
    """The port livegen plays to, every message stamped on arrival. rtmidi's queue is read on a
    thread of the bench's (its callback would run Python in JACK's real-time cycle)."""

    def __init__(self):
        import rtmidi  # needs the system's ALSA library: only the bench's JACK ports use it

        self.got: list[tuple[float, list[int]]] = []
        self._lock = threading.Lock()
        self._raw = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="livegen-bench", queue_size_limit=8192)
        self._raw.open_virtual_port(RECEIVER)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            event = self._raw.get_message()
            if event is None:
                time.sleep(0.001)  # stamps within a ms; faster polls take CPU from livegen under load
            else:
                with self._lock:
                    self.got.append((time.monotonic(), event[0]))

    def since(self, t: float) -> list[tuple[float, list[int]]]:
        with self._lock:
            return [(at, m) for at, m in self.got if at >= t]

    def close(self):
        self._stop.set()
        self._thread.join(1.0)
        self._raw.close_port()
        self._raw.delete()


class Player:
    """A sending JACK port that plays phrases in real time (sleep, then spin to each onset)."""

    def __init__(self):
        import rtmidi  # needs the system's ALSA library: only the bench's JACK ports use it

        self._raw = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="livegen-bench")
        self._raw.open_virtual_port(PLAYER)

    def send(self, msg: list[int]) -> float:
        self._raw.send_message(msg)
        return time.monotonic()

    def play(self, notes: list[tuple]) -> float:
        """Play ``notes``; returns when its last message left."""
        events = sorted([(s, 1, n, v) for s, _, n, v in notes] + [(e, 0, n, 0) for _, e, n, _ in notes])
        t0 = time.monotonic()
        sent = t0
        for t, on, note, velocity in events:
            _wait_until(t0 + t)
            sent = self.send([(0x90 if on else 0x80) | PLAYER_CHANNEL, note, velocity])
        return sent

    def close(self):
        self._raw.close_port()
        self._raw.delete()


def _wait_until(t: float) -> None:
    """Sleep to ``t`` in short naps: a spin would hold the interpreter lock the receiver's thread needs
    to stamp what arrives meanwhile."""
    while (left := t - time.monotonic()) > 0:
        time.sleep(min(left, 0.0005))


def _livegen(*flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "livegen", "perform", "--api", "jack", "--port", RECEIVER,
               "--midi-in", PLAYER, "--duration", "600", *flags]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _started(rx: Receiver, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until livegen listens (its input port connected to the player's)."""
    import rtmidi  # needs the system's ALSA library: only the bench's JACK ports use it

    probe = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="livegen-bench-probe")
    try:
        deadline = time.monotonic() + timeout
        while not any(p.startswith("livegen:") for p in probe.get_ports()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"livegen perform did not start: {proc.stderr.read()[-300:]}")
            time.sleep(0.2)
    finally:
        probe.delete()
    time.sleep(2.0)  # its model loaded and the take under way


def _stop(proc: subprocess.Popen) -> str:
    """End livegen as a stage manager's script would (SIGTERM); what it said, its summary last."""
    proc.terminate()
    try:
        return proc.communicate(timeout=15)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1]


def _said(summary: str, what: str) -> dict:
    """livegen's own figures at its send point, from its summary line: "WHAT p50 X ms, p99 Y ms over N"."""
    found = re.search(rf"{re.escape(what)} p50 ([0-9.]+) ms, p99 ([0-9.]+) ms over (\d+)", summary)
    if not found:
        return {"n": 0}
    return {"n": int(found[3]), "p50": float(found[1]), "p99": float(found[2])}


def _ours(got, kinds=(0x90,)) -> list[tuple[float, list[int]]]:
    """livegen's own notes (not the player's channel) of the message kinds asked for."""
    return [(t, m) for t, m in got if m[0] & 0xF0 in kinds and m[0] & 0x0F != PLAYER_CHANNEL
            and (m[0] & 0xF0 != 0x90 or m[2] > 0)]


def _integrity(got) -> tuple[int, int]:
    """(notes left sounding, notes struck again while sounding) among livegen's own messages."""
    sounding: dict[tuple[int, int], int] = {}
    retriggers = 0
    for _, m in got:
        kind, channel = m[0] & 0xF0, m[0] & 0x0F
        if channel == PLAYER_CHANNEL or kind not in (0x80, 0x90):
            continue
        key = (channel, m[1])
        if kind == 0x90 and m[2] > 0:
            retriggers += sounding.get(key, 0) > 0
            sounding[key] = sounding.get(key, 0) + 1
        else:
            sounding[key] = max(0, sounding.get(key, 0) - 1)
    return sum(sounding.values()), retriggers


def _stats(values) -> dict:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50": round(float(np.percentile(a, 50)), 2), "p99": round(float(np.percentile(a, 99)), 2),
            "max": round(float(a.max()), 2)}


def answers(songs: list[Path], rx: Receiver, player: Player, log) -> dict:
    """Each phrase answered: latency past the threshold, key agreement, and the yield when the
    player comes back mid-answer."""
    proc = _livegen("--respond", "answer", "--answer-after", str(ANSWER_AFTER))
    try:
        _started(rx, proc)
        start = time.monotonic()
        excess, corr, late, counts = [], [], 0, []
        for path in songs:
            notes = pop909_phrase(path)
            end = player.play(notes)
            time.sleep(ANSWER_LISTEN)
            first = _ours(rx.since(end))
            answer = [m for _, m in first]
            if first:
                excess.append((first[0][0] - end - ANSWER_AFTER) * 1000.0)
            phrase_pcs = np.bincount([n % 12 for _, _, n, _ in notes], minlength=12).astype(float)
            answer_pcs = np.bincount([m[1] % 12 for m in answer], minlength=12).astype(float)
            if len(answer) >= 4:
                corr.append(float(np.corrcoef(phrase_pcs, answer_pcs)[0, 1]))
            counts.append(len(answer))
            back = player.send([0x90 | PLAYER_CHANNEL, 60, 80])
            time.sleep(BACK_HOLD)
            player.send([0x80 | PLAYER_CHANNEL, 60, 0])
            late += len(_ours(rx.since(back + SETTLE)))
            log(f"bench: {path.stem}: {len(notes)} notes played, answered {'after %.0f ms past the threshold' % excess[-1] if first else 'never'}"
                f", {len(answer)} notes, key corr {corr[-1] if len(answer) >= 4 else float('nan'):.2f}")
            time.sleep(0.2)
        time.sleep(2.0)
    finally:
        _stop(proc)
    time.sleep(0.5)
    unended, retriggers = _integrity(rx.since(start))
    return {"phrases": len(songs), "answered": len(excess), "answer_notes_mean": round(float(np.mean(counts)), 1),
            "latency_past_threshold_ms": _stats(excess),
            "key_corr": {"mean": round(float(np.mean(corr)), 3), "min": round(float(np.min(corr)), 3)} if corr else None,
            "notes_after_yield": late, "unended": unended, "retriggers": retriggers}


def pedal_and_thru(notes: list[tuple], rx: Receiver, player: Player, presses: int, log) -> dict:
    """A pedal (--trigger-cc 64) ends a phrase at once: pedal -> the answer's first note; and each
    of the player's notes -> its copy sent thru."""
    proc = _livegen("--respond", "answer", "--answer-after", "5", "--trigger-cc", "64", "--thru")
    pedal, thru, said = [], [], ""
    try:
        _started(rx, proc)
        short = [n for n in notes if n[0] < 2.0]
        for _ in range(presses):
            t0 = time.monotonic()
            player.play(short)
            time.sleep(0.1)
            pressed = player.send([0xB0 | PLAYER_CHANNEL, 64, 127])
            time.sleep(1.0)
            got = rx.since(t0)
            first = _ours(rx.since(pressed))
            if first:
                pedal.append((first[0][0] - pressed) * 1000.0)
            echoes = [t for t, m in got if m[0] == 0x90 | PLAYER_CHANNEL and m[2] > 0]
            sent = sorted(t0 + s for s, _, _, _ in short)
            thru += [(e - s) * 1000.0 for s, e in zip(sent, echoes)]
            player.send([0xB0 | PLAYER_CHANNEL, 64, 0])
            player.send([0x90 | PLAYER_CHANNEL, 60, 80])  # the player comes back: the answer yields
            time.sleep(0.3)
            player.send([0x80 | PLAYER_CHANNEL, 60, 0])
            time.sleep(0.3)
    finally:
        said = _stop(proc)
    log(f"bench: pedal -> answer over {len(pedal)} presses, {len(thru)} notes thru")
    return {"pedal_to_answer_ms": _stats(pedal), "thru_ms": _stats(thru), "thru_send_ms": _said(said, "thru")}


def learned_cc(rx: Receiver, player: Player, moves: int, log) -> dict:
    """A knob MIDI-learned to density, turned every 0.25 s: its arrival -> the first message out
    made under it, as livegen measures it at its send point."""
    with tempfile.TemporaryDirectory(prefix="livegen-bench-") as folder:
        preset = Path(folder) / "knob.toml"
        preset.write_text(f'[[midi_learn]]\nsource = "cc"\nnumber = 74\nchannel = {PLAYER_CHANNEL + 1}\n'
                          f'target = "density"\n', encoding="utf-8")
        proc = _livegen("--preset", str(preset))
        said = ""
        try:
            _started(rx, proc)
            for i in range(moves):
                player.send([0xB0 | PLAYER_CHANNEL, 74, 100 if i % 2 else 20])
                time.sleep(0.25)
        finally:
            said = _stop(proc)
    changes = _said(said, "control->MIDI")
    log(f"bench: a learned knob turned {moves} times, {changes['n']} changes heard in the music")
    return {"cc_to_midi_ms": changes}


def midi_in_bench(data: str, phrases: int = 12, log=print) -> dict:
    """The bench part: ``phrases`` POP909 songs (evenly spread over ``data``) answered on JACK."""
    root = Path(data)
    songs = sorted(p / f"{p.name}.mid" for p in root.iterdir() if (p / f"{p.name}.mid").is_file()) if root.is_dir() else []
    if not songs:
        return {"skipped": f"no POP909 songs in {data}"}
    chosen = [songs[i * len(songs) // phrases] for i in range(phrases)]
    chosen = [p for p in chosen if len(pop909_phrase(p)) >= 4]
    with jack_for_bench() as why_not:
        if why_not:
            return {"skipped": why_not}
        rx, player = Receiver(), Player()
        try:
            log(f"bench: {len(chosen)} POP909 phrases of {PHRASE_SECONDS:g} s answered on JACK")
            result = answers(chosen, rx, player, log)
            result.update(pedal_and_thru(pop909_phrase(chosen[0]), rx, player, 10, log))
            result.update(learned_cc(rx, player, 40, log))
        finally:
            player.close()
            rx.close()
    return result


def report_rows(r: dict) -> list[str]:
    if "skipped" in r:
        return [f"{'MIDI in':<22} skipped: {r['skipped']}"]

    def row(name, d, target=""):
        if not d.get("n"):
            return f"{name:<22} none measured"
        most = f"  max {d['max']:8.2f}" if "max" in d else ""
        return f"{name:<22} p50 {d['p50']:8.2f}  p99 {d['p99']:8.2f}{most} ms over {d['n']}{target}"

    key = r["key_corr"] or {"mean": float("nan"), "min": float("nan")}
    return [
        row("answer past silence", r["latency_past_threshold_ms"], f" of {r['phrases']} phrases (target <= 10)"),
        f"{'answer key corr':<22} mean {key['mean']:.2f}, min {key['min']:.2f} (target >= 0.7); "
        f"{r['answer_notes_mean']:.1f} notes in {ANSWER_LISTEN:g} s",
        f"{'player comes back':<22} {r['notes_after_yield']} notes after the yield, {r['unended']} unended, "
        f"{r['retriggers']} re-triggers (target 0, 0, 0)",
        row("pedal -> answer", r["pedal_to_answer_ms"]),
        row("player note -> thru", r["thru_ms"], " (at the receiver: JACK's periods included)"),
        row("  at livegen's send", r["thru_send_ms"], " (target <= 10)"),
        row("learned CC -> MIDI", r["cc_to_midi_ms"], " (at livegen's send; target <= 10)"),
    ]
