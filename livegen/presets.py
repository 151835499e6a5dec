"""Presets are data: TOML files, checked strictly.

The shipped presets live inside the package (``livegen/shipped_presets/``, installed with it);
the user's in ``paths.presets_dir()``, where the panel saves. An unknown section or key, or a
value of the wrong type, is an error naming the key, so a typo never silently falls back to a
default on stage. Command-line flags override a preset. A preset is UTF-8 text of at most
256 KiB, nested at most 8 deep, and every number in it is finite. Saving over a preset keeps its
comments and layout; a new one starts from the shipped default's, comments and all.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from livegen import paths
from livegen.checks import check_finite, check_nesting, parse_target, too_deep
from livegen.engine.layers import LayerSpec, check_layer
from livegen.errors import UserError
from livegen.midi.bindings import Binding, check_binding
from livegen.music.conditioning import in_range, range_text
from livegen.vision import TRACKER_NAMES

SHIPPED_PRESETS = Path(__file__).resolve().parent / "shipped_presets"
DEFAULT = SHIPPED_PRESETS / "default.toml"
MAX_BYTES = 256 * 1024  # the shipped presets are under 4 KiB
MAX_NAME = 64
VIEWS = ("full", "performance")  # the panel's views; booth mode shows only the performance one
NAME_PUNCTUATION = " _-.+"


@dataclass
class ModelPreset:
    model: str = "charrnn"  # "charrnn" (the shipped default), "expressive", "dcrnn" or a checkpoint path
    temperature: float = 1.0
    seed: int = 0  # the same seed and gestures play the same notes (perform's --seed overrides)

    def __post_init__(self):
        if not 0.05 <= self.temperature <= 5.0:
            raise UserError("preset key model.temperature must be in 0.05..5")
        if not 0 <= self.seed < 2**31:
            raise UserError("preset key model.seed must be in 0..2147483647")


@dataclass
class OutputPreset:
    api: str = "auto"  # auto | alsa | jack
    port: str = ""  # "" = the first output, or a virtual port when there is none
    virtual: str = ""  # name of a virtual output port to create instead
    channel: int = 1  # 1..16
    program: int = -1  # General MIDI program 0..127; -1 leaves the synth's own
    volume: int = -1  # channel volume (CC 7) 0..127; -1 leaves the synth's own
    soundfont: str = ""  # the built-in synth's SoundFont (.sf2); "" = its default (--soundfont overrides)
    clock_out: str = ""  # MIDI clock output port; "" = none (--clock-out overrides)


@dataclass
class EnginePreset:
    lookahead: float = 0.3
    steering: bool = True
    max_note_seconds: float = 4.0
    max_polyphony: int = 12
    bpm: float = 120.0  # tempo of the DCRNN's 16th-note grid
    external_z: list = field(default_factory=lambda: list(range(8)))  # DCRNN z dims the controls' "z" plays
    # internal (bpm) | clock:PORT (MIDI clock in) | link | player (the player's onsets on the take's MIDI in);
    # --clock-in, --link, --follow-player override
    tempo_source: str = "internal"
    timing: str = "grid"  # the Char-RNN's onsets: grid (the beat's 16ths) | free (its own expressive timing)

    def __post_init__(self):
        if self.timing not in ("grid", "free"):
            raise UserError(f"preset key engine.timing {self.timing!r} is not grid or free")
        if not 0.02 <= self.lookahead <= 5.0:
            raise UserError("preset key engine.lookahead must be 0.02..5 s")
        if not in_range("bpm", self.bpm):
            raise UserError(f"preset key engine.bpm must be in {range_text('bpm')}")
        if not self.max_note_seconds > 0 or not 1 <= self.max_polyphony <= 128:
            raise UserError("preset keys engine.max_note_seconds must be > 0 and engine.max_polyphony 1..128")
        z = self.external_z
        if not 1 <= len(z) <= 64 or not all(type(d) is int and d >= 0 for d in z) or len(set(z)) < len(z):
            raise UserError("preset key engine.external_z must list 1..64 distinct z dims (numbers >= 0)")
        kind, _, port = self.tempo_source.partition(":")
        if not (self.tempo_source in ("internal", "link", "player") or kind == "clock" and port.strip()):
            raise UserError(f"preset key engine.tempo_source {self.tempo_source!r} is not internal, clock:PORT, "
                            "link or player")


@dataclass
class ControlsPreset:
    pitch: float = 0.5
    density: float = 0.5
    key: str = ""  # e.g. "C major"; "" leaves the pitch classes to the model


@dataclass
class CameraPreset:
    """The hand tracker and how a hand maps to pitch and density (livegen.sensors.camera)."""

    tracker: str = "skin"  # color | motion | skin | mediapipe
    source: str = "0"  # camera index, video file or folder of images
    mirror: bool = True  # a camera facing the performer: their left is the image's right
    region: list = field(default_factory=lambda: [0.0, 0.0, 1.0, 1.0])  # region of play x0, y0, x1, y1 (0..1)
    dead_zone: float = 0.05  # half-width round the centre that reads as exactly neutral
    hsv_low: list = field(default_factory=lambda: [40, 80, 60])  # marker colour for tracker "color" (OpenCV HSV)
    hsv_high: list = field(default_factory=lambda: [80, 255, 255])
    min_cutoff: float = 1.0  # One Euro smoothing: cutoff (Hz) at rest
    beta: float = 3.0  # and how fast it rises with hand speed
    lost_hold: float = 1.0  # s the last value holds when the hand is lost
    lost_glide: float = 2.0  # s then to glide to neutral

    def __post_init__(self):
        def numbers(key, size, lo, hi, kind):
            v = getattr(self, key)
            if not (isinstance(v, list) and len(v) == size and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi for x in v)):
                raise UserError(f"preset key camera.{key} must be a list of {size} numbers in {lo}..{hi}")
            setattr(self, key, [kind(x) for x in v])

        numbers("region", 4, 0, 1, float)
        numbers("hsv_low", 3, 0, 255, int)
        numbers("hsv_high", 3, 0, 255, int)
        x0, y0, x1, y1 = self.region
        if not (x0 < x1 and y0 < y1):
            raise UserError("preset key camera.region must be x0, y0, x1, y1 with x0 < x1 and y0 < y1")
        if self.tracker not in TRACKER_NAMES:
            raise UserError(f"preset key camera.tracker {self.tracker!r} is not one of {', '.join(TRACKER_NAMES)}")
        if not 0 <= self.dead_zone < 0.5:
            raise UserError("preset key camera.dead_zone must be in 0..0.5")
        if self.min_cutoff <= 0 or min(self.beta, self.lost_hold, self.lost_glide) < 0:
            raise UserError("preset keys camera.min_cutoff must be > 0, and beta, lost_hold, lost_glide >= 0")


@dataclass
class GuiPreset:
    """The control panel (``livegen gui``): booth mode and the panel's own controls."""

    booth: bool = False  # full screen, controls locked, plays on launch, restarts a failed engine
    full_screen: bool = False  # full screen without the rest of booth mode
    view: str = "full"  # what the panel opens on: full (every control) | performance (read from the stage)
    unlock_key: str = "Ctrl+Shift+U"  # locks and unlocks the controls (Qt key sequence)
    idle_reset: float = 120.0  # s without a touch before booth mode returns to reset_preset; 0 = never
    reset_preset: str = "default"  # the preset booth mode returns to
    histogram: list = field(default_factory=list)  # the panel's 12 pitch-class sliders; [] = controls.key
    gesture_source: str = "pad"  # what steers pitch and density: pad | camera (the [camera] section) | script:PATH
    dcrnn_theme: str = "A"  # the DCRNN's seeded theme under the played z dims
    dcrnn_z: list = field(default_factory=list)  # the 8 z values drawn on the panel (-1..1); [] = none drawn
    commentary: bool = True  # the commentary writes sentences (false: its model is not even loaded)
    comment_every: int = 8  # bars between sentences; 0 = only on request
    comment_lcgan: bool = True  # sample the commentary through the LC-GAN (false: the CVAE's plain prior)
    osc_port: int = 0  # UDP port the panel takes OSC control on (as perform --osc); 0 = off
    osc_host: str = "127.0.0.1"  # address OSC listens on; 0.0.0.0 opens it to the network
    osc_out: str = ""  # HOST:PORT the live state goes to as OSC; "" = nowhere

    def __post_init__(self):
        def numbers(values, size, lowest):
            return len(values) == size and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and x >= lowest for x in values)

        if self.histogram and not numbers(self.histogram, 12, 0):
            raise UserError("preset key gui.histogram must be [] or 12 numbers >= 0 (C..B)")
        self.histogram = [float(x) for x in self.histogram]
        if self.dcrnn_z and not (numbers(self.dcrnn_z, 8, -1) and max(self.dcrnn_z) <= 1):
            raise UserError("preset key gui.dcrnn_z must be [] or 8 numbers in -1..1")
        self.dcrnn_z = [float(x) for x in self.dcrnn_z]
        if self.idle_reset < 0:
            raise UserError("preset key gui.idle_reset must be >= 0 seconds (0 = never)")
        kind, _, path = self.gesture_source.partition(":")
        if not (self.gesture_source in ("pad", "camera") or kind == "script" and path.strip()):
            raise UserError(f"preset key gui.gesture_source {self.gesture_source!r} is not pad, camera or "
                            "script:PATH")
        if self.view not in VIEWS:
            raise UserError(f"preset key gui.view {self.view!r} is not one of {', '.join(VIEWS)}")
        if not 1 <= len(self.dcrnn_theme) <= 32:
            raise UserError("preset key gui.dcrnn_theme must be a theme name of 1..32 characters, like \"A\"")
        if not 0 <= self.comment_every <= 64:
            raise UserError("preset key gui.comment_every must be 0..64 bars (0 = only on request)")
        if not 0 <= self.osc_port <= 65535 or not self.osc_host.strip():
            raise UserError("preset keys gui.osc_port must be 0 (off) or a UDP port 1..65535 and gui.osc_host "
                            "an address")
        if self.osc_out:
            try:
                parse_target(self.osc_out)
            except UserError:
                raise UserError(f"preset key gui.osc_out {self.osc_out!r} is not HOST:PORT, "
                                "e.g. 127.0.0.1:9001") from None


