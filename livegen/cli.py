"""The ``livegen`` command. Bad input ends in one line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from livegen.errors import UserError


def _say(text: str) -> None:
    print(f"livegen: {text}", file=sys.stderr, flush=True)


# --- ports / panic --------------------------------------------------------------------------------

def cmd_ports(args) -> int:
    from livegen.midi import ports

    api = ports.resolve_api(args.api)
    if api is None:
        print("no MIDI system here (no ALSA sequencer, no JACK server); `livegen perform` records only")
        return 0
    listing = ports.list_ports(api)
    print(f"API: {api}")
    for kind in ("outputs", "inputs"):
        print(f"{kind}:")
        for name in listing[kind] or ["(none)"]:
            print(f"  {name}")
    return 0


def cmd_panic(args) -> int:
    from livegen.midi import ports

    api = ports.resolve_api(args.api)
    if api is None:
        raise UserError("no MIDI system here (no ALSA sequencer, no JACK server): nothing to silence")
    outputs = ports.list_ports(api)["outputs"]
    targets = [ports.match_port(args.port, outputs)] if args.port else outputs
    for name in targets:
        port = ports.RtMidiOutput(api, name)
        port.panic(all_channels=True)
        port.close(panic=False)
        print(f"all notes off on {name}")
    return 0


# --- perform ----------------------------------------------------------------------------------

def choose_output(args, preset):
    """Which API and port to play on; explicit names that match nothing are errors."""
    from livegen.engine.engine import OutputChoice
    from livegen.midi import ports

    if args.no_port:
        return OutputChoice()
    wanted_port = args.port if args.port is not None else preset.output.port
    virtual = args.virtual if args.virtual is not None else preset.output.virtual
    api = ports.resolve_api(args.api or preset.output.api)
    if api is None:
        if wanted_port or virtual:
            raise UserError("no MIDI system here (no ALSA sequencer, no JACK server) to open "
                            f"{wanted_port or virtual!r} on: start one, or use --no-port to only record")
        _say("no MIDI system here (no ALSA sequencer, no JACK server): playing into the recording only")
        return OutputChoice()
    if virtual:
        return OutputChoice(api, virtual, virtual=True)
    outputs = ports.list_ports(api)["outputs"]
    if wanted_port:
        return OutputChoice(api, ports.match_port(wanted_port, outputs))
    real = [p for p in outputs if "through" not in p.lower() and "livegen" not in p.lower()]
    if real:
        _say(f"playing on {real[0]!r} ({api}); choose another with --port")
        return OutputChoice(api, real[0])
    _say(f"no MIDI outputs on {api}: created the virtual port 'livegen' for a synth or DAW to connect to")
    return OutputChoice(api, "livegen", virtual=True)


def load_model(name: str):
    from livegen.models import checkpoint

    if name == "charrnn":
        path = checkpoint.DEFAULT_CHARRNN
        if not path.is_file():
            raise UserError(f"the shipped Char-RNN {path} is missing: reinstall livegen")
    elif name == "dcrnn":
        path = checkpoint.DEFAULT_DCRNN
        if not path.is_file():
            raise UserError(f"the shipped DCRNN {path} is missing: reinstall livegen")
    else:
        path = name
    model, _ = checkpoint.load(path)
    return model


def make_source(args, preset):
    from livegen.music.conditioning import Controls, key_histogram
    from livegen.sensors import open_source
    from livegen.sensors.base import FixedControls, clamp_controls

    base = FixedControls(Controls())
    values = {"pitch": preset.controls.pitch, "density": preset.controls.density}
    if preset.controls.key:
        values["key"] = preset.controls.key
    for key in ("pitch", "density", "key"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if "key" in values:
        try:
            key_histogram(values["key"])
        except ValueError as exc:
            raise UserError(str(exc)) from None
    initial = clamp_controls(values, Controls(), base.warn_once)
    return open_source(args.controls or "fixed", initial, args.preset)


def cmd_perform(args) -> int:
    from livegen import presets
    from livegen.engine.engine import Engine, EngineSettings
    from livegen.midi.recorder import recover_unfinished

    preset = presets.load(args.preset)
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be a positive number of seconds")
    for take in recover_unfinished():
        _say(f"recovered the unfinished take {take['path']} ({take['notes']} notes, {take['seconds']:.1f} s)")
    source = make_source(args, preset)
    model = load_model(args.model or preset.model.model)
    _set_inference_threads()
    output = choose_output(args, preset)
    program = args.program if args.program is not None else preset.output.program
    channel = args.channel if args.channel is not None else preset.output.channel
    if not 1 <= channel <= 16 or not -1 <= program <= 127:
        raise UserError("--channel is 1..16 and --program 0..127")
    bpm = args.bpm if args.bpm is not None else preset.engine.bpm
    if not 20 <= bpm <= 300:
        raise UserError("--bpm must be in 20..300")
    settings = EngineSettings(
        lookahead=args.lookahead if args.lookahead is not None else preset.engine.lookahead,
        temperature=args.temperature if args.temperature is not None else preset.model.temperature,
        seed=args.seed, channel=channel - 1, program=None if program < 0 else program,
        steering=preset.engine.steering and not args.no_steering,
        max_note_seconds=preset.engine.max_note_seconds, max_polyphony=preset.engine.max_polyphony,
        bpm=bpm)
    engine = Engine(model, output, settings, source.initial(), record=args.record, log=_say, end=args.duration)

    received: list[int] = []

    def on_signal(signum, _frame):
        # only a list append: setting a threading.Event here can deadlock with an Event.wait()
        # that the signal interrupted (its lock is not reentrant)
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    engine.start()
    where = engine.player_info.get("port", "(no port)")
    _say(f"performing on {where}" + (f", recording to {args.record}" if args.record else "")
         + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C to stop"))
    source.start(engine.set_controls, engine.now)
    try:
        while not received and engine.running:
            if args.duration is not None and engine.now() >= args.duration + 0.02:
                break
            time.sleep(0.05)
    finally:
        source.stop()
        stats = engine.stop()
    _summary(stats, args.record)
    if engine.failed:
        return 1
    if received:
        return 130 if received[0] == signal.SIGINT else 0
    return 0


def _set_inference_threads():
    import torch

    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False


def _percentiles(values, scale=1000.0) -> dict:
    import numpy as np

    if not len(values):
        return {"p50": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=np.float64) * scale
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _summary(stats, record) -> None:
    t = _percentiles(stats.timing_error)
    c = _percentiles(stats.control_to_midi)
    text = f"sent {stats.sent} messages"
    if t["p99"] is not None:
        text += f"; timing error p50 {t['p50']:.3f} ms, p99 {t['p99']:.3f} ms"
    if c["p99"] is not None:
        text += f"; control->MIDI p99 {c['p99']:.1f} ms over {len(stats.control_to_midi)} changes"
    if record:
        text += f"; recorded {record}"
    _say(text)


# --- train / eval / bench / recover --------------------------------------------------------------

def cmd_train(args) -> int:
    if args.model == "dcrnn":
        return _train_dcrnn(args)
    if args.model != "charrnn":
        raise UserError(f"training {args.model!r} is not in this livegen yet; use: livegen train charrnn")
    from livegen.train.charrnn import train

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, seq_len=args.seq_len, batch=args.batch,
                  threads=args.threads, resume=not args.no_resume, seed=args.seed, log=_say,
                  max_steps=args.steps)
    _say(f"done: {state['step']} steps, best held-out NLL {state['best_val']:.3f} nats/event -> {args.out}")
    return 0


def _train_dcrnn(args) -> int:
    """The DCRNN's trainer: VAE pretraining then WGAN-GP; sample MIDI files beside --out."""
    from livegen.train.dcrnn import train

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, threads=args.threads, resume=not args.no_resume,
                  seed=args.seed, log=_say, max_steps=args.steps)
    _say(f"done: {state['step']} steps ({state['phase']} phase) -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    from livegen.train.charrnn import evaluate

    result = evaluate(args.checkpoint, args.data, threads=args.threads, limit_pieces=args.limit)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"held-out NLL {result['nll_nats_per_event']:.3f} nats/event "
              f"(conditioning off: {result['nll_unconditioned_nats_per_event']:.3f}; "
              f"random {result['random_baseline_nats_per_event']:.2f}) over {result['events']} events "
              f"in {result['pieces']} pieces; skipped {sum(result['skipped_files'].values())} files")
    return 0


