"""``TakeRunner``: a ``TakeSpec`` made into a running take, one at a time.

Starting a take loads its model (kept for the next take), opens its ports, starts the engine and
its clock process, then the control sources (each into the one ``ControlHub``) and, when the
spec names an outside beat, a ``TempoFollow``. Ending it stops them in the reverse order. The
command line runs whole performances with ``perform``; the panel starts and ends takes from its
worker thread. The runner is also the ``Performance`` OSC steers on the command line: /stop ends
the take, /play starts the next one.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from livegen import paths, presets
from livegen.control.osc import OscServer
from livegen.engine.engine import Engine, EngineStats
from livegen.engine.player import SpareClock
from livegen.engine.respond import RespondSettings
from livegen.engine.tempo_follow import TempoFollow
from livegen.errors import UserError
from livegen.messages import say
from livegen.midi import ports
from livegen.midi.clock import next_bar_position
from livegen.midi.recorder import recover_unfinished
from livegen.models.checkpoint import load_model
from livegen.music.conditioning import Controls, key_histogram
from livegen.music.phrase import PlayerPulse
from livegen.sensors import open_source
from livegen.sensors.emg.source import EmgControls
from livegen.sensors.learn.live import LearnedControls, preset_mapping
from livegen.sensors.script import ScriptControls
from livegen.sessions import played_with, session_path
from livegen.take.controls import ControlHub
from livegen.take.midi_in import PlayerInputs
from livegen.take.midi_learn import LearnedBindings
from livegen.take.outputs import beat_source, build_layers, check_external_z, choose_output, clock_api, clock_port
from livegen.take.spec import TakeSpec

Log = Callable[[str], None]


class TakeRunner:
    def __init__(self, hub: ControlHub | None = None, log: Log = say, report: Log | None = None,
                 spare_clock: SpareClock | None = None):
        """``spare_clock``: a clock process the caller started early, for the first take."""
        self.hub = hub or ControlHub()
        self.spare_clock = spare_clock
        self.log = log  # what a take says as it goes
        self.report = report or log  # what the performer must see: a tempo that could not be followed
        self.engine: Engine | None = None
        self.spec: TakeSpec | None = None
        self.sources: list = []  # the control sources steering the take
        self.inputs: PlayerInputs | None = None  # a player's MIDI in
        self.script: ScriptControls | None = None  # a script switched on during the take
        self.follow: TempoFollow | None = None
        self.beats = None  # the open BeatSource, kept from take to take while the choice stays
        self.beats_for = "internal"  # the tempo source ``beats`` was opened for
        self.listeners: list = []  # attached to every take's engine (OSC out's note feed)
        self.osc: OscServer | None = None  # the OSC listener open beside the takes (perform --osc), if any
        self.osc_inputs: OscInputs | None = None  # the take's mapping of OSC inputs, playing through a listener
        self.play_requested = threading.Event()
        self.stop_requested = threading.Event()
        self._models: dict[str, object] = {}
        self._starting: Engine | None = None  # the take whose clock process is starting
        self.on_action: Callable[[str], None] | None = None  # the panel's own play, record and presets
        self.current_preset: str | None = None  # the preset a learned next/previous stepped to

    # --- one take ---------------------------------------------------------------------------

    def model(self, name: str):
        """A model by name or path, loaded once and kept for the next takes."""
        if name not in self._models:
            self._models[name] = load_model(name)
        return self._models[name]

    def start_take(self, spec: TakeSpec, song_position: int | None = None) -> Engine:
        """Everything the spec names is opened and checked first: a wrong port or file is a
        ``UserError`` before any note plays, and whatever was opened by then is closed again."""
        source = open_source(spec.controls, self.hub.controls, spec.preset)
        opened = [source]
        try:
            if spec.emg:  # the armband first when starting: a bad port fails before anything plays
                opened.insert(0, EmgControls.from_spec(spec.emg, source.initial(), spec.preset))
            if source.name != "replay":  # a replay plays its recorded controls, nothing else
                self.osc_inputs = OscInputs.open(spec.preset, self.osc, self, self.log)
            engine, spec = self._open_engine(spec, source, song_position)
            inputs = self._player_inputs(spec, engine)
            self._start(engine, spec, source, opened)
            if inputs is not None:
                self.inputs = inputs.start(engine)
        except BaseException:
            if self.engine is not None:
                self.end_take()
            for opened_source in opened:
                opened_source.stop()
            self._close_osc_inputs()
            raise
        self._follow_tempo(spec, engine)
        return engine

    def _player_inputs(self, spec: TakeSpec, engine: Engine) -> PlayerInputs | None:
        """The player's input ports, matched now: a name that matches nothing is an error before a note."""
        learned = LearnedBindings(spec.midi_learn, self.hub, self.act) if spec.midi_learn else None
        if not spec.midi_in and (learned is None or not learned.ports):
            if learned is not None:
                self.log("warning: the preset's MIDI-learn bindings name no port and no --midi-in is given: "
                         "nothing to listen to")
            return None
        api = engine.output.api if engine.output.api in ports.APIS else clock_api(spec.output.api, "--midi-in")
        accompany = spec.respond is not None and spec.respond.mode == "accompany"
        return PlayerInputs(api, spec.midi_in, self.hub, accompany=accompany, report=self.report, learned=learned)

    def _open_engine(self, spec: TakeSpec, source, song_position: int | None) -> tuple[Engine, TakeSpec]:
        """The take's model, ports and layers, checked, as an engine not yet started."""
        replay = source.name == "replay"
        if replay:
            spec = self._replay_spec(spec, source)
        model = self.model(spec.model)
        check_external_z(model, spec)
        output = choose_output(spec.output, spec.record, self.log)
        layers = build_layers(spec, output, model, self.model, self.log)
        if replay:
            for what in source.mismatches(seed=spec.settings.seed, model=model.name, bpm=spec.settings.bpm,
                                          temperature=spec.settings.temperature,
                                          layers=[layer.describe() for layer in layers]):
                self.log(f"warning: the take was recorded with {what}: the notes will differ")
            if source.header.get("from"):
                self.log(f"warning: the take was recorded from {source.header['from']:g} s into a performance; "
                         "its controls replay on a model started afresh: the notes will differ")
        clock_out = clock_port(spec.output.api, spec.clock_out) if spec.clock_out else None
        if spec.record:
            _make_folder(spec.record)
        player = bool(spec.midi_in) or bool(replay and source.player_rows)
        engine = Engine(model, output, spec.settings, source.initial(), record=spec.record, log=self.log,
                        end=spec.duration, clock_out=clock_out, layers=layers, song_position=song_position,
                        respond=spec.respond, player_track=player, thru=spec.thru)
        engine.listeners += self.listeners
        return engine, spec

    def _start(self, engine: Engine, spec: TakeSpec, source, sources: list) -> None:
        """Start the engine, then the sources into the hub (a replay straight into the engine:
        note for note, nothing else steers it)."""
        initial, replay = engine.initial, source.name == "replay"
        self.play_requested.clear()
        self.stop_requested.clear()
        if not replay:
            self.hub.attach(None, initial)  # a hand moving while the clock process starts moves from here
        self._starting = engine  # OSC says "playing" from here: the take is on its way
        engine.spare_clock, self.spare_clock = self.spare_clock, None  # the first take's, if there is one
        try:
            engine.start()
        finally:
            self._starting = None
        self.engine, self.spec, self.sources = engine, spec, sources
        if replay:
            source.play_player(engine.hear)
            source.start(engine.set_controls, engine.now)
            return
        self.hub.attach(engine)
        if self.hub.controls != initial:
            engine.set_controls(self.hub.controls)
        self.hub.on_preset = self.preset
        for s in sources:
            if getattr(s, "learned", None) is not None:
                s.learned.sink = self.hub.learned
            sink = self.hub.sink_for(s)
            if sink is not None:
                s.start(sink, engine.now)
        if self.osc_inputs is not None:
            self.osc_inputs.play(self.hub.learned)

    def end_take(self) -> EngineStats | None:
        """Stop the playing take (its sources, tempo following, then the engine); its stats."""
        engine, self.engine = self.engine, None
        if self.inputs is not None:
            self.inputs.stop()
            self.inputs = None
        self.hub.attach(None)
        self.use_script(None)
        for source in self.sources:
            source.stop()
        self.sources = []
        self._close_osc_inputs()
        if self.follow is not None:
            self.follow.stop()
            self.follow = None
        return engine.stop() if engine is not None else None

    def _close_osc_inputs(self) -> None:
        if self.osc_inputs is not None:
            self.osc_inputs.close()
            self.osc_inputs = None

    def start_recording(self, path: str) -> None:
        """Record the playing take from now on into ``path`` (and its session), without stopping it."""
        engine = self.engine
        if engine is None or not engine.running:
            raise UserError("nothing is playing to record: press Play first")
        _make_folder(path)
        engine.start_recording(path)

    def stop_recording(self) -> str | None:
        """Close the playing take's recording; the music goes on. The file, or None."""
        return self.engine.stop_recording() if self.engine is not None else None

    def use_script(self, path: str | None) -> None:
        """Steer the playing take from a control script, from its first line on (None: stop it)."""
        if self.script is not None:
            self.script.stop()
            self.script = None
        engine = self.engine
        if path and engine is not None and engine.running:
            offset = max(0.0, engine.now())
            script = ScriptControls(path, self.hub.controls)
            sink = self.hub.script(offset)
            sink(script.initial(), 0.0)  # its lines at t = 0
            script.start(sink, lambda: engine.now() - offset)
            self.script = script

    def open_beats(self, tempo_source: str, bpm: float, api: str = "auto") -> None:
        """Open the outside beat ``tempo_source`` names, closing one open for another choice
        ("internal": none); a port or Link session that cannot open is a ``UserError``."""
        if tempo_source == self.beats_for:
            return
        if self.beats is not None:
            self.beats.close()
        self.beats, self.beats_for = None, "internal"
        self.beats = beat_source(tempo_source, api, bpm)
        self.beats_for = tempo_source

    def close(self) -> None:
        """End the take and leave the outside beat (a clock port, a Link session); a spare clock
        no take used ends too."""
        self.end_take()
        self.open_beats("internal", 0.0)
        if self.spare_clock is not None:
            self.spare_clock.close()
            self.spare_clock = None

    def _follow_tempo(self, spec: TakeSpec, engine: Engine) -> None:
        """Lock the take to the spec's outside beat; one that cannot open is reported and the take
        plays on at its own tempo (the music must not stop for a missing clock)."""
        try:
            self.open_beats(spec.tempo_source, spec.settings.bpm, spec.output.api)
        except UserError as exc:
            self.report(f"Tempo: {exc}; playing at {spec.settings.bpm:g} bpm")
            return
        if self.beats is not None:
            replay = spec.controls.startswith("replay:")  # a replayed take's tempo is in its controls
            steer = engine.set_tempo if replay else self.hub.tempo
            if isinstance(self.beats, PlayerPulse) and self.inputs is not None and not replay:
                self.inputs.pulse = self.beats  # the player's onsets are its beat
            self.follow = TempoFollow(engine, self.beats, log=self.log, steer=steer).start()

    @staticmethod
    def _replay_spec(spec: TakeSpec, source) -> TakeSpec:
        """A replay ends where the take ended, keeps the take's timing, and never records over the
        session it plays."""
        if spec.record and session_path(spec.record).resolve() == Path(source.path).resolve():
            raise UserError(f"--record {spec.record} would overwrite the take being replayed: record to another name")
        timing = source.header.get("timing", spec.settings.timing)  # played as recorded: grid or free
        spec = dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, timing=timing,
                                                                        **played_with(source.header)))
        recorded = source.header.get("respond")
        if spec.respond is None and isinstance(recorded, dict):  # the recorded player is answered again
            try:
                spec = dataclasses.replace(spec, respond=RespondSettings(**recorded))
            except TypeError:
                raise UserError(f"session {source.path}: header key respond is not a respond setting") from None
        if spec.duration is None and source.end is not None:
            return dataclasses.replace(spec, duration=source.end)
        return spec

    # --- a performance: takes until stopped -----------------------------------------------

    def perform(self, spec: TakeSpec, interrupted: Callable[[], bool], takes_on_play: bool = False,
                companion=None) -> bool:
        """Play ``spec`` until its duration, ``interrupted()``, a failure or OSC's /stop; with
        ``takes_on_play``, OSC's /play then starts the next take. ``companion(engine, record)``
        makes something that runs beside each take (``poll()`` often, ``stop()`` at its end).
        True when a take failed."""
        for take in recover_unfinished():
            self.log(f"recovered the unfinished take {take['path']} ({take['notes']} notes, {take['seconds']:.1f} s)")
        number, song_position = 1, None  # a follow-up take's clock goes on with the song
        while True:
            take = spec.numbered(number)
            engine = self.start_take(take, song_position)
            take = self.spec
            self.log(f"performing on {engine.player_info.get('port', '(no port)')}"
                     + (f", recording to {take.record}" if take.record else "")
                     + (f" for {take.duration:g} s" if take.duration else "; Ctrl-C to stop"))
            beside = companion(engine, take.record) if companion is not None else None
            try:
                while not interrupted() and engine.running and not self.stop_requested.is_set():
                    if take.duration is not None and engine.now() >= take.duration + 0.02:
                        break
                    if beside is not None:
                        beside.poll()
                    time.sleep(0.05)
            finally:
                stats = self.end_take()
                if beside is not None:
                    beside.stop()
            self.log(summary(stats, take.record))
            if take.clock_out:
                song_position = next_bar_position(song_position or 0, stats.clock_ticks)
            if engine.failed or interrupted() or not takes_on_play or not self.stop_requested.is_set():
                return bool(engine.failed)
            self.log("stopped; OSC /livegen/play starts the next take, Ctrl-C quits")
            while not interrupted() and not self.play_requested.wait(0.05):
                pass
            if interrupted():
                return False
            number += 1

    # --- the Performance OSC steers ---------------------------------------------------------

    def controls(self) -> Controls:
        return self.hub.controls

    def steer(self, controls: Controls) -> None:
        self.hub.remote(controls)

    def playing(self) -> bool:
        engine = self.engine or self._starting
        return engine is not None and engine.running and not self.stop_requested.is_set()

    def play(self) -> None:
        if not self.playing():
            self.play_requested.set()

    def stop(self) -> None:
        self.stop_requested.set()

    def panic(self) -> None:
        engine = self.engine
        if engine is not None and engine.running:
            engine.panic()

    def act(self, action: str) -> None:
        """A learned binding's action (``midi.bindings.ACTIONS``), on the input port's thread: the
        panel's when it takes them, else the take's own (presets stepped through ``presets.names()``)."""
        if self.on_action is not None:
            self.on_action(action)
            return
        try:
            self._act(action)
        except UserError as exc:  # a preset that will not load, a recording that cannot start: said, played on
            self.report(f"MIDI-learn {action}: {exc}")

    def _act(self, action: str) -> None:
        if action == "play":
            self.stop() if self.playing() else self.play()
        elif action == "panic":
            self.panic()
        elif action == "record":
            engine = self.engine
            if engine is not None and engine.record:
                self.log(f"recorded {self.stop_recording()}")
            elif engine is not None and engine.running:
                path = str(paths.takes_dir() / f"take-{datetime.now():%Y%m%d-%H%M%S}.mid")
                self.start_recording(path)
                self.log(f"recording to {path}")
        elif action in ("next_preset", "previous_preset"):
            names = presets.names()
            current = self.current_preset or (self.spec.preset if self.spec is not None else None) or "default"
            at = names.index(current) if current in names else -1 if action == "next_preset" else 0
            self.current_preset = names[(at + (1 if action == "next_preset" else -1)) % len(names)]
            self.preset(self.current_preset)

    def preset(self, name: str) -> None:
        """A preset's controls now (its pitch, density and key), and its program if it names one."""
        preset = presets.load(name)
        c = preset.controls
        try:
            histogram = tuple(key_histogram(c.key)) if c.key else None
        except ValueError as exc:
            raise UserError(f"preset {name}: {exc}") from None
        self.hub.gesture(Controls(pitch=c.pitch, density=c.density))
        self.hub.set_histogram(histogram)
        engine = self.engine
        if preset.output.program >= 0 and engine is not None and engine.running:
            engine.send_now([[0xC0 | engine.settings.channel, preset.output.program]])
        self.log(f"osc: preset {name}")


