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


def cmd_paths(args) -> int:
    from livegen import paths

    for name, path in paths.all_paths().items():
        print(f"{name}: {path}")
    return 0


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

def choose_output(args, preset):
    """Which API and port to play on; explicit names that match nothing are errors."""
    from livegen.engine.engine import OutputChoice
    from livegen.midi import ports

    if args.no_port:
        return OutputChoice()
    wanted_port = args.port if args.port is not None else preset.output.port
    virtual = args.virtual if args.virtual is not None else preset.output.virtual
    if (args.api or preset.output.api) == "fluidsynth":
        return _builtin_synth(args.soundfont or preset.output.soundfont or None, wanted_port, virtual)
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


def _builtin_synth(soundfont: str | None, wanted_port, virtual):
    """``--api fluidsynth``: the built-in synth, whose one port is "fluidsynth"; checked here so a
    missing library or SoundFont is a one-line error before anything starts."""
    from livegen.engine.engine import OutputChoice
    from livegen.midi import fluidsynth

    if virtual:
        raise UserError("--virtual makes a MIDI port for other programs; the built-in synth (--api fluidsynth) "
                        "plays itself: leave one of them out")
    if wanted_port and wanted_port != "fluidsynth":
        raise UserError(f"the built-in synth has one output, 'fluidsynth', not {wanted_port!r}: "
                        "leave --port out or use --api jack/alsa for other ports")
    fluidsynth._fluidsynth()
    return OutputChoice("fluidsynth", "fluidsynth", soundfont=fluidsynth.soundfont_path(soundfont))


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
    source = open_source(args.controls or "fixed", initial, args.preset)
    if getattr(args, "emg", None):  # the armband plays z beside the other controls
        from livegen.sensors.emg.source import with_emg

        source = with_emg(source, args.emg, args.preset)
    return source


def cmd_perform(args) -> int:
    from livegen import presets
    from livegen.engine.engine import Engine, EngineSettings
    from livegen.midi.recorder import recover_unfinished
    from livegen.music.conditioning import in_range, range_text

    preset = presets.load(args.preset)
    if args.duration is not None and not 0 < args.duration < float("inf"):
        raise UserError("--duration must be a positive number of seconds")
    if args.lookahead is not None and not 0.02 <= args.lookahead <= 5.0:
        raise UserError("--lookahead must be 0.02..5 seconds")
    if args.temperature is not None and not 0.05 <= args.temperature <= 5.0:
        raise UserError("--temperature must be 0.05..5 (1 samples as trained; lower is safer, higher wilder)")
    for take in recover_unfinished():
        _say(f"recovered the unfinished take {take['path']} ({take['notes']} notes, {take['seconds']:.1f} s)")
    source = make_source(args, preset)
    replay = getattr(source, "name", "") == "replay"
    if replay:
        _check_replay(args, source)
    model = load_model(args.model or preset.model.model)
    if model.kind == "dcrnn" and max(preset.engine.external_z) >= model.config.z_dim:
        raise UserError(f"preset key engine.external_z names dim {max(preset.engine.external_z)}, but this DCRNN's z "
                        f"has dims 0..{model.config.z_dim - 1}")
    _set_inference_threads()
    output = choose_output(args, preset)
    program = args.program if args.program is not None else preset.output.program
    channel = args.channel if args.channel is not None else preset.output.channel
    if not 1 <= channel <= 16 or not -1 <= program <= 127:
        raise UserError("--channel is 1..16 and --program 0..127")
    bpm = args.bpm if args.bpm is not None else preset.engine.bpm
    if not in_range("bpm", bpm):
        raise UserError(f"--bpm must be in {range_text('bpm')}")
    if args.volume is not None and not 0 <= args.volume <= 127:
        raise UserError("--volume is 0..127 (MIDI channel volume)")
    settings = EngineSettings(
        lookahead=args.lookahead if args.lookahead is not None else preset.engine.lookahead,
        temperature=args.temperature if args.temperature is not None else preset.model.temperature,
        seed=args.seed if args.seed is not None else preset.model.seed, channel=channel - 1,
        program=None if program < 0 else program,
        steering=preset.engine.steering and not args.no_steering,
        max_note_seconds=preset.engine.max_note_seconds, max_polyphony=preset.engine.max_polyphony,
        bpm=bpm, external_z=tuple(preset.engine.external_z), volume=args.volume)
    layers = build_layers(args, preset, output, settings, model)
    if replay:
        for what in source.mismatches(seed=settings.seed, model=model.kind, bpm=settings.bpm,
                                      temperature=settings.temperature,
                                      layers=[layer.describe() for layer in layers]):
            _say(f"warning: the take was recorded with {what}: the notes will differ")
    received: list[int] = []

    def on_signal(signum, _frame):
        # only a list append: setting a threading.Event here can deadlock with an Event.wait()
        # that the signal interrupted (its lock is not reentrant)
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    wanted_clock = args.clock_out or preset.output.clock_out
    clock_out = clock_port(args, preset, wanted_clock) if wanted_clock else None
    takes, osc = _start_osc(args, source.initial())
    beats = None
    try:
        beats = beat_source(args, preset, bpm)
        number, song_position = 1, None  # a follow-up take's clock goes on with the song
        while True:
            record = _numbered(args.record, number)
            initial = takes.latest if takes is not None and number > 1 else source.initial()
            engine = Engine(model, output, settings, initial, record=record, log=_say, end=args.duration,
                            clock_out=clock_out, layers=layers, song_position=song_position)
            failed, stopped_by_osc = _play_take(engine, source, takes, args, record, received, beats)
            if clock_out:
                from livegen.midi.clock import next_bar_position

                song_position = next_bar_position(song_position or 0, engine.stats.clock_ticks)
            if failed or received or takes is None or not stopped_by_osc:
                break
            _say("stopped; OSC /livegen/play starts the next take, Ctrl-C quits")
            while not received and not takes.play_requested.wait(0.05):
                pass
            if received:
                break
            number += 1
            source = make_source(args, preset)
    finally:
        for part in osc:
            part.close()
        if beats is not None:
            beats.close()
    if failed:
        return 1
    if received:
        return 130 if received[0] == signal.SIGINT else 0
    return 0