@dataclass
class EmgPreset:
    """The EMG armband (livegen.sensors.emg): where muscle samples come from and how they play z."""

    source: str = "myo"  # myo[:ADDRESS] | bled112[:PORT] | serial:PORT,BAUD,csv | cyton:PORT | replay:FILE
    user: str = "default"  # calibration profile: USER.toml in emg_profiles (`livegen paths`; `livegen calibrate emg`)
    z: list = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])  # z dim i <- channel z[i] (1..8; 0 = none)
    envelope: str = "rms"  # rms (moving window) | ema (exponential average of |x|)
    window: float = 0.075  # s of envelope
    smoothing: float = 0.05  # s time constant after calibration; 0 = none
    publish_step: float = 0.04  # smaller z changes are not sent: a still arm must not keep the engine regenerating
    lost_hold: float = 0.5  # s z holds when the armband stops sending
    lost_glide: float = 1.5  # s then to glide to neutral (0)
    gestures: bool = True  # held gestures learned in calibration recall their theme
    gesture_hold: float = 0.3  # s a gesture must be held to recall its theme

    def __post_init__(self):
        if not self.source.strip():
            raise UserError("preset key emg.source must name an armband, like \"myo\"")
        z = self.z
        if not (isinstance(z, list) and 1 <= len(z) <= 8 and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 8 for c in z)):
            raise UserError("preset key emg.z must list up to 8 channel numbers 1..8 (0 = dim not driven)")
        if self.envelope not in ("rms", "ema"):
            raise UserError(f"preset key emg.envelope {self.envelope!r} is not rms or ema")
        if not 0.01 <= self.window <= 1.0:
            raise UserError("preset key emg.window must be 0.01..1 s (50-100 ms is usual)")
        if not 0 <= self.smoothing <= 2.0 or not 0 <= self.publish_step < 1:
            raise UserError("preset keys emg.smoothing must be 0..2 s and emg.publish_step 0..1")
        if min(self.lost_hold, self.lost_glide, self.gesture_hold) < 0:
            raise UserError("preset keys emg.lost_hold, lost_glide and gesture_hold must be >= 0 s")


