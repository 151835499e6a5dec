"""What a take is made of, resolved from a preset and the overrides a caller gives.

``OVERRIDES`` is the one table of what may override a preset: the command line passes its flags
under these names, the panel its own choices. Every value is checked here, so a wrong one is one
line naming the flag before anything starts.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from livegen.engine.engine import EngineSettings
from livegen.engine.layers import LayerSpec, parse_layer
from livegen.engine.respond import RespondSettings
from livegen.errors import UserError
from livegen.messages import say
from livegen.music.conditioning import Controls, clamp_control, in_range, key_histogram, range_text
from livegen.midi.bindings import Binding
from livegen.presets import RESPOND_MODES, Preset, check_respond

# name -> accepted types; a value of another type is an error naming the override
OVERRIDES: dict[str, tuple[type, ...]] = {
    "preset": (str,),  # the preset's name, for sources that read their own section (camera, emg)
    "model": (str,), "seed": (int,), "temperature": (int, float), "lookahead": (int, float),
    "steering": (bool,), "bpm": (int, float),
    "api": (str,), "port": (str,), "virtual": (str,), "no_port": (bool,), "soundfont": (str,),
    "channel": (int,), "program": (int,), "volume": (int,), "layers": (list, tuple),
    "controls": (str,), "emg": (str,), "pitch": (int, float), "density": (int, float), "key": (str,),
    "record": (str,), "duration": (int, float),
    "clock_out": (str,), "clock_in": (str,), "link": (bool,), "follow_player": (bool,),
    "midi_in": (list, tuple), "thru": (bool,), "respond": (str,), "answer_after": (int, float),
    "answer_bars": (int, float), "trigger_cc": (int,),
}


@dataclass(frozen=True)
class OutputWish:
    """Where the notes should go, before any port is opened (``choose_output`` opens it)."""

    api: str = "auto"  # auto | alsa | jack | fluidsynth
    port: str | None = None  # None: the first real output, else a virtual "livegen" port
    virtual: str | None = None  # a virtual port to create instead
    soundfont: str | None = None  # the built-in synth's SoundFont (None: its default)
    no_port: bool = False  # no MIDI output at all: the take only records


@dataclass(frozen=True)
class TakeSpec:
    model: str  # charrnn, dcrnn or a checkpoint path
    settings: EngineSettings
    output: OutputWish
    initial: Controls  # the controls at time 0, before the control source's own first values
    controls: str = "fixed"  # the control source: fixed | script:FILE | replay:FILE | camera | emg[:DEVICE]
    emg: str | None = None  # an armband playing z beside the control source
    layers: tuple[LayerSpec, ...] = ()
    record: str | None = None
    duration: float | None = None  # seconds, then the take ends (None: until stopped)
    clock_out: str | None = None  # a port to send MIDI clock to
    tempo_source: str = "internal"  # internal | clock:PORT | link
    preset: str | None = None  # the preset's name (None: the default)
    midi_in: tuple[str, ...] = ()  # a player's MIDI input ports
    thru: bool = False  # their messages sent on to the output
    respond: RespondSettings | None = None  # how the music responds to them (None: it plays on its own)
    midi_learn: tuple[Binding, ...] = ()  # a controller's messages bound to controls and actions

    @classmethod
    def from_preset(cls, preset: Preset, overrides: Mapping[str, object] | None = None,
                    warn: Callable[[str], None] | None = None) -> "TakeSpec":
        """The take ``preset`` describes, with ``overrides`` (keys from ``OVERRIDES``; None values
        are left out) in its place; out-of-range pitch and density are clamped with a ``warn``."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        for key, value in given.items():
            if key not in OVERRIDES:
                raise UserError(f"unknown take setting {key!r}: one of {', '.join(OVERRIDES)}")
            if not isinstance(value, OVERRIDES[key]) or (isinstance(value, bool) and bool not in OVERRIDES[key]):
                raise UserError(f"{_flag(key)} must be {' or '.join(t.__name__ for t in OVERRIDES[key])}, "
                                f"not {type(value).__name__}")
        o = given.get
        duration = o("duration")
        if duration is not None and not 0 < duration < math.inf:
            raise UserError("--duration must be a positive number of seconds")
        lookahead = o("lookahead", preset.engine.lookahead)
        if not 0.02 <= lookahead <= 5.0:
            raise UserError("--lookahead must be 0.02..5 seconds")
        temperature = o("temperature", preset.model.temperature)
        if not 0.05 <= temperature <= 5.0:
            raise UserError("--temperature must be 0.05..5 (1 samples as trained; lower is safer, higher wilder)")
        channel, program = o("channel", preset.output.channel), o("program", preset.output.program)
        if not 1 <= channel <= 16 or not -1 <= program <= 127:
            raise UserError("--channel is 1..16 and --program 0..127")
        bpm = o("bpm", preset.engine.bpm)
        if not (math.isfinite(bpm) and in_range("bpm", bpm)):
            raise UserError(f"--bpm must be in {range_text('bpm')}")
        volume = o("volume", None if preset.output.volume < 0 else preset.output.volume)
        if volume is not None and not 0 <= volume <= 127:
            raise UserError("--volume is 0..127 (MIDI channel volume)")
        if o("clock_in") and o("link"):
            raise UserError("--clock-in and --link both set the tempo: choose one")
        settings = EngineSettings(
            lookahead=float(lookahead), temperature=float(temperature), seed=o("seed", preset.model.seed),
            channel=channel - 1, program=None if program < 0 else program,
            steering=o("steering", preset.engine.steering),
            max_note_seconds=preset.engine.max_note_seconds, max_polyphony=preset.engine.max_polyphony,
            bpm=float(bpm), external_z=tuple(preset.engine.external_z), volume=volume, timing=preset.engine.timing)
        output = OutputWish(api=o("api", preset.output.api), port=o("port", preset.output.port or None),
                            virtual=o("virtual", preset.output.virtual or None),
                            soundfont=o("soundfont", preset.output.soundfont or None), no_port=o("no_port", False))
        layers = tuple(parse_layer(x) if isinstance(x, str) else x for x in o("layers", ()))
        if not layers and "layers" not in given:
            layers = tuple(p.spec() for p in preset.layers)
        tempo_source = preset.engine.tempo_source
        if o("clock_in"):
            tempo_source = f"clock:{o('clock_in')}"
        elif o("link"):
            tempo_source = "link"
        elif o("follow_player"):
            tempo_source = "player"
        controls = o("controls", "fixed")
        if o("emg") and controls.partition(":")[0] == "replay":
            raise UserError("a replayed take already holds its z values: leave --emg out, or play the take "
                            "with --controls script:TAKE.jsonl")
        midi_in = tuple(preset.midi_in.ports) + tuple(o("midi_in", ()))
        mode = o("respond", preset.midi_in.respond)
        if mode not in RESPOND_MODES:
            raise UserError(f"--respond {mode!r} is not one of {', '.join(RESPOND_MODES)}")
        trigger = o("trigger_cc", None if preset.midi_in.trigger_cc < 0 else preset.midi_in.trigger_cc)
        respond = RespondSettings(mode, float(o("answer_after", preset.midi_in.answer_after)),
                                  float(o("answer_bars", preset.midi_in.answer_bars)), trigger)
        check_respond(respond.answer_after, respond.answer_bars, respond.trigger_cc)
        if mode != "off" and not midi_in:
            raise UserError(f"--respond {mode} listens to a player: name their port with --midi-in NAME "
                            "(see `livegen ports`)")
        if tempo_source == "player" and not midi_in:
            raise UserError("following the player's tempo listens to a player: name their port with --midi-in "
                            "NAME (see `livegen ports`)")
        return cls(model=o("model", preset.model.model), settings=settings, output=output,
                   initial=_initial_controls(preset, given, warn or _warn), controls=controls, emg=o("emg"),
                   layers=layers, record=o("record"), duration=None if duration is None else float(duration),
                   clock_out=o("clock_out", preset.output.clock_out or None), tempo_source=tempo_source,
                   preset=o("preset"), midi_in=midi_in, thru=o("thru", preset.midi_in.thru),
                   respond=None if mode == "off" else respond, midi_learn=tuple(preset.midi_learn))

    def numbered(self, number: int) -> "TakeSpec":
        """The ``number``-th take of a performance (OSC's /play after /stop): take.mid, then
        take-2.mid, take-3.mid..."""
        if self.record is None or number == 1:
            return self
        path = Path(self.record)
        return dataclasses.replace(self, record=str(path.with_name(f"{path.stem}-{number}{path.suffix}")))


def _initial_controls(preset: Preset, given: dict, warn: Callable[[str], None]) -> Controls:
    """Pitch, density and the key's pitch classes: the preset's, overridden, clamped into range."""
    values = {"pitch": given.get("pitch", preset.controls.pitch),
              "density": given.get("density", preset.controls.density)}
    key = given.get("key", preset.controls.key)
    for name, value in values.items():
        inside = clamp_control(name, value)
        if inside != value:
            warn(f"{name} {value} is outside {range_text(name)}; clamped")
        values[name] = inside
    histogram = None
    if key:
        try:
            histogram = tuple(key_histogram(key))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return Controls(pitch=values["pitch"], density=values["density"], histogram=histogram)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _warn(text: str) -> None:
    say(f"warning: {text}")