def build_layers(args, preset, main_output, settings, main_model) -> list:
    """``--layer`` voices (else the preset's ``[[layers]]``) beside the main one, each on its own
    channel (and port, if it names one)."""
    from livegen.engine.engine import Layer, OutputChoice
    from livegen.engine.layers import free_channels, parse_layer
    from livegen.midi import ports

    specs = [parse_layer(text) for text in args.layer] if args.layer else [p.spec() for p in preset.layers]
    used = [settings.channel + 1] + [spec.channel for spec in specs if spec.channel is not None]
    spare = iter(free_channels(used))
    layers, placed = [], {(main_output.port, settings.channel + 1): "the main layer"}
    for number, spec in enumerate(specs, start=2):
        output = main_output
        if spec.port == "fluidsynth":
            output = _builtin_synth(args.soundfont or preset.output.soundfont or None, "fluidsynth", None)
        elif spec.port is not None:
            api = main_output.api if main_output.api in ports.APIS else _clock_api(args, preset, "--layer port=")
            output = OutputChoice(api, ports.match_port(spec.port, ports.list_ports(api)["outputs"]))
        channel = spec.channel if spec.channel is not None else next(spare, None)
        if channel is None:
            raise UserError("every MIDI channel is taken: give the layers channel=N")
        where = (output.port, channel)
        if where in placed:
            raise UserError(f"layer {number} would play channel {channel} on {output.port or 'the recording'} "
                            f"with {placed[where]}: give it another channel=")
        placed[where] = f"layer {number}"
        model = load_model(spec.model)
        if model.kind == "dcrnn" and max(preset.engine.external_z) >= model.config.z_dim:
            raise UserError(f"layer {number}: preset key engine.external_z names dim {max(preset.engine.external_z)}, "
                            f"but this DCRNN's z has dims 0..{model.config.z_dim - 1}")
        layers.append(Layer(model, output, channel - 1, spec.program, spec.volume, spec.temperature))
        _say(f"layer {number}: {model.kind} on channel {channel}" + (f" of {output.port}" if output.port else ""))
    if getattr(args, "emg", None) and all(m.kind != "dcrnn" for m in [main_model, *(x.model for x in layers)]):
        _say(f"warning: --emg plays the DCRNN's z; the {main_model.kind} does not hear it "
             "(use --model dcrnn or --layer dcrnn)")
    return layers