@dataclass
class LearnPreset:
    """A mapping learned by demonstration (``livegen learn fit``) the sensors play through."""

    mapping: str = ""  # MAP.toml path; "" = none. With one, the armband plays through it alone

    def __post_init__(self):
        if self.mapping and not self.mapping.strip():
            raise UserError("preset key learn.mapping must name a MAP.toml file, or be \"\" for none")


@dataclass
class LayerPreset:
    """A ``[[layers]]`` table: one more model playing beside the main one (as ``perform --layer``)."""

    model: str = "dcrnn"  # charrnn | dcrnn | a checkpoint path
    channel: int = 0  # 1..16; 0 = the next free one (never 10, the drums)
    program: int = -1  # -1 leaves the synth's own
    volume: int = -1  # channel volume 0..127; -1 leaves the synth's own
    temperature: float = 0.0  # 0 = the model section's
    port: str = ""  # "" = the main output

    def __post_init__(self):
        if self.channel < 0 or self.program < -1 or self.volume < -1 or self.temperature < 0:
            raise UserError("preset keys layers.channel, program, volume, temperature: 0 (channel, temperature) "
                            "or -1 (program, volume) leave them to livegen; lower is not a value")
        check_layer(self.spec(), "preset key layers.")

    @classmethod
    def from_session(cls, entry: dict) -> "LayerPreset":
        """A layer as a session's header recorded it, to replay on the panel's output."""
        def given(key, unset):
            return unset if entry.get(key) is None else entry[key]

        return cls(str(entry["model"]), int(entry["channel"]), given("program", -1), given("volume", -1),
                   float(given("temperature", 0.0)))

    def spec(self) -> LayerSpec:
        return LayerSpec(self.model, self.channel or None, None if self.program < 0 else self.program,
                         None if self.volume < 0 else self.volume, self.temperature or None, self.port or None)


