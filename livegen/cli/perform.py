"""``livegen perform``: a headless performance, takes from a preset and flags through the take layer.

Its flags come in groups (``add_performance_options``); ``livegen comment --live`` takes the same
ones but the network group. Paths on the command line are checked first, before numpy, the model
or the clock process load: a wrong one costs a fraction of a second, not a model's load.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from livegen.checks import parse_target
from livegen.engine.player import SpareClock
from livegen.errors import UserError
from livegen.messages import debug, say, warn

CONTROL_SOURCES = ("fixed (the default: --pitch, --density, --key and the preset hold still), "
                   "script:FILE.jsonl (a control script), replay:TAKE.jsonl (a recorded take, note for note "
                   "with its --seed), camera[:SOURCE][,KEY=VALUE...] (a hand in a camera, video or folder of "
                   "images; keys as in the preset's [camera]: tracker, mirror, dead_zone, ...), emg[:DEVICE] "
                   "(an EMG armband alone: its z)")


def add_commands(sub) -> None:
    s = sub.add_parser("perform", help="play live (headless)",
                       description="Play live without the panel: takes from a preset, changed by these flags, "
                       "until --duration, Ctrl-C (exit status 0 once a take plays) or OSC's /livegen/stop.")
    add_performance_options(s, network=True)
    s.set_defaults(func=cmd_perform)


def add_performance_options(s, network: bool, seed: bool = True, heading: str = "") -> list:
    """The flags of a headless performance, in groups titled ``heading`` + their name; ``network``:
    the OSC group too; ``seed``: --seed (``comment`` has its own, which seeds the music as well).
    Returns the flags' actions (argparse lists a parser's actions only in ``_actions``)."""
    first = len(s._actions)
    preset = s.add_argument_group(f"{heading}preset")
    preset.add_argument("--preset", metavar="NAME", help="preset name or .toml path; the flags below override it "
                        "(default: the shipped default)")
    model = s.add_argument_group(f"{heading}model")
    model.add_argument("--model", help="charrnn (the shipped default), dcrnn, or a checkpoint .safetensors path")
    model.add_argument("--temperature", type=float, metavar="T", help="sampling temperature 0.05..5: 1 plays as "
                       "trained, lower is safer, higher wilder (default: the preset's, 1)")
    if seed:
        model.add_argument("--seed", type=int, metavar="N", help="the same seed and controls play the same notes "
                           "(default: the preset's, 0)")
    model.add_argument("--layer", action="append", metavar="SPEC",
                       help="another model playing at once on the same clock, e.g. dcrnn,channel=2,program=33,"
                            "volume=90 (keys: channel, program, volume, temperature, port); repeatable; a "
                            "recording gets one track per layer")
    model.add_argument("--lookahead", type=float, metavar="SECONDS", help="seconds of music generated ahead of the "
                       "clock, 0.02..5: more rides out a busy machine, less follows the controls sooner "
                       "(default: the preset's)")
    model.add_argument("--no-steering", action="store_true",
                       help="the model's own conditioning only: the engine does not steer its choices")

    output = s.add_argument_group(f"{heading}output")
    output.add_argument("--port", help="MIDI output to play on (ALSA client:port numbers may be left out; see "
                        "`livegen ports`; default: the first real output, else a virtual port 'livegen')")
    output.add_argument("--virtual", metavar="NAME", help="create a virtual output port NAME (seen as "
                        "livegen:NAME) for a synth or DAW to connect to")
    output.add_argument("--no-port", action="store_true", help="no MIDI output: the take is only recorded "
                        "(with --record)")
    output.add_argument("--api", choices=["auto", "alsa", "jack", "fluidsynth"],
                        help="MIDI system: auto (ALSA, then JACK), alsa, jack, or fluidsynth: the built-in synth, "
                             "heard on JACK, PulseAudio or ALSA audio (default: the preset's, auto)")
    output.add_argument("--soundfont", metavar="FILE.sf2", help="the built-in synth's SoundFont (default: "
                        "$LIVEGEN_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    output.add_argument("--channel", type=int, metavar="N", help="MIDI channel 1..16 (default: the preset's, 1)")
    output.add_argument("--program", type=int, metavar="N", help="General MIDI program (instrument) 0..127, sent "
                        "at the start (default: the preset's, or the synth's own)")
    output.add_argument("--volume", type=int, metavar="N", help="MIDI channel volume 0..127 (CC 7), sent at the start")

    controls = s.add_argument_group(f"{heading}controls")
    controls.add_argument("--controls", metavar="SOURCE", help="what steers the music: " + CONTROL_SOURCES)
    controls.add_argument("--emg", metavar="SPEC", help="an EMG armband plays the DCRNN's z beside the other "
                          "controls: myo, bled112[:PORT], serial:PORT,BAUD,csv, cyton:PORT or replay:FILE")
    controls.add_argument("--pitch", type=float, metavar="X", help="pitch control 0..1, low..high register, where the "
                          "controls start (default: the preset's)")
    controls.add_argument("--density", type=float, metavar="X", help="density control 0..1, sparse..dense, where "
                          "the controls start (default: the preset's)")
    controls.add_argument("--key", help="the key whose pitch classes the music leans to, e.g. 'C major', "
                          "'F# minor'")

    player = s.add_argument_group(f"{heading}a player's MIDI in")
    player.add_argument("--midi-in", action="append", metavar="NAME", help="listen to a player on this MIDI input "
                        "(another program's output or a keyboard; matched like --port; see `livegen ports`); "
                        "repeatable; recorded on a track of its own and in the session")
    player.add_argument("--thru", action="store_true", help="send the player's messages on to the output")
    player.add_argument("--respond", choices=["off", "continue", "answer", "accompany"],
                        help="continue: when the player stops, the Char-RNN goes on with their phrase; answer: a new "
                        "phrase in their key, register and density; accompany: play along, the key and density "
                        "following theirs (default: the preset's, off)")
    player.add_argument("--answer-after", type=float, metavar="SECONDS", help="silence that ends the player's "
                        "phrase, 0.05..10 (default: the preset's, 0.5)")
    player.add_argument("--answer-bars", type=float, metavar="N", help="bars an answer lasts, at --bpm "
                        "(default: the preset's, 2); livegen yields at once when the player plays again")
    player.add_argument("--trigger-cc", type=int, metavar="CC", help="a pedal or controller (64: sustain) that "
                        "ends the phrase at once when pressed, without waiting for the silence")

    recording = s.add_argument_group(f"{heading}recording")
    recording.add_argument("--record", metavar="FILE.mid", help="record every message sent to this MIDI file, "
                           "and the controls beside it (FILE.jsonl, for --controls replay:); missing folders are made")
    recording.add_argument("--duration", type=float, metavar="SECONDS", help="play this long, then stop cleanly "
                           "(default: until Ctrl-C)")

    tempo = s.add_argument_group(f"{heading}tempo")
    tempo.add_argument("--bpm", type=float, help="tempo of the DCRNN's 16th-note grid and of the MIDI clock out, "
                       "20..300 (default: the preset's, 120)")
    tempo.add_argument("--clock-out", metavar="PORT", help="send 24-ppqn MIDI clock (start, ticks at --bpm, stop) "
                       "to this MIDI output")
    tempo.add_argument("--clock-in", metavar="PORT", help="follow an external MIDI clock from this port (another "
                       "program's output): the DCRNN's beat and the clock out lock to its tempo and beat")
    tempo.add_argument("--link", action="store_true", help="join an Ableton Link session on the local network "
                       "and follow its tempo and beat (the session starts at --bpm when livegen is alone)")
    tempo.add_argument("--follow-player", action="store_true", help="follow the tempo and 16ths of the player on "
                       "--midi-in, heard from their onsets (within 25%% of --bpm); their last tempo holds while they rest")

    if network:
        osc = s.add_argument_group(f"{heading}network (OSC)")
        osc.add_argument("--osc", type=int, metavar="PORT", help="take OSC control on this UDP port (addresses: "
                         "see the README); /livegen/stop and /livegen/play end and start takes")
        osc.add_argument("--osc-host", metavar="ADDR", help="address OSC listens on (default 127.0.0.1, this "
                         "machine only; 0.0.0.0 opens it to the network)")
        osc.add_argument("--osc-out", metavar="HOST:PORT", help="send the live state (controls, notes) as OSC there")
    return s._actions[first:]


def perform_overrides(args) -> dict:
    """The performance flags as overrides of the preset (unset flags are None: the preset's value)."""
    return {"preset": args.preset, "model": args.model, "port": args.port, "virtual": args.virtual,
            "no_port": args.no_port or None, "api": args.api, "soundfont": args.soundfont,
            "channel": args.channel, "program": args.program, "volume": args.volume, "layers": args.layer,
            "controls": args.controls, "emg": args.emg, "pitch": args.pitch, "density": args.density,
            "key": args.key, "duration": args.duration, "record": args.record, "seed": args.seed,
            "temperature": args.temperature, "lookahead": args.lookahead,
            "steering": False if args.no_steering else None, "bpm": args.bpm, "clock_out": args.clock_out,
            "clock_in": args.clock_in, "link": args.link or None,
            "follow_player": args.follow_player or None, "midi_in": args.midi_in,
            "thru": args.thru or None, "respond": args.respond, "answer_after": args.answer_after,
            "answer_bars": args.answer_bars, "trigger_cc": args.trigger_cc}


def cmd_perform(args) -> int:
    return play(args, osc=(args.osc, args.osc_host, args.osc_out))


def play(args, companion=None, osc: tuple = (None, None, None)) -> int:
    """Takes from the preset and the performance flags in ``args`` until --duration, Ctrl-C or OSC;
    ``companion`` runs beside each take (``comment --live``'s printer); ``osc`` is (--osc,
    --osc-host, --osc-out). Exit status 0 when stopped by Ctrl-C once a take played, 130 before."""
    check_paths(args)
    if osc[0] is None and (osc[1] or osc[2]):
        raise UserError("--osc-out and --osc-host need --osc PORT")
    spare = SpareClock()  # its process loads beside the work below: the first note comes sooner
    try:
        from livegen import presets  # loads numpy: only when the command runs
        from livegen.take.controls import ControlHub  # loads numpy: only when the command runs
        from livegen.take.runner import TakeRunner  # loads numpy: only when the command runs
        from livegen.take.spec import TakeSpec  # loads numpy: only when the command runs

        spec = TakeSpec.from_preset(presets.load(args.preset), perform_overrides(args))
    except BaseException:
        spare.close()
        raise
    debug(f"take: model {spec.model}, {spec.output}, controls {spec.controls}, record {spec.record}, "
          f"duration {spec.duration}, tempo {spec.tempo_source}")
    runner = TakeRunner(ControlHub(spec.initial), log=say, spare_clock=spare)
    received: list[tuple[int, bool]] = []  # (signal, whether a take had started to play)

    def on_signal(signum, _frame):
        # only a list append: setting a threading.Event here can deadlock with an Event.wait()
        # that the signal interrupted (its lock is not reentrant)
        received.append((signum, runner.spec is not None))

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    remote = []
    try:
        loading = time.monotonic()
        runner.model(spec.model)  # loaded before OSC listens: a wrong checkpoint ends it before anything opens
        debug(f"model {spec.model} loaded in {time.monotonic() - loading:.1f} s")
        remote = _start_osc(*osc, runner)
        runner.open_beats(spec.tempo_source, spec.settings.bpm, spec.output.api)
        failed = runner.perform(spec, lambda: bool(received), takes_on_play=bool(remote), companion=companion)
    finally:
        for part in remote:
            part.close()
        runner.close()
    if failed:
        return 1
    if received:
        signum, playing = received[0]
        if signum == signal.SIGINT and not playing:
            warn("interrupted")
            return 130
    return 0


def check_paths(args) -> None:
    """The --record folder (made when missing) and a --model path, checked before anything heavy loads."""
    if args.record:
        check_record(args.record)
    if args.model and (os.sep in args.model or args.model.endswith(".safetensors")):  # a path, not a name
        path = Path(args.model)
        if path.is_dir():
            raise UserError(f"checkpoint {path} is a folder: give the .safetensors file in it")
        if not path.is_file():
            raise UserError(f"checkpoint {path} does not exist")


def check_record(record: str) -> None:
    """``--record FILE``: its folder exists (made when missing) and can be written to, and FILE is
    not a folder; else one line saying what is in the way."""
    path = Path(record)
    folder = path.parent
    try:
        if path.is_dir():
            raise UserError(f"--record {record} is a folder: give a file in it, e.g. {path / 'take.mid'}")
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise UserError(f"--record {record}: {blocking} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--record {record}: cannot make the folder {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--record {record}: cannot write in the folder {folder} (permission denied)")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"--record {record}: the file exists and cannot be written over (permission denied)")


def _start_osc(port: int | None, host: str | None, out: str | None, runner) -> list:
    """``--osc PORT`` [``--osc-host``] [``--osc-out HOST:PORT``]: [server, state sender] steering ``runner``."""
    if port is None:
        return []
    from livegen.control.osc import OscServer, OscState  # loads numpy: only when the command runs

    parts = [OscServer(runner, port, host or "127.0.0.1", log=say).start()]
    runner.osc = parts[0]  # a preset's mapping of OSC inputs listens here
    host, port = parts[0].address
    say(f"OSC on {host}:{port}" + (" (open to the network)" if host != "127.0.0.1" else ""))
    if out:
        try:
            parts.append(OscState(runner, *parse_target(out), runner.playing, runner.hub.clock).start())
            runner.listeners.append(parts[-1].on_sent)
        except UserError:
            parts[0].close()
            raise
    return parts
