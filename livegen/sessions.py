"""Sessions: a recorded take's control stream, so a great take can be replayed note for note.

``--record take.mid`` also writes ``take.jsonl``: everything that steered the music (camera, EMG,
panel, OSC, scripts: every control the engine received, stamped with the performance time it
governs) in the control-stream format of livegen/music/control_stream.py, after a header line with
what else shaped the take (model, seed, bpm, ...). Lines are written as the changes are applied
and each is flushed at once, so a crash loses nothing but the closing ``end`` line.

``livegen perform --controls replay:take.jsonl --seed N`` plays it again: a take is a pure
function of the control stream and the seed (see engine.py), so the MIDI is the same.
``list_sessions`` lists the takes in a folder for the panel's sessions view.
"""
from __future__ import annotations

import datetime
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

from livegen.errors import UserError
from livegen.music.conditioning import Controls
from livegen.music.control_stream import CONTROL_FIELDS, changed_row, format_line, read_stream
from livegen.presets import LayerPreset
from livegen.sensors.script import LEAD, ScriptControls

VERSION = 3  # 3: a Char-RNN's rests follow changes made while they play; 2: "model" (and each layer's) is the
# name the model was loaded by; 1 wrote its kind
NUMBER = (int, float)
HEADER_TYPES = {"version": int, "model": str, "seed": int, "temperature": NUMBER, "bpm": NUMBER, "lookahead": NUMBER,
                "channel": int, "program": (int, type(None)), "volume": (int, type(None)), "steering": bool,
                "timing": str, "started": str, "midi": str, "layers": list, "from": NUMBER, "respond": dict}
LAYER_TYPES = {"model": str, "channel": int, "program": (int, type(None)), "volume": (int, type(None)),
               "temperature": (*NUMBER, type(None)), "port": (str, type(None))}


def recorded_model(model: str, version: int) -> str:
    """The model a take names, as ``load_model`` loads it: a version-1 session's "charrnn" was the
    Char-RNN in clock time that ships today as "expressive" (the same file)."""
    return "expressive" if version < 2 and model == "charrnn" else model


def played_with(header: dict) -> dict:
    """The engine settings a take was played with that its header does not name, as its version
    played them (``EngineSettings`` fields)."""
    if header.get("version", VERSION) < 3:
        return {"retime_rests": False}
    return {}


def recorded_models(header: dict) -> dict:
    """The header with its model and its layers' models as ``load_model`` names them."""
    version = header.get("version", VERSION)
    out = dict(header, model=recorded_model(str(header.get("model", "charrnn")), version))
    if isinstance(header.get("layers"), list):
        out["layers"] = [dict(entry, model=recorded_model(str(entry.get("model")), version))
                         if isinstance(entry, dict) else entry for entry in header["layers"]]
    return out


def session_path(midi_path: str | Path) -> Path:
    """The control stream beside a recording: take.mid -> take.jsonl."""
    return Path(midi_path).with_suffix(".jsonl")