class OscInputs:
    """A preset's mapping of ``osc:/ADDRESS`` inputs, fed by an OSC listener's thread: the one open
    beside the takes, else one this take opens on the preset's ``gui.osc_port`` (and closes)."""

    def __init__(self, mapping, server: OscServer, opened: bool):
        self.learned = LearnedControls(mapping)
        self.server, self.opened = server, opened

    @classmethod
    def open(cls, preset: str | None, server: OscServer | None, performance, log: Log) -> "OscInputs | None":
        """None when the preset's mapping (if any) reads no OSC; a port that cannot be listened on
        is a ``UserError``."""
        loaded = presets.load(preset)
        mapping = preset_mapping(loaded.learn.mapping, "osc")
        if mapping is None:
            return None
        if server is not None:
            return cls(mapping, server, False)
        gui = loaded.gui
        if not gui.osc_port:
            raise UserError(f"mapping {loaded.learn.mapping} reads OSC ({', '.join(mapping.inputs)}): listen with "
                            "--osc PORT, or set gui.osc_port in the preset")
        server = OscServer(performance, gui.osc_port, gui.osc_host, log=log).start()
        log("OSC on {}:{} for the learned mapping's inputs".format(*server.address))
        return cls(mapping, server, True)

    def play(self, sink) -> None:
        """Values at the mapping's addresses steer ``sink`` (``ControlHub.learned``) from now on."""
        self.learned.sink = sink
        self.server.learned = self.learned

    def close(self) -> None:
        if self.server.learned is self.learned:
            self.server.learned = None
        if self.opened:
            self.server.close()