RESPOND_MODES = ("off", "continue", "answer", "accompany")
RESPOND_RANGES = {"answer_after": (0.05, 10.0), "answer_bars": (0.25, 64.0)}  # seconds, bars


@dataclass
class MidiInPreset:
    """A player's MIDI in (``--midi-in``, ``--respond``): the ports listened to and how livegen responds."""

    ports: list = field(default_factory=list)  # input port names; [] = none (--midi-in adds to them)
    thru: bool = False  # send the player's messages on to the output
    respond: str = "off"  # off | continue | answer | accompany
    answer_after: float = 0.5  # s of silence that end the player's phrase
    answer_bars: float = 2.0  # bars an answer or continuation lasts
    trigger_cc: int = -1  # a pedal or CC (64: sustain) that ends the phrase at once; -1 = silence only

    def __post_init__(self):
        if not all(isinstance(p, str) and p for p in self.ports):
            raise UserError("preset key midi_in.ports must be a list of port names")
        if self.respond not in RESPOND_MODES:
            raise UserError(f"preset key midi_in.respond {self.respond!r} is not one of {', '.join(RESPOND_MODES)}")
        check_respond(self.answer_after, self.answer_bars, None if self.trigger_cc < 0 else self.trigger_cc,
                      "preset key midi_in.")


def check_respond(answer_after: float, answer_bars: float, trigger_cc: int | None, where: str = "--") -> None:
    """The respond settings' ranges, one line naming the key or flag."""
    low, high = RESPOND_RANGES["answer_after"]
    if not low <= answer_after <= high:
        raise UserError(f"{where}answer-after must be {low:g}..{high:g} seconds".replace("midi_in.answer-", "midi_in.answer_"))
    low, high = RESPOND_RANGES["answer_bars"]
    if not low <= answer_bars <= high:
        raise UserError(f"{where}answer-bars must be {low:g}..{high:g} bars".replace("midi_in.answer-", "midi_in.answer_"))
    if trigger_cc is not None and not 0 <= trigger_cc <= 127:
        raise UserError(f"{where}trigger-cc must be a controller number 0..127".replace("midi_in.trigger-",
                                                                                         "midi_in.trigger_"))


