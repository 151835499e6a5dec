"""A take's wishes made real: the MIDI port its notes go to, its layers' ports and models, the
MIDI clock's port and the outside beat it follows. Explicit names that match nothing are errors,
said before anything starts."""
from __future__ import annotations

from typing import Callable

from livegen.engine.engine import Layer, OutputChoice
from livegen.engine.layers import free_channels
from livegen.errors import UserError
from livegen.midi import fluidsynth, ports
from livegen.midi.clock import ClockIn
from livegen.midi.link import AbletonLink
from livegen.music.phrase import PlayerPulse
from livegen.take.spec import OutputWish, TakeSpec


def choose_output(wish: OutputWish, record: str | None, log: Callable[[str], None]) -> OutputChoice:
    """Which API and port to play on; with no MIDI system, whether the take is kept at all is said."""
    if wish.no_port:
        return OutputChoice()
    if wish.api == "fluidsynth":
        return builtin_synth(wish.soundfont, wish.port, wish.virtual)
    api = ports.resolve_api(wish.api)
    if api is None:
        if wish.port or wish.virtual:
            raise UserError("no MIDI system here (no ALSA sequencer, no JACK server) to open "
                            f"{wish.port or wish.virtual!r} on: start one, or use --no-port to only record")
        if record:
            log("no MIDI system here (no ALSA sequencer, no JACK server): playing into the recording only")
        else:
            log("warning: no MIDI system here (no ALSA sequencer, no JACK server) and no --record: nothing is "
                "heard or recorded; give --record FILE or start a MIDI system")
        return OutputChoice()
    if wish.virtual:
        return OutputChoice(api, wish.virtual, virtual=True)
    outputs = ports.list_ports(api)["outputs"]
    if wish.port:
        return OutputChoice(api, ports.match_port(wish.port, outputs))
    real = [p for p in outputs if "through" not in p.lower() and "livegen" not in p.lower()]
    if real:
        log(f"playing on {real[0]!r} ({api}); choose another with --port")
        return OutputChoice(api, real[0])
    log(f"no MIDI outputs on {api}: created the virtual port 'livegen' for a synth or DAW to connect to")
    return OutputChoice(api, "livegen", virtual=True)


def builtin_synth(soundfont: str | None, wanted_port: str | None, virtual: str | None) -> OutputChoice:
    """The built-in synth, whose one port is "fluidsynth"; checked here so a missing library or
    SoundFont is a one-line error before anything starts."""
    if virtual:
        raise UserError("--virtual makes a MIDI port for other programs; the built-in synth (--api fluidsynth) "
                        "plays itself: leave one of them out")
    if wanted_port and wanted_port != "fluidsynth":
        raise UserError(f"the built-in synth has one output, 'fluidsynth', not {wanted_port!r}: "
                        "leave --port out or use --api jack/alsa for other ports")
    fluidsynth.load_library()
    return OutputChoice("fluidsynth", "fluidsynth", soundfont=fluidsynth.soundfont_path(soundfont))


def build_layers(spec: TakeSpec, main_output: OutputChoice, main_model, load_model,
                 log: Callable[[str], None]) -> list[Layer]:
    """The spec's layers beside the main one, each on its own channel (and port, if it names one)."""
    used = [spec.settings.channel + 1] + [layer.channel for layer in spec.layers if layer.channel is not None]
    spare = iter(free_channels(used))
    layers, placed = [], {(main_output.port, spec.settings.channel + 1): "the main layer"}
    for number, layer in enumerate(spec.layers, start=2):
        output = main_output
        if layer.port == "fluidsynth":
            output = builtin_synth(spec.output.soundfont, "fluidsynth", None)
        elif layer.port is not None:
            api = main_output.api if main_output.api in ports.APIS else clock_api(spec.output.api, "--layer port=")
            output = OutputChoice(api, ports.match_port(layer.port, ports.list_ports(api)["outputs"]))
        channel = layer.channel if layer.channel is not None else next(spare, None)
        if channel is None:
            raise UserError("every MIDI channel is taken: give the layers channel=N")
        where = (output.port, channel)
        if where in placed:
            raise UserError(f"layer {number} would play channel {channel} on {output.port or 'the recording'} "
                            f"with {placed[where]}: give it another channel=")
        placed[where] = f"layer {number}"
        model = load_model(layer.model)
        check_external_z(model, spec, f"layer {number}: ")
        layers.append(Layer(model, output, channel - 1, layer.program, layer.volume, layer.temperature))
        log(f"layer {number}: {model.kind} on channel {channel}" + (f" of {output.port}" if output.port else ""))
    if spec.emg and all(m.kind != "dcrnn" for m in [main_model, *(x.model for x in layers)]):
        log(f"warning: --emg plays the DCRNN's z; the {main_model.kind} does not hear it "
            "(use --model dcrnn or --layer dcrnn)")
    return layers


def check_external_z(model, spec: TakeSpec, where: str = "") -> None:
    """The preset's ``engine.external_z`` must name dims the DCRNN has."""
    wanted = max(spec.settings.external_z, default=-1)
    if model.kind == "dcrnn" and wanted >= model.config.z_dim:
        raise UserError(f"{where}preset key engine.external_z names dim {wanted}, but this DCRNN's z "
                        f"has dims 0..{model.config.z_dim - 1}")


def clock_api(api: str, flag: str) -> str:
    """The MIDI system MIDI clock travels on: the one in use (auto when that is the built-in synth)."""
    resolved = ports.resolve_api(api if api in ports.APIS else "auto")
    if resolved is None:
        raise UserError(f"{flag} needs a MIDI system (ALSA or a JACK server) for the MIDI clock")
    return resolved


def clock_port(api: str, wanted: str) -> tuple[str, str]:
    """(api, exact port) for the MIDI clock out."""
    resolved = clock_api(api, "--clock-out")
    return resolved, ports.match_port(wanted, ports.list_ports(resolved)["outputs"])


def beat_source(tempo_source: str, api: str, bpm: float):
    """The outside tempo ``tempo_source`` names (clock:PORT, a MIDI clock in; link, an Ableton
    Link session; player, the onsets the take's MIDI inputs hear), opened; None for internal."""
    kind, _, port = tempo_source.partition(":")
    if kind == "clock":
        return ClockIn(clock_api(api, "--clock-in"), port)
    if kind == "link":
        return AbletonLink(bpm)
    if kind == "player":
        return PlayerPulse(bpm)
    return None
