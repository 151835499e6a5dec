"""Incremental Standard MIDI File recording that survives crashes.

The file is a valid-looking type-0 SMF from the first byte; events are appended as they are sent
and flushed ten times a second (in the clock's slack before a deadline), so ``kill -9`` loses at
most ~0.1 s. The track length stays a placeholder until a clean close. A take that was never
closed is listed in a journal folder (``livegen.paths.journal_dir()``) and repaired by the next run
(``recover_unfinished``): truncated to its last whole event, hanging notes ended, End of Track
added, length fixed.

A take of several layers is written the same way, each layer's events after a MIDI-port prefix
(meta FF 21) naming its layer, and becomes a multi-track (type 1) file, one track per layer, when
it is closed or repaired (``split_layers``).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path

from livegen import paths

TICKS_PER_BEAT = 960
DEFAULT_TEMPO_US = 500_000  # 120 bpm: 1 tick = 0.52 ms
UNFINISHED_LENGTH = 0xFFFFFFFF
END_OF_TRACK = b"\xff\x2f\x00"
PORT_PREFIX = b"\xff\x21\x01"  # + one byte: the layer whose events follow


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _header(tempo_us: int) -> bytes:
    head = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    tempo = b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big")
    name = b"livegen take"
    track_name = b"\x00\xff\x03" + _varlen(len(name)) + name
    return head + b"MTrk" + struct.pack(">I", UNFINISHED_LENGTH) + tempo + track_name


class Recorder:
    """Append timed channel messages (seconds from the start of the take) to a .mid file."""

    FLUSH_EVERY = 0.1  # s: what a killed clock process can lose of the take

    def __init__(self, path: str | os.PathLike, tempo_us: int = DEFAULT_TEMPO_US,
                 track_names: list[str] | None = None, resume: tuple[int, int | None] | None = None,
                 origin: float = 0.0):
        """``track_names``: one per layer for a multi-track take; None records one track.
        ``resume``: (tick, layer) where ``repair(path, split=False)`` left the take: go on with it
        (a new clock after the last one died) instead of starting the file anew. ``origin``: the
        take's time (s) that is the file's 0, for a recording begun while the take played."""
        self.path = Path(path)
        self.origin = origin
        self.tempo_us = tempo_us
        self.track_names = track_names
        self._layer = None  # the layer whose port prefix was written last
        self._track_start = 22  # MThd(14) + "MTrk" + length
        self._pending = bytearray()
        self._last_tick = 0
        if resume is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            head = _header(tempo_us)
            os.write(self._fd, head)
            self._track_bytes = len(head) - self._track_start
        else:
            self._fd = os.open(self.path, os.O_RDWR)
            size = os.fstat(self._fd).st_size
            if size < 26 or os.pread(self._fd, 4, size - 4) != b"\x00" + END_OF_TRACK:
                os.close(self._fd)
                raise ValueError(f"{self.path} does not end as a repaired take")
            os.ftruncate(self._fd, size - 4)
            os.pwrite(self._fd, struct.pack(">I", UNFINISHED_LENGTH), self._track_start - 4)
            os.lseek(self._fd, 0, os.SEEK_END)
            self._track_bytes = size - 4 - self._track_start
            self._last_tick, self._layer = resume
        self._last_flush = time.monotonic()
        self.count = 0
        self._journal = _journal_entry(self.path)
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        self._journal.write_text(json.dumps({"path": str(self.path.resolve()), "pid": os.getpid()}))

    def add(self, seconds: float, message: list[int], layer: int = 0) -> None:
        tick = max(self._last_tick, round((seconds - self.origin) * 1e6 / self.tempo_us * TICKS_PER_BEAT))
        if self.track_names is not None and layer != self._layer:
            self._pending += _varlen(tick - self._last_tick) + PORT_PREFIX + bytes([layer])
            self._last_tick, self._layer = tick, layer
        self._pending += _varlen(tick - self._last_tick) + bytes(message)
        self._last_tick = tick
        self.count += 1

    def flush_due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last_flush >= self.FLUSH_EVERY

    def flush(self) -> None:
        if self._pending:
            os.write(self._fd, self._pending)  # in the page cache: survives the process being killed
            self._track_bytes += len(self._pending)
            self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush()
        os.write(self._fd, b"\x00" + END_OF_TRACK)
        self._track_bytes += 4
        os.pwrite(self._fd, struct.pack(">I", self._track_bytes), self._track_start - 4)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        if self.track_names is not None:
            split_layers(self.path, self.track_names)
        self._journal.unlink(missing_ok=True)


def split_layers(path: str | os.PathLike, names: list[str] | None = None) -> bool:
    """Rewrite a one-track take whose events carry layer prefixes as a type-1 file: a tempo track,
    then one track per layer (named from ``names``). Replaces the file atomically; False (and the
    file untouched) when it holds no layer prefixes."""
    import mido  # reading a take back: the clock process records without mido

    path = Path(path)
    single = mido.MidiFile(path)
    if single.type != 0 or not any(m.type == "midi_port" for m in single.tracks[0]):
        return False
    head, layers, layer, tick = mido.MidiTrack(), {}, 0, 0
    for msg in single.tracks[0]:
        tick += msg.time
        if msg.type == "midi_port":
            layer = msg.port
        elif msg.type == "end_of_track":
            break
        elif msg.is_meta:
            head.append(msg.copy(time=tick))
        else:
            layers.setdefault(layer, []).append(msg.copy(time=tick))
    out = mido.MidiFile(type=1, ticks_per_beat=single.ticks_per_beat)
    out.tracks.append(_relative(head))
    for layer in range(max(layers, default=-1) + 1):
        name = names[layer] if names and layer < len(names) else f"layer {layer + 1}"
        out.tracks.append(_relative([mido.MetaMessage("track_name", name=name, time=0), *layers.get(layer, [])]))
    tmp = path.with_name(path.name + ".layers")
    out.save(tmp)
    os.replace(tmp, path)
    return True


def _relative(messages):
    import mido  # loaded by split_layers already: reading a take back

    track, last = mido.MidiTrack(), 0
    for msg in messages:
        track.append(msg.copy(time=msg.time - last))
        last = msg.time
    return track


def _journal_entry(path: Path) -> Path:
    return paths.journal_dir() / (hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16] + ".json")


def forget_unfinished(path: str | os.PathLike) -> None:
    """Drop a take from the journal once it has been repaired."""
    _journal_entry(Path(path)).unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repair(path: str | os.PathLike, split: bool = True, names: list[str] | None = None) -> dict:
    """Make an unfinished take a valid .mid; returns what was found (with ``tick`` and ``layer``,
    where a ``Recorder`` may resume it). Safe on finished files. ``split=False`` keeps a layered
    take in one track, so that it can be resumed; ``names`` names a layered take's tracks as its
    recorder would have."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if len(data) < 22 or data[:4] != b"MThd" or data[14:18] != b"MTrk":
        raise ValueError(f"{path} is not a livegen recording")
    if data[8:10] == b"\x00\x01":  # a layered take is made type 1 only once it is whole
        import mido  # reading a take back: the clock process records without mido

        whole = mido.MidiFile(path)
        notes = sum(m.type == "note_on" and m.velocity > 0 for track in whole.tracks for m in track)
        return {"path": str(path), "notes": notes, "ended_notes": 0, "seconds": whole.length}
    tempo_us = DEFAULT_TEMPO_US
    pos, tick, end = 22, 0, 22
    sounding: set[tuple[int, int, int]] = set()  # (layer, channel, key): a layer's note ends on its own track
    notes = 0
    layer = None  # the layer whose port prefix came last
    while pos < len(data):
        start = pos
        delta, pos = _read_varlen(data, pos)
        if pos is None or pos >= len(data):
            break
        status = data[pos]
        if status == 0xFF:
            if pos + 2 >= len(data):
                break
            length, body = _read_varlen(data, pos + 2)
            if body is None or body + length > len(data):
                break
            if data[pos + 1] == 0x2F:
                end = start  # a finished file: rewrite its end the same way
                break
            if data[pos + 1] == 0x51 and length == 3:
                tempo_us = int.from_bytes(data[body:body + 3], "big")
            if data[pos + 1] == 0x21 and length == 1:
                layer = data[body]
            pos = body + length
        elif 0x80 <= status <= 0xEF:
            size = 2 if status & 0xF0 in (0xC0, 0xD0) else 3
            if pos + size > len(data):
                break
            kind, key = status & 0xF0, (-1 if layer is None else layer, status & 0x0F, data[pos + 1])
            if kind == 0x90 and data[pos + 2] > 0:
                sounding.add(key)
                notes += 1
            elif kind in (0x80, 0x90):
                sounding.discard(key)
            pos += size
        else:
            break  # torn write: stop at the last whole event
        tick += delta
        end = pos
    tail = bytearray()
    for owner, ch, note in sorted(sounding):
        if owner >= 0 and owner != layer:  # under its layer's prefix, or it lands on another's track
            tail += b"\x00" + PORT_PREFIX + bytes([owner])
            layer = owner
        tail += b"\x00" + bytes([0x80 | ch, note, 0])
    tail += b"\x00" + END_OF_TRACK
    data = data[:end] + tail
    data[18:22] = struct.pack(">I", len(data) - 22)
    tmp = path.with_name(path.name + ".repair")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    if split:
        split_layers(path, names)
    return {"path": str(path), "notes": notes, "ended_notes": len(sounding),
            "seconds": tick * tempo_us / 1e6 / TICKS_PER_BEAT, "tick": tick, "layer": layer}


def _read_varlen(data: bytearray, pos: int):
    value = 0
    for _ in range(4):
        if pos >= len(data):
            return 0, None
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, pos
    return 0, None


def recover_unfinished() -> list[dict]:
    """Repair every journalled take whose recording process is gone."""
    recovered = []
    journal = paths.journal_dir()
    if not journal.is_dir():
        return recovered
    for entry in sorted(journal.glob("*.json")):
        try:
            info = json.loads(entry.read_text())
        except (OSError, json.JSONDecodeError):
            entry.unlink(missing_ok=True)
            continue
        if _pid_alive(int(info.get("pid", 0))):
            continue
        path = Path(info["path"])
        if path.exists():
            try:
                recovered.append(repair(path))
            except (OSError, ValueError):
                pass
        entry.unlink(missing_ok=True)
    return recovered