def cmd_bench(args) -> int:
    from livegen.engine.bench import run_bench

    result = run_bench(load_model(args.model), seconds=args.seconds, log=_say)
    if "camera" in args.parts:
        from livegen.sensors.camera import camera_bench

        _say("bench: camera trackers")
        result["camera"] = camera_bench()
    if "dcrnn" in args.parts:
        from pathlib import Path

        from livegen.engine.dcrnn_live import dcrnn_bench

        _say("bench: DCRNN")
        real = Path(args.real_data)
        result["dcrnn"] = dcrnn_bench(load_model("dcrnn"), data=str(real) if real.is_dir() else None, log=_say)
    if "gui" in args.parts:
        from livegen.gui.app import gui_timing_bench

        _say("bench: timing with the control panel open, repainting, moved and resized")
        result["timing_error_ms_panel_open"] = gui_timing_bench(10.0)
    if args.json:
        print(json.dumps(result))
    else:
        from livegen.engine.bench import format_report

        print(format_report(result))
    return 0


def cmd_recover(args) -> int:
    from livegen.midi.recorder import recover_unfinished, repair

    found = [repair(p) for p in args.files] if args.files else recover_unfinished()
    for take in found:
        print(f"{take['path']}: {take['notes']} notes, {take['seconds']:.1f} s, "
              f"{take['ended_notes']} hanging notes ended")
    if not found:
        print("no unfinished takes")
    return 0