class SessionWriter:
    """Appends the control stream of a take, one flushed JSON line per change."""

    def __init__(self, path: str | Path, header: dict, initial: Controls):
        self.path = Path(path)
        self._file = self.path.open("w", buffering=1)  # line-buffered: every line reaches the file at once
        self._lock = threading.Lock()  # the generator thread writes, stop() closes
        self._last: Controls | None = None
        self._last_t = 0.0
        self._player: list[tuple[float, list[int]]] = []  # a player's messages, written in time order
        self._write({"livegen": "session", "version": VERSION,
                     "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), **header})
        self.change(0.0, initial)

    def _write(self, row: dict) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(format_line(row))

    def player(self, t: float, msg: list[int]) -> None:
        """A player's message at ``t`` (any thread): kept until the controls are written up to it,
        so the lines stay in time order."""
        with self._lock:
            self._player.append((t, msg))

    def write_player(self, until: float) -> None:
        """The player's messages up to performance time ``until``."""
        with self._lock:
            due = sorted(p for p in self._player if p[0] <= until)
            self._player = [p for p in self._player if p[0] > until]
        for t, msg in due:
            self._last_t = max(self._last_t, t)
            self._write({"t": round(self._last_t, 6), "player": list(msg)})

    def change(self, t: float, controls: Controls) -> None:
        """The controls that govern the music from performance time ``t`` on."""
        self.write_player(t)
        row = changed_row(controls, self._last)
        self._last = controls
        if row:
            self._last_t = max(self._last_t, t)  # the format's times never go back
            self._write({"t": self._last_t, **row})

    def close(self, end: float | None) -> None:
        """Close with the take's end time (None: unknown, e.g. the take failed to start)."""
        if self._file is None:
            return
        self.write_player(math.inf)
        if end is not None and math.isfinite(end):
            self._write({"t": max(self._last_t, end), "end": True})
        with self._lock:
            self._file.close()
            self._file = None


class ReplayControls(ScriptControls):
    """``--controls replay:take.jsonl``: a recorded session played back on the performance clock.

    The same as a script, plus the header (what the take was made with) and its end."""

    name = "replay"

    def __init__(self, path: str, base: Controls | None = None):
        super().__init__(path, Controls())
        if self.header.get("livegen") == "session":
            _check_header(self.header, f"session {path}")
            # the first row is the engine's whole initial state (flags and presets played no part);
            # later rows at t=0 were changes made while it started, replayed as changes again
            self.current = self._merge(self.rows[0], Controls())
            self._pending = [r for r in self.rows[1:] if CONTROL_FIELDS & set(r)]
        self.player_rows = [(r["t"], r["player"]) for r in self.rows if "player" in r]
        self._next_player = 0
        self._hear = None

    def play_player(self, hear) -> None:
        """Feed the recorded player's messages to ``hear(msg, t=...)`` at their times, beside
        the controls: the take's responses are made again from them."""
        self._hear = hear

    def _step(self) -> bool:
        if self._hear is None:
            return super()._step()
        now = self._clock()
        while self._next_player < len(self.player_rows) and self.player_rows[self._next_player][0] <= now:
            t, msg = self.player_rows[self._next_player]
            self._hear(list(msg), t=t)  # at its time: the responses are decided as they were live
            self._next_player += 1
        self._hand_over(now + LEAD)
        due = [self.player_rows[self._next_player][0] - now] if self._next_player < len(self.player_rows) else []
        if self._next < len(self._pending):
            due.append(self._pending[self._next]["t"] - LEAD - now)
        if not due:
            return True
        self._stop.wait(min(max(min(due), 0.0), 0.05))
        return False

    @classmethod
    def from_spec(cls, args: str, initial: Controls, preset: str | None = None) -> "ReplayControls":
        if not args:
            raise UserError("--controls replay: needs a session, e.g. --controls replay:take.jsonl")
        path = Path(args)
        if path.suffix == ".mid":  # the take itself was named: its session lies beside it
            path = session_path(path)
        return cls(str(path), initial)

    def mismatches(self, **used) -> list[str]:
        """Settings this replay uses that differ from the recorded take's (the notes will differ)."""
        recorded = recorded_models(self.header)
        return [f"{key} {recorded[key]!r} (now {value!r})" for key, value in used.items()
                if key in self.header and value is not None and recorded[key] != value]


@dataclass
class RecordedTake:
    """A recorded take, as the sessions view lists it."""

    controls: Path  # the .jsonl
    midi: Path | None  # the .mid beside it, when it is there
    duration: float  # seconds
    started: str = ""  # ISO 8601, local time
    ended: bool = True  # False: the take never closed (a crash); its duration comes from the MIDI
    header: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.controls.stem

    @property
    def seed(self) -> int:
        return int(self.header.get("seed", 0))

    def perform_args(self) -> list[str]:
        """The ``livegen`` arguments that replay this take note for note."""
        args = ["perform", "--controls", f"replay:{self.controls}", "--seed", str(self.seed)]
        header = recorded_models(self.header)
        for key, flag in (("model", "--model"), ("bpm", "--bpm"), ("temperature", "--temperature")):
            if key in self.header:
                args += [flag, str(header[key])]
        return args

    def replay_overrides(self) -> dict:
        """The take settings (``TakeSpec`` overrides) that replay this take note for note, on
        whatever output the player chooses."""
        h = recorded_models(self.header)
        program = h.get("program")
        return {"controls": f"replay:{self.controls}", "seed": self.seed, "model": h["model"],
                "temperature": float(h.get("temperature", 1.0)), "lookahead": h.get("lookahead"),
                "channel": int(h.get("channel", 1)), "program": -1 if program is None else int(program),
                "volume": h.get("volume"), "steering": bool(h.get("steering", True)),
                "bpm": float(h.get("bpm", 120.0)),
                "layers": tuple(LayerPreset.from_session(entry).spec() for entry in h.get("layers", []))}

    def source(self, initial: Controls | None = None) -> ReplayControls:
        """A control source that replays the take (start it with an engine's set_controls and now)."""
        return ReplayControls(str(self.controls), initial)


def read_take(path: str | Path) -> RecordedTake:
    """One take from its .jsonl (or its .mid); UserError when it is not a livegen session."""
    controls = session_path(path) if Path(path).suffix == ".mid" else Path(path)
    header, rows = read_stream(str(controls))
    if header.get("livegen") != "session":
        raise UserError(f"{controls} is a control script, not a recorded session (no livegen header line)")
    _check_header(header, f"session {controls}")
    midi = controls.with_suffix(".mid")
    midi = midi if midi.is_file() else None
    ends = [r["t"] for r in rows if r.get("end")]
    if ends:
        duration = ends[0]
    else:
        duration = max(rows[-1]["t"], _midi_seconds(midi) if midi else 0.0)
    return RecordedTake(controls, midi, float(duration), str(header.get("started", "")), bool(ends), header)


def _check_header(header: dict, where: str) -> None:
    """The header's values have the types the sessions view and a replay convert them to, so an
    edited or foreign header is one clear line there, not a failure later."""
    def typed(values: dict, types: dict, prefix: str) -> None:
        for key, kind in types.items():
            if key in values and not isinstance(values[key], kind):
                raise UserError(f"{where}: header key {prefix}{key} cannot be {type(values[key]).__name__} "
                                f"{values[key]!r:.40}")

    typed(header, HEADER_TYPES, "")
    for i, layer in enumerate(header.get("layers", [])):
        if not isinstance(layer, dict) or not {"model", "channel"} <= set(layer):
            raise UserError(f"{where}: header key layers[{i}] must be an object with a model and a channel")
        typed(layer, LAYER_TYPES, f"layers[{i}].")


def _midi_seconds(path: Path) -> float:
    import mido  # reading a recorded take: only to list sessions, never while recording one

    try:
        return float(mido.MidiFile(path).length)
    except (OSError, ValueError, EOFError, KeyError, IndexError):
        return 0.0


def list_sessions(folder: str | Path) -> list[RecordedTake]:
    """The takes recorded in ``folder``, newest first; files that are not sessions are skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"sessions folder {folder} does not exist")
    takes = []
    for path in root.glob("*.jsonl"):
        try:
            takes.append(read_take(path))
        except UserError:
            continue
    return sorted(takes, key=lambda t: (t.started, t.controls.stat().st_mtime), reverse=True)