@dataclass
class Preset:
    model: ModelPreset = field(default_factory=ModelPreset)
    output: OutputPreset = field(default_factory=OutputPreset)
    engine: EnginePreset = field(default_factory=EnginePreset)
    controls: ControlsPreset = field(default_factory=ControlsPreset)
    camera: CameraPreset = field(default_factory=CameraPreset)
    gui: GuiPreset = field(default_factory=GuiPreset)
    emg: EmgPreset = field(default_factory=EmgPreset)
    midi_in: MidiInPreset = field(default_factory=MidiInPreset)
    learn: LearnPreset = field(default_factory=LearnPreset)
    layers: list = field(default_factory=list)  # LayerPreset tables, [[layers]] in TOML
    midi_learn: list = field(default_factory=list)  # Bindings, [[midi_learn]] in TOML


def _check(section: str, cls, values: dict):
    if not isinstance(values, dict):
        raise UserError(f"preset section [{section}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise UserError(f"preset key {section}.{key} is unknown (known: {', '.join(fields)})")
        want = type(getattr(cls(), key))
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise UserError(f"preset key {section}.{key} must be {want.__name__}, not {type(value).__name__}")
        out[key] = value
    return cls(**out)


def parse(text: str, origin: str = "preset") -> Preset:
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise too_deep(origin) from None
    except ValueError as exc:  # TOMLDecodeError, or an integer of thousands of digits
        raise UserError(f"{origin}: not valid TOML ({exc})") from None
    check_nesting(data, origin)
    check_finite(data, origin)
    sections = {f.name: f.type for f in dataclasses.fields(Preset)}
    kwargs = {}
    for name, values in data.items():
        if name not in sections:
            raise UserError(f"{origin}: unknown section [{name}] (known: {', '.join(sections)})")
        if name == "layers":
            if not isinstance(values, list):
                raise UserError(f"{origin}: layers must be [[layers]] tables, one per layer")
            kwargs[name] = [_check("layers", LayerPreset, table) for table in values]
            continue
        if name == "midi_learn":
            if not isinstance(values, list):
                raise UserError(f"{origin}: midi_learn must be [[midi_learn]] tables, one per binding")
            kwargs[name] = [check_binding(table, f"preset key midi_learn[{i}]") for i, table in enumerate(values)]
            continue
        cls = {"model": ModelPreset, "output": OutputPreset, "engine": EnginePreset, "controls": ControlsPreset,
               "camera": CameraPreset, "gui": GuiPreset, "emg": EmgPreset, "midi_in": MidiInPreset,
               "learn": LearnPreset}[name]
        kwargs[name] = _check(name, cls, values)
    preset = Preset(**kwargs)
    if not 1 <= preset.output.channel <= 16:
        raise UserError(f"{origin}: output.channel must be 1..16")
    if not -1 <= preset.output.program <= 127:
        raise UserError(f"{origin}: output.program must be -1..127")
    if not -1 <= preset.output.volume <= 127:
        raise UserError(f"{origin}: output.volume must be -1..127")
    return preset


def check_name(name: str) -> str:
    """``name`` when it is a preset's name (what a remote controller may send): never a path, and
    short enough for any file system; UserError otherwise."""
    if not (1 <= len(name) <= MAX_NAME and all(c.isalnum() or c in NAME_PUNCTUATION for c in name)
            and not name.startswith(".")):
        raise UserError(f"{name!r:.80} is not a preset name (1..{MAX_NAME} letters, digits, spaces and "
                        f"{' '.join(NAME_PUNCTUATION.strip())}, no path), like \"default\"")
    return name


def find(name: str) -> Path:
    """A preset by path, or by name in ./presets, the shipped ones or the user's (``paths.presets_dir()``)."""
    direct = Path(name)
    folders = (Path("presets"), SHIPPED_PRESETS, paths.presets_dir())
    try:
        if direct.suffix == ".toml" and direct.exists():
            if not direct.is_file():
                raise UserError(f"preset {name} is not a file")
            return direct
        found = next((c for c in (folder / f"{name}.toml" for folder in folders) if c.is_file()), None)
    except (OSError, ValueError) as exc:  # a name too long for the file system, or with a NUL
        reason = getattr(exc, "strerror", None) or exc
        raise UserError(f"preset {name!r:.80} cannot be looked up ({reason})") from None
    if found is None:
        raise UserError(f"preset {name!r} not found (looked for {name}.toml in ./presets, {SHIPPED_PRESETS} "
                        f"and {folders[2]})")
    return found


def names() -> list[str]:
    """Every preset ``find`` finds by name, sorted: what the panel's next / previous preset steps through."""
    found = set()
    for folder in (Path("presets"), SHIPPED_PRESETS, paths.presets_dir()):
        try:
            found.update(p.stem for p in folder.glob("*.toml") if p.is_file())
        except OSError:  # an unreadable folder holds nothing to step to
            continue
    return sorted(found, key=str.lower)


def _read(path: Path) -> Preset:
    """The preset in a file; one that is too big, not UTF-8 or unreadable is one clear line."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"preset {path} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"preset {path} is over {MAX_BYTES // 1024} KiB: not a preset")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"preset {path} is not UTF-8 text: not a preset") from None
    return parse(text, f"preset {path}")


def load(name: str | None) -> Preset:
    """A preset by name or path; None: the shipped default (which spells out the code's defaults,
    kept equal by a test)."""
    return _read(DEFAULT if name is None else find(name))


def dumps(preset: Preset, over: str | None = None) -> str:
    """TOML text of a preset (what `load` reads back), written over the TOML text ``over``: its
    comments and layout stay, its values become the preset's. None, or text that is not TOML:
    over the shipped default's."""
    import tomlkit  # 30-35 ms: only when a preset is saved, never to play one
    from tomlkit.exceptions import TOMLKitError  # loaded with tomlkit above

    try:
        document = tomlkit.parse(over if over is not None else DEFAULT.read_text(encoding="utf-8"))
    except (TOMLKitError, ValueError):  # a broken file is overwritten: its values cannot be kept anyway
        document = tomlkit.parse(DEFAULT.read_text(encoding="utf-8"))
    for section in dataclasses.fields(Preset):
        if section.name == "layers":
            document.pop("layers", None)
            if preset.layers:
                document["layers"] = tomlkit.aot()
                for layer in preset.layers:
                    document["layers"].append(tomlkit.item(dataclasses.asdict(layer)))
            continue
        if section.name == "midi_learn":
            document.pop("midi_learn", None)
            if preset.midi_learn:
                document["midi_learn"] = tomlkit.aot()
                for binding in preset.midi_learn:
                    document["midi_learn"].append(tomlkit.item(binding.as_table()))
            continue
        if not isinstance(document.get(section.name), dict):
            document[section.name] = tomlkit.table()
        table = document[section.name]
        written = table.unwrap()
        for key, value in dataclasses.asdict(getattr(preset, section.name)).items():
            if key not in written or written[key] != value or type(written[key]) is not type(value):
                table[key] = value  # the comment on the key's line stays
    return tomlkit.dumps(document)


def save(preset: Preset, path: str | os.PathLike) -> None:
    """Write ``preset`` to ``path``; over an existing preset, its comments and layout stay."""
    path = Path(path)
    try:
        existing = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):  # unreadable: replaced by a fresh one
        existing = None
    path.write_text(dumps(preset, existing), encoding="utf-8")