# --- parser ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livegen", description="A real-time instrument: gestures steer "
                                "generative models that stream MIDI and record the take.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ports", help="list MIDI outputs and inputs with the API in use")
    s.add_argument("--api", default="auto", choices=["auto", "alsa", "jack"])
    s.set_defaults(func=cmd_ports)

    s = sub.add_parser("perform", help="play live (headless)")
    s.add_argument("--preset", help="preset name or .toml path (default: presets/default.toml)")
    s.add_argument("--model", help="charrnn (shipped default), dcrnn, or a checkpoint path")
    s.add_argument("--port", help="MIDI output name (ALSA client:port numbers may be left out)")
    s.add_argument("--virtual", metavar="NAME", help="create a virtual output port for a DAW to connect to")
    s.add_argument("--no-port", action="store_true", help="no MIDI output: only record")
    s.add_argument("--api", choices=["auto", "alsa", "jack"], help="MIDI API (default: preset, auto)")
    s.add_argument("--channel", type=int, help="MIDI channel 1..16")
    s.add_argument("--program", type=int, help="General MIDI program (instrument) 0..127")
    s.add_argument("--controls", help="script:FILE.jsonl, or fixed (default)")
    s.add_argument("--pitch", type=float, help="fixed pitch control 0..1 (low..high register)")
    s.add_argument("--density", type=float, help="fixed density control 0..1 (sparse..dense)")
    s.add_argument("--key", help="key for the pitch-class histogram, e.g. 'C major'")
    s.add_argument("--duration", type=float, help="seconds, then stop cleanly (exit 0)")
    s.add_argument("--record", metavar="FILE.mid", help="record every message sent to a MIDI file")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float)
    s.add_argument("--lookahead", type=float, help="seconds generated ahead of the clock")
    s.add_argument("--no-steering", action="store_true", help="model conditioning only, no engine steering")
    s.add_argument("--bpm", type=float, help="tempo of the DCRNN's 16th-note grid, 20..300 (default: preset, 120)")
    s.set_defaults(func=cmd_perform)

    s = sub.add_parser("panic", help="all notes off / all sound off on every channel")
    s.add_argument("--port", help="one output (default: every output)")
    s.add_argument("--api", default="auto", choices=["auto", "alsa", "jack"])
    s.set_defaults(func=cmd_panic)

    s = sub.add_parser("train", help="train a model on a folder of music")
    s.add_argument("model", choices=["charrnn", "dcrnn", "commentary"])
    s.add_argument("--data", required=True, help="folder of MIDI / kern / ABC / MusicXML (recursive); "
                   "several separated by commas")
    s.add_argument("--out", required=True, help="checkpoint to write (resumed when it exists)")
    s.add_argument("--minutes", type=float, default=30.0)
    s.add_argument("--steps", type=int, help="stop after this many steps")
    s.add_argument("--seq-len", type=int, default=256)
    s.add_argument("--batch", type=int, default=48)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-resume", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="held-out NLL (nats/event) of a checkpoint on a folder of music")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True)
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, help="evaluate only the first N pieces")
    s.add_argument("--threads", type=int, default=2)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("bench", help="the engine's numbers: latency, timing, speed, fidelity")
    s.add_argument("--json", action="store_true")
    s.add_argument("--model", default="charrnn")
    s.add_argument("--seconds", type=float, default=20.0, help="length of the live timing run")
    s.add_argument("--parts", default="engine,camera,dcrnn,gui",
                   help="comma-separated: engine (always), camera, dcrnn, gui (timing with the panel open)")
    s.add_argument("--real-data", default="../shared/data/music/pop909",
                   help="POP909 folder for the DCRNN's real-vs-generated metrics (skipped when absent)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("recover", help="repair unfinished recordings (done automatically by perform)")
    s.add_argument("files", nargs="*")
    s.set_defaults(func=cmd_recover)
    from livegen.sensors.camera_cli import add_commands
    add_commands(sub)
    from livegen.gui.cli import add_commands as add_gui_commands
    add_gui_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        _say(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
