"""The ``livegen`` command. Bad input ends in one line on stderr and a non-zero exit, never a traceback,
and so does Ctrl-C, at any moment."""
from __future__ import annotations

import os
import sys


def _exit_interrupted() -> None:
    print("livegen: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _interrupted_before_main(kind, value, traceback) -> None:
    """Ctrl-C while this module loads, before ``main`` catches it: one line and exit status 130, as
    ``main`` says it; anything else goes to the hook there was."""
    if issubclass(kind, KeyboardInterrupt):
        _exit_interrupted()
    _excepthook_before_livegen(kind, value, traceback)


_excepthook_before_livegen = sys.excepthook
sys.excepthook = _interrupted_before_main

import argparse  # after the hook: Ctrl-C while these load is quiet too
import json
import signal
import time

from livegen.errors import UserError


def _on_ctrl_c(signum, frame) -> None:
    """Ctrl-C raises KeyboardInterrupt, as Python's own handler does, except in the middle of an
    import: there it ends livegen at once, because an exception raised into a library's
    initialisation can abort the process (torch's C++) or surface as another error."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            _exit_interrupted()
        frame = frame.f_back
    raise KeyboardInterrupt


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
    if not targets:
        print(f"no MIDI outputs on {api}: nothing to silence")
    for name in targets:
        port = ports.RtMidiOutput(api, name)
        port.panic(all_channels=True)
        port.close(panic=False)
        print(f"all notes off on {name}")
    return 0


# --- perform ----------------------------------------------------------------------------------

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
    from livegen import presets
    from livegen.take.controls import ControlHub
    from livegen.take.runner import TakeRunner
    from livegen.take.spec import TakeSpec

    spec = TakeSpec.from_preset(presets.load(args.preset), perform_overrides(args))
    received: list[int] = []

    def on_signal(signum, _frame):
        # only a list append: setting a threading.Event here can deadlock with an Event.wait()
        # that the signal interrupted (its lock is not reentrant)
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runner = TakeRunner(ControlHub(spec.initial), log=_say)
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
    from livegen.control.osc import OscServer, OscState, parse_target

    parts = [OscServer(runner, args.osc, args.osc_host or "127.0.0.1", log=_say).start()]
    host, port = parts[0].address
    _say(f"OSC on {host}:{port}" + (" (open to the network)" if host != "127.0.0.1" else ""))
    if args.osc_out:
        try:
            parts.append(OscState(runner, *parse_target(args.osc_out), runner.playing, runner.hub.clock).start())
            runner.listeners.append(parts[-1].on_sent)
        except UserError:
            parts[0].close()
            raise
    return parts


# --- train / eval / bench / recover --------------------------------------------------------------

def cmd_prepare(args) -> int:
    from livegen.train.shards import prepare

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    prepare(args.data, args.out, workers=args.workers, log=_say)
    return 0


def cmd_train(args) -> int:
    from livegen.train.distributed import default_threads

    if args.threads is None:  # the cores, shared by the processes torchrun started on this machine
        args.threads = default_threads()
    if args.batch is None:
        args.batch = {"dcrnn": 32, "commentary": 64}.get(args.model, 48)
    if args.no_attributes and args.model != "commentary":
        raise UserError("--no-attributes is for `livegen train commentary` only")
    if args.model == "dcrnn":
        return _train_dcrnn(args)
    if args.model == "commentary":
        from livegen.commentary.cli import cmd_train_commentary

        return cmd_train_commentary(args)
    if args.model != "charrnn":
        raise UserError(f"training {args.model!r} is not in this livegen yet; use: livegen train charrnn")
    from livegen.train.charrnn import train
    from livegen.train.distributed import rank

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, seq_len=args.seq_len, batch=args.batch,
                  threads=args.threads, resume=not args.no_resume, seed=args.seed, log=_say,
                  max_steps=args.steps, device=args.device, accum=args.accum)
    if rank() == 0:
        _say(f"done: {state['step']} steps, best held-out NLL {state['best_val']:.3f} nats/event -> {args.out}")
    return 0


def _train_dcrnn(args) -> int:
    """The DCRNN's trainer: VAE pretraining then WGAN-GP; sample MIDI files beside --out."""
    from livegen.train.dcrnn import train
    from livegen.train.distributed import rank

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, batch=args.batch, threads=args.threads,
                  resume=not args.no_resume, seed=args.seed, log=_say, max_steps=args.steps, device=args.device,
                  accum=args.accum)
    if rank() == 0:
        _say(f"done: {state['step']} steps ({state['phase']} phase) -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    from livegen.models import checkpoint

    if checkpoint.read_metadata(args.checkpoint).get("kind") in checkpoint.TEXT_KINDS:
        from livegen.commentary.cli import cmd_eval_commentary

        return cmd_eval_commentary(args)
    if args.baseline:
        raise UserError("--baseline is for commentary checkpoints only")
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
    from livegen.bench.engine import run_bench
    from livegen.models.checkpoint import load_model

    model = load_model(args.model)
    if model.kind != "charrnn":
        raise UserError(f"--model {args.model} is a {model.kind}: bench --model takes a Char-RNN (the DCRNN "
                        "is measured in its own part, --parts dcrnn)")
    if not args.seconds > 0:
        raise UserError("--seconds must be a positive number")
    result = run_bench(model, seconds=args.seconds, log=_say)
    if "camera" in args.parts:
        from livegen.sensors.camera import camera_bench

        _say("bench: camera trackers")
        result["camera"] = camera_bench()
        from pathlib import Path

        if Path(args.hands_data).is_dir():
            from livegen.sensors.camera import hand_detection

            _say(f"bench: each tracker on the real photos in {args.hands_data}")
            result["camera"]["detection"] = hand_detection(args.hands_data)
    if "dcrnn" in args.parts:
        from pathlib import Path

        from livegen.bench.dcrnn import dcrnn_bench

        _say("bench: DCRNN")
        real = Path(args.real_data)
        result["dcrnn"] = dcrnn_bench(load_model("dcrnn"), data=str(real) if real.is_dir() else None, log=_say)
    if "layers" in args.parts:
        from livegen.bench.engine import layered_run

        _say("bench: live engine run with the DCRNN layered beside the Char-RNN")
        result["layers"] = layered_run(model, load_model("dcrnn"), args.seconds, _say)
    if args.load is not None:
        from livegen.bench.load import load_run

        if not 0 <= args.load <= 64:
            raise UserError("--load is 0..64 busy processes")
        _say(f"bench: the live run and a scripted DCRNN take with {args.load} busy processes beside them")
        result["load"] = load_run(model, load_model("dcrnn"), args.load, args.seconds, _say)
    if "clock" in args.parts:
        from livegen.bench.clock import clock_bench

        result["clock"] = clock_bench(load_model(args.model), log=_say)
    if "gui" in args.parts:
        from livegen.bench.gui import gui_timing_bench

        _say("bench: timing with the control panel open, repainting, moved and resized")
        result["timing_error_ms_panel_open"] = gui_timing_bench(10.0)
    if "emg" in args.parts:
        from livegen.bench.emg import emg_bench

        if args.emg_minutes <= 0:
            raise UserError("--emg-minutes must be positive")
        _say("bench: EMG")
        result["emg"] = emg_bench(args.emg_data, load_model("dcrnn"), live_seconds=args.emg_minutes * 60, log=_say)
    if args.json:
        print(json.dumps(result))
    else:
        from livegen.bench.report import format_report

        print(format_report(result))
    return 0


def cmd_render(args) -> int:
    from livegen.midi.fluidsynth import render

    started = time.monotonic()
    result = render(args.midi, args.wav, soundfont=args.soundfont, rate=args.rate)
    took = time.monotonic() - started
    _say(f"rendered {args.midi} -> {args.wav}: {result['seconds']:.1f} s of audio at {args.rate} Hz, 16-bit stereo "
         f"({result['events']} MIDI events, {result['seconds'] / max(took, 1e-6):.0f}x real time)")
    if result["peak"] == 0:
        _say("warning: the audio is silent (no notes in the file, or the SoundFont has no sound for them)")
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

    s = sub.add_parser("panic", help="all notes off / all sound off on every channel")
    s.add_argument("--port", help="one output (default: every output)")
    s.add_argument("--api", default="auto", choices=["auto", "alsa", "jack"])
    s.set_defaults(func=cmd_panic)

    s = sub.add_parser("train", help="train a model on a folder of music")
    s.add_argument("model", choices=["charrnn", "dcrnn", "commentary"])
    s.add_argument("--data", required=True, help="folder of MIDI / kern / ABC / MusicXML (recursive), or one "
                   "made by livegen prepare; several separated by commas")
    s.add_argument("--out", required=True, help="checkpoint to write (resumed when it exists)")
    s.add_argument("--minutes", type=float, default=30.0)
    s.add_argument("--steps", type=int, help="stop after this many steps")
    s.add_argument("--seq-len", type=int, default=256)
    s.add_argument("--batch", type=int, help="global batch per optimizer step, over all processes and "
                   "micro-batches (default: charrnn 48, dcrnn 32)")
    s.add_argument("--accum", type=int, default=1, help="gradient accumulation: micro-batches per step")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: a GPU per process when there is one (bf16 mixed precision), else the CPU")
    s.add_argument("--threads", type=int, help="CPU threads per process (default: cores / processes here)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-resume", action="store_true")
    s.add_argument("--no-attributes", action="store_true",
                   help="commentary: the same decoder with its attribute vector zeroed (and no LC-GAN), the "
                   "baseline for `livegen eval --baseline`")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("prepare", help="parse music folders once, in parallel, into shards that training "
                       "streams from (livegen train --data SHARDS)")
    s.add_argument("--data", required=True, help="folders of MIDI / kern / ABC / MusicXML, separated by commas")
    s.add_argument("--out", required=True, help="folder for the shards (prepared again: only new or changed "
                   "files are parsed)")
    s.add_argument("--workers", type=int, help="parsing processes (default: the cores, at most 8)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("eval", help="held-out numbers of a checkpoint: a Char-RNN's NLL on a folder of "
                       "music, or the commentary model's perplexity, KL and attribute agreement on captions",
                       description="A Char-RNN, on a folder of music: held-out NLL in nats/event, with its "
                       "conditioning off too and a random baseline. The commentary model, on a "
                       "MusicCaps-style CSV (the <out>.held-out.csv its training wrote): --json keys perplexity, "
                       "perplexity_reconstruction, kl (attributes as in training: aspects and the sentence's own "
                       "words), aspect_attributes (the same from the aspect list alone), baseline (with "
                       "--baseline), attribute_agreement, attribute_agreement_chance, "
                       "attribute_agreement_by_category, classifier_on_real, shown, lcgan (with an LC-GAN), "
                       "independent_judge, "
                       "reward, distinct_1, distinct_2, mean_words, examples, ms_per_sentence, "
                       "unknown_word_rate, tokens, sentences, captions, model, use_attributes, trained_steps.")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True, help="Char-RNN: a folder of music; commentary: a caption CSV")
    s.add_argument("--json", action="store_true", help="one JSON object (the commentary keys: see the description)")
    s.add_argument("--limit", type=int, help="evaluate only the first N pieces (commentary: captions)")
    s.add_argument("--baseline", metavar="FILE", help="commentary: a checkpoint trained with --no-attributes on "
                   "the same captions; its held-out perplexity is reported beside the model's")
    s.add_argument("--threads", type=int, default=2)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("bench", help="the engine's numbers: latency, timing, speed, fidelity")
    s.add_argument("--json", action="store_true")
    s.add_argument("--model", default="charrnn")
    s.add_argument("--seconds", type=float, default=20.0, help="length of the live timing run")
    s.add_argument("--parts", default="engine,camera,dcrnn,gui,emg,layers",
                   help="comma-separated: engine (always), camera, dcrnn, gui (timing with the panel open), "
                        "layers (the live run with the DCRNN beside the Char-RNN), "
                        "clock (MIDI clock out and tempo following on JACK; not in the default), "
                        "emg (parse/process cost, 200 Hz over a pty into the DCRNN, the mapping on real recordings)")
    s.add_argument("--load", type=int, default=None, metavar="N",
                   help="also run the live timing run and a scripted DCRNN take with N busy processes beside "
                        "them (a stage laptop): timing, late notes, re-triggers, unended notes, same as quiet")
    s.add_argument("--emg-minutes", type=float, default=0.5,
                   help="length of the sustained 200 Hz EMG run (the issue's check: 10)")
    s.add_argument("--emg-data", default="../shared/data/emg/myo-readings",
                   help="myo-readings folder for the EMG mapping's numbers (skipped when absent)")
    s.add_argument("--hands-data", default="../shared/data/hands",
                   help="real photos of a hand with MediaPipe labels: each tracker's detection rate (skipped when absent)")
    s.add_argument("--real-data", default="../shared/data/music/pop909",
                   help="POP909 folder for the DCRNN's real-vs-generated metrics (skipped when absent)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("render", help="render a MIDI file (a recorded take) to a WAV with the built-in synth")
    s.add_argument("midi", help="the .mid to render")
    s.add_argument("wav", help="the .wav to write (16-bit stereo)")
    s.add_argument("--soundfont", metavar="FILE.sf2",
                   help="SoundFont (default: $LIVEGEN_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    s.add_argument("--rate", type=int, default=44100, help="sample rate in Hz (default 44100)")
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("recover", help="repair unfinished recordings (done automatically by perform)")
    s.add_argument("files", nargs="*")
    s.set_defaults(func=cmd_recover)
    from livegen.sensors.camera_cli import add_commands
    add_commands(sub)
    from livegen.sensors.emg.cli import add_commands as add_emg_commands
    add_emg_commands(sub)
    from livegen.gui.cli import add_commands as add_gui_commands
    add_gui_commands(sub)
    from livegen.commentary.cli import add_commands as add_commentary_commands
    add_commentary_commands(sub)  # after perform: `comment --live` takes its flags
    return p


def main(argv: list[str] | None = None) -> int:
    ctrl_c_before = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        sys.excepthook = _excepthook_before_livegen  # main catches Ctrl-C itself; the panel's Qt keeps its hook
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        from livegen.train.distributed import rank

        _say(f"error: {exc}" if rank() == 0 else f"error (process {rank()}): {exc}")
        return 2
    except KeyboardInterrupt:
        ctrl_c_before = signal.SIG_DFL  # a second Ctrl-C while leaving ends it at once, silently
        _say("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        _say(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        return 1
    finally:
        if ctrl_c_before is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, ctrl_c_before)


if __name__ == "__main__":
    sys.exit(main())