def user_file(name: str) -> Path:
    """The user's file for preset ``name``: where it is found (``./presets`` or the user's folder),
    else a new one in ``paths.presets_dir()`` (a shipped preset is never written over)."""
    try:
        found = find(name)
    except UserError:
        found = None
    if found is not None and found.parent != SHIPPED_PRESETS:
        return found
    folder = paths.presets_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the presets folder {folder}: {exc.strerror or exc}") from None
    return folder / f"{check_name(name)}.toml"


def add_binding(binding: Binding, path: str | os.PathLike) -> None:
    """Add a learned MIDI binding to the preset in ``path`` (made from the shipped preset of its
    name, else the default, when missing), replacing one that heard the same messages; the file's
    comments stay."""
    path = Path(path)
    shipped = SHIPPED_PRESETS / path.name
    origin = path if path.is_file() else shipped if shipped.is_file() else DEFAULT
    preset = _read(origin)
    same = (binding.source, binding.number, binding.channel, binding.port)
    preset.midi_learn = [b for b in preset.midi_learn if (b.source, b.number, b.channel, b.port) != same] + [binding]
    try:
        existing = origin.read_text(encoding="utf-8")
        path.write_text(dumps(preset, existing), encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot save the binding in {path}: {getattr(exc, 'strerror', None) or exc}") from None