def _play_take(engine, source, takes, args, record, received, beats=None) -> tuple[bool, bool]:
    """One take, until its --duration, a signal, a failure or OSC /stop: (failed, stopped by OSC).
    ``beats``: an outside tempo (MIDI clock in, Ableton Link) the take's beat follows."""
    if takes is not None:
        takes.attach(engine)
        sink = takes.steer  # every source steers through one place, so OSC merges over the latest
    else:
        sink = engine.set_controls
    engine.start()
    where = engine.player_info.get("port", "(no port)")
    _say(f"performing on {where}" + (f", recording to {record}" if record else "")
         + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C to stop"))
    source.start(sink, engine.now)
    follow = None
    if beats is not None:
        from livegen.engine.tempo import TempoFollow

        follow = TempoFollow(engine, beats, log=_say).start()
    companion = args.companion(engine, record) if getattr(args, "companion", None) else None  # `comment --live`
    try:
        while not received and engine.running and not (takes is not None and takes.stop_requested.is_set()):
            if args.duration is not None and engine.now() >= args.duration + 0.02:
                break
            if companion is not None:
                companion.poll()
            time.sleep(0.05)
    finally:
        source.stop()
        if follow is not None:
            follow.stop()
        stats = engine.stop()
        if companion is not None:
            companion.stop()
    _summary(stats, record)
    return bool(engine.failed), takes is not None and takes.stop_requested.is_set()


def _clock_api(args, preset, flag: str) -> str:
    """The MIDI system MIDI clock travels on: the one in use (auto when that is the built-in synth)."""
    from livegen.midi import ports

    chosen = args.api or preset.output.api
    api = ports.resolve_api(chosen if chosen in ports.APIS else "auto")
    if api is None:
        raise UserError(f"{flag} needs a MIDI system (ALSA or a JACK server) for the MIDI clock")
    return api


def clock_port(args, preset, wanted: str) -> tuple[str, str]:
    """(api, exact port) for --clock-out."""
    from livegen.midi import ports

    api = _clock_api(args, preset, "--clock-out")
    return api, ports.match_port(wanted, ports.list_ports(api)["outputs"])


def beat_source(args, preset, bpm: float):
    """``--clock-in PORT`` or ``--link`` (else the preset's ``engine.tempo_source``): the outside
    tempo to follow, or None."""
    if args.clock_in and args.link:
        raise UserError("--clock-in and --link both set the tempo: choose one")
    clock_in, link = args.clock_in, args.link
    if not clock_in and not link:
        kind, _, port = preset.engine.tempo_source.partition(":")
        clock_in, link = (port if kind == "clock" else None), kind == "link"
    if clock_in:
        from livegen.midi.clock import ClockIn

        return ClockIn(_clock_api(args, preset, "--clock-in"), clock_in)
    if link:
        from livegen.midi.link import AbletonLink

        return AbletonLink(bpm)
    return None


def _numbered(record: str | None, number: int) -> str | None:
    """take.mid, then take-2.mid, take-3.mid... for the takes OSC /play starts."""
    if record is None or number == 1:
        return record
    from pathlib import Path

    path = Path(record)
    return str(path.with_name(f"{path.stem}-{number}{path.suffix}"))


def _start_osc(args, initial):
    """``--osc PORT`` [``--osc-host``] [``--osc-out HOST:PORT``]: (take holder, [server, state sender])."""
    if args.osc is None:
        if args.osc_out or args.osc_host:
            raise UserError("--osc-out and --osc-host need --osc PORT")
        return None, []
    from livegen.control.osc import EngineTakes, OscServer, OscState, parse_target

    takes = EngineTakes(initial, log=_say)
    parts = [OscServer(takes, args.osc, args.osc_host or "127.0.0.1", log=_say).start()]
    host, port = parts[0].address
    _say(f"OSC on {host}:{port}" + (" (open to the network)" if host != "127.0.0.1" else ""))
    if args.osc_out:
        try:
            parts.append(OscState(takes, *parse_target(args.osc_out), takes.playing, takes.clock).start())
            takes.listeners.append(parts[-1].on_sent)
        except UserError:
            parts[0].close()
            raise
    return takes, parts


def _check_replay(args, source) -> None:
    """A replay ends where the take ended, and never records over the session it plays."""
    from pathlib import Path

    from livegen.sessions import session_path

    if args.record and session_path(args.record).resolve() == Path(source.path).resolve():
        raise UserError(f"--record {args.record} would overwrite the take being replayed: record to another name")
    if args.duration is None and source.end is not None:
        args.duration = source.end


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
    k = _percentiles(getattr(stats, "clock_timing", []))
    if k["p99"] is not None:
        text += f"; MIDI clock error p50 {k['p50']:.3f} ms, p99 {k['p99']:.3f} ms"
    if c["p99"] is not None:
        text += f"; control->MIDI p99 {c['p99']:.1f} ms over {len(stats.control_to_midi)} changes"
    guarded = [f"{n} {what}" for n, what in ((stats.late_dropped, "late notes left out"),
                                             (stats.retriggers, "re-struck keys ended first"),
                                             (stats.expired, "notes ended at the length limit"),
                                             (stats.clock_restarts, "clock restarts")) if n]
    if guarded:
        text += "; " + ", ".join(guarded)
    if record:
        text += f"; recorded {record}"
    _say(text)


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

    s = sub.add_parser("paths", help="where livegen keeps presets, profiles, takes, state and cache")
    s.set_defaults(func=cmd_paths)

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
                   help="minutes of the sustained 200 Hz EMG run (10 catches a rare drop a short run misses)")
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
