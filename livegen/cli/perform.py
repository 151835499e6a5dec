"""``livegen perform``: a headless performance, takes from a preset and flags through the take layer."""
from __future__ import annotations

import signal

from livegen.checks import parse_target
from livegen.errors import UserError
from livegen.faults import say_on_stderr as say


def add_commands(sub) -> None:
    s = sub.add_parser("perform", help="play live (headless)")
    s.add_argument("--preset", help="preset name or .toml path (default: the shipped default)")
    s.add_argument("--model", help="charrnn (shipped default), dcrnn, or a checkpoint path")
    s.add_argument("--port", help="MIDI output name (ALSA client:port numbers may be left out)")
    s.add_argument("--virtual", metavar="NAME", help="create a virtual output port for a DAW to connect to")
    s.add_argument("--no-port", action="store_true", help="no MIDI output: only record")
    s.add_argument("--api", choices=["auto", "alsa", "jack", "fluidsynth"],
                   help="MIDI API (default: preset, auto); fluidsynth: the built-in synth, heard on JACK, "
                        "PulseAudio or ALSA audio")
    s.add_argument("--soundfont", metavar="FILE.sf2", help="the built-in synth's SoundFont (default: "
                   "$LIVEGEN_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    s.add_argument("--channel", type=int, help="MIDI channel 1..16")
    s.add_argument("--program", type=int, help="General MIDI program (instrument) 0..127")
    s.add_argument("--volume", type=int, help="MIDI channel volume 0..127 (CC 7) sent at the start")
    s.add_argument("--layer", action="append", metavar="SPEC",
                   help="another model playing at once on the same clock, e.g. dcrnn,channel=2,program=33,volume=90 "
                        "(keys: channel, program, volume, temperature, port); repeatable; a recording gets one "
                        "track per layer")
    s.add_argument("--controls", help="script:FILE.jsonl, replay:TAKE.jsonl (a recorded session, "
                   "note for note with its --seed), or fixed (default)")
    s.add_argument("--emg", metavar="SPEC", help="an EMG armband plays the DCRNN's z beside the other controls: "
                   "myo, bled112[:PORT], serial:PORT,BAUD,csv, cyton:PORT or replay:FILE")
    s.add_argument("--pitch", type=float, help="fixed pitch control 0..1 (low..high register)")
    s.add_argument("--density", type=float, help="fixed density control 0..1 (sparse..dense)")
    s.add_argument("--key", help="key for the pitch-class histogram, e.g. 'C major'")
    s.add_argument("--duration", type=float, help="seconds, then stop cleanly (exit 0)")
    s.add_argument("--record", metavar="FILE.mid", help="record every message sent to a MIDI file")
    s.add_argument("--seed", type=int, help="the same seed and controls play the same notes (default: preset, 0)")
    s.add_argument("--temperature", type=float)
    s.add_argument("--lookahead", type=float, help="seconds generated ahead of the clock")
    s.add_argument("--no-steering", action="store_true", help="model conditioning only, no engine steering")
    s.add_argument("--bpm", type=float, help="tempo of the DCRNN's 16th-note grid, 20..300 (default: preset, 120)")
    s.add_argument("--clock-out", metavar="PORT", help="send 24-ppqn MIDI clock (start, ticks at --bpm, stop) "
                   "to this MIDI output")
    s.add_argument("--clock-in", metavar="PORT", help="follow an external MIDI clock from this port (another "
                   "program's output): the DCRNN's beat and the clock out lock to its tempo and beat")
    s.add_argument("--link", action="store_true", help="join an Ableton Link session on the local network and "
                   "follow its tempo and beat (the session starts at --bpm when livegen is alone)")
    s.add_argument("--osc", type=int, metavar="PORT", help="take OSC control on this UDP port (see the README's "
                   "address table); /livegen/stop and /play end and start takes")
    s.add_argument("--osc-host", metavar="ADDR", help="address OSC listens on (default 127.0.0.1, this machine "
                   "only; 0.0.0.0 opens it to the network)")
    s.add_argument("--osc-out", metavar="HOST:PORT", help="send the live state (controls, notes) as OSC there")
    s.set_defaults(func=cmd_perform)


def perform_overrides(args) -> dict:
    """``perform``'s flags as overrides of the preset (unset flags are None: the preset's value)."""
    return {"preset": args.preset, "model": args.model, "port": args.port, "virtual": args.virtual,
            "no_port": args.no_port or None, "api": args.api, "soundfont": args.soundfont,
            "channel": args.channel, "program": args.program, "volume": args.volume, "layers": args.layer,
            "controls": args.controls, "emg": args.emg, "pitch": args.pitch, "density": args.density,
            "key": args.key, "duration": args.duration, "record": args.record, "seed": args.seed,
            "temperature": args.temperature, "lookahead": args.lookahead,
            "steering": False if args.no_steering else None, "bpm": args.bpm, "clock_out": args.clock_out,
            "clock_in": args.clock_in, "link": args.link or None}


def cmd_perform(args, companion=None) -> int:
    """Takes from the preset and flags until --duration, Ctrl-C or OSC; ``companion`` runs beside
    each take (``comment --live``'s printer)."""
    from livegen import presets  # loads numpy: only when the command runs
    from livegen.take.controls import ControlHub  # loads numpy: only when the command runs
    from livegen.take.runner import TakeRunner  # loads numpy: only when the command runs
    from livegen.take.spec import TakeSpec  # loads numpy: only when the command runs

    spec = TakeSpec.from_preset(presets.load(args.preset), perform_overrides(args))
    received: list[int] = []

    def on_signal(signum, _frame):
        # only a list append: setting a threading.Event here can deadlock with an Event.wait()
        # that the signal interrupted (its lock is not reentrant)
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runner = TakeRunner(ControlHub(spec.initial), log=say)
    runner.model(spec.model)  # loaded before OSC listens: a wrong checkpoint ends it before anything opens
    osc = _start_osc(args, runner)
    try:
        runner.open_beats(spec.tempo_source, spec.settings.bpm, spec.output.api)
        failed = runner.perform(spec, lambda: bool(received), takes_on_play=bool(osc), companion=companion)
    finally:
        for part in osc:
            part.close()
        runner.close()
    if failed:
        return 1
    if received:
        return 130 if received[0] == signal.SIGINT else 0
    return 0


def _start_osc(args, runner) -> list:
    """``--osc PORT`` [``--osc-host``] [``--osc-out HOST:PORT``]: [server, state sender] steering ``runner``."""
    if args.osc is None:
        if args.osc_out or args.osc_host:
            raise UserError("--osc-out and --osc-host need --osc PORT")
        return []
    from livegen.control.osc import OscServer, OscState  # loads numpy: only when the command runs

    parts = [OscServer(runner, args.osc, args.osc_host or "127.0.0.1", log=say).start()]
    host, port = parts[0].address
    say(f"OSC on {host}:{port}" + (" (open to the network)" if host != "127.0.0.1" else ""))
    if args.osc_out:
        try:
            parts.append(OscState(runner, *parse_target(args.osc_out), runner.playing, runner.hub.clock).start())
            runner.listeners.append(parts[-1].on_sent)
        except UserError:
            parts[0].close()
            raise
    return parts