def summary(stats: EngineStats, record: str | None) -> str:
    """One line on how a take went: messages, timing, control latency, what the guard did."""
    t = _percentiles(stats.timing_error)
    c = _percentiles(stats.control_to_midi)
    text = f"sent {stats.sent} messages"
    if t["p99"] is not None:
        text += f"; timing error p50 {t['p50']:.3f} ms, p99 {t['p99']:.3f} ms"
    k = _percentiles(stats.clock_timing)
    if k["p99"] is not None:
        text += f"; MIDI clock error p50 {k['p50']:.3f} ms, p99 {k['p99']:.3f} ms"
    if c["p99"] is not None:
        text += f"; control->MIDI p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms over {len(stats.control_to_midi)} changes"
    h = _percentiles(stats.thru_delay)
    if h["p99"] is not None:
        text += f"; thru p50 {h['p50']:.1f} ms, p99 {h['p99']:.1f} ms over {len(stats.thru_delay)} messages"
    guarded = [f"{n} {what}" for n, what in ((stats.late_dropped, "late notes left out"),
                                             (stats.retriggers, "re-struck keys ended first"),
                                             (stats.expired, "notes ended at the length limit"),
                                             (stats.clock_restarts, "clock restarts")) if n]
    if guarded:
        text += "; " + ", ".join(guarded)
    if record:
        text += f"; recorded {record}"
    return text


def _percentiles(values, scale=1000.0) -> dict:
    if not len(values):
        return {"p50": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=np.float64) * scale
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _make_folder(record: str) -> None:
    """The recording's folder, made when missing; one line when it cannot be."""
    folder = Path(record).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the folder {folder} for --record: {exc.strerror or exc}") from None

