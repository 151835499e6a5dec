"""``livegen train``, ``prepare``, ``eval`` and ``bench``: the models and the instrument's numbers."""
from __future__ import annotations

import json
from pathlib import Path

from livegen import extras
from livegen.bench.startup import startup_bench
from livegen.errors import UserError
from livegen.messages import say
from livegen.train.distributed import default_threads, rank


def add_commands(sub) -> None:
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
    s.add_argument("--time", choices=["seconds", "beats"], default="seconds",
                   help="charrnn: what a time step is: 10 ms of the performance, or 1/12 of a beat of its "
                   "beat grid (the grid vocabulary: played back at the take's tempo)")
    s.add_argument("--init", metavar="CHECKPOINT", help="charrnn: start from this checkpoint's weights (same shape)")
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
                       "unknown_word_rate, tokens, sentences, captions, model, use_attributes, trained_steps; "
                       "with --midi, truth (false_claim_rate, true_claim_rate, written_rate, distinct_2, "
                       "ms_per_sentence, by_take, examples, files, sentences).")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True, help="Char-RNN: a folder of music; commentary: a caption CSV")
    s.add_argument("--json", action="store_true", help="one JSON object (the commentary keys: see the description)")
    s.add_argument("--limit", type=int, help="evaluate only the first N pieces (commentary: captions)")
    s.add_argument("--baseline", metavar="FILE", help="commentary: a checkpoint trained with --no-attributes on "
                   "the same captions; its held-out perplexity is reported beside the model's")
    s.add_argument("--midi", metavar="FOLDER", help="commentary: held-out MIDI files the shown sentences are "
                   "judged against (key truth: false and true claim rates, distinct-2, by take)")
    s.add_argument("--midi-limit", type=int, default=12, metavar="N", help="commentary: the first N files of --midi")
    s.add_argument("--threads", type=int, default=2)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("bench", help="the engine's numbers: latency, timing, speed, fidelity")
    s.add_argument("--json", action="store_true")
    s.add_argument("--model", default="charrnn")
    s.add_argument("--seconds", type=float, help="length of the live timing run (default 20) and of each music "
                   "take (default 60)")
    s.add_argument("--seeds", type=int, default=2, help="music: takes of each kind, seeds 1..N")
    s.add_argument("--timing", choices=["grid", "free"], default="grid",
                   help="music: the Char-RNN's timing (grid: the shipped Char-RNN, onsets on the beat's 16ths; "
                   "free: the expressive one, its own timing)")
    s.add_argument("--parts", default="engine,camera,dcrnn,gui,emg,layers",
                   help="comma-separated: engine (the live engine's latency, timing, speed and fidelity), "
                        "startup (launch of `livegen perform` -> its first note at a JACK port, median of "
                        "--launches; not in the default), camera, dcrnn, gui (timing with the panel open), "
                        "layers (the live run with the DCRNN beside the Char-RNN), "
                        "clock (MIDI clock out and tempo following on JACK; not in the default), "
                        "emg (parse/process cost, 200 Hz over a pty into the DCRNN, the mapping on real recordings), "
                        "music (key, pulse, recurrence, clean notes and pitch spread of rendered takes beside "
                        "--real-data; not in the default), "
                        "commentary (ms per shown sentence on one core, on --real-data's takes; not in the default), "
                        "learn (learned mappings: gestures across and within sessions, the Neuro-Breakout paddle; "
                        "not in the default), "
                        "midi-in (--phrases of --real-data played into `livegen perform --respond answer` on JACK: "
                        "answer latency, key agreement, the yield, a pedal and thru; not in the default)")
    s.add_argument("--phrases", type=int, default=12, help="midi-in: POP909 phrases to answer (10..100)")
    s.add_argument("--launches", type=int, default=5, help="startup: launches to take the median of")
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
                   help="POP909 folder for the DCRNN's real-vs-generated metrics, the music part's real "
                   "column and the midi-in part's phrases (skipped when absent)")
    s.set_defaults(func=cmd_bench)


def cmd_prepare(args) -> int:
    from livegen.train.shards import prepare  # loads numpy: only when the command runs

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    prepare(args.data, args.out, workers=args.workers, log=say, progress=args.verbosity >= 0)
    return 0


def cmd_train(args) -> int:
    extras.require("train", "livegen train", "torch", "tqdm")
    if args.threads is None:  # the cores, shared by the processes torchrun started on this machine
        args.threads = default_threads()
    if args.batch is None:
        args.batch = {"dcrnn": 32, "commentary": 64}.get(args.model, 48)
    if args.no_attributes and args.model != "commentary":
        raise UserError("--no-attributes is for `livegen train commentary` only")
    if args.model != "charrnn" and (args.init or args.time != "seconds"):
        raise UserError(f"{'--init' if args.init else '--time'} is for `livegen train charrnn` only")
    if args.model == "dcrnn":
        return _train_dcrnn(args)
    if args.model == "commentary":
        return cmd_train_commentary(args)
    if args.model != "charrnn":
        raise UserError(f"training {args.model!r} is not in this livegen yet; use: livegen train charrnn")
    from livegen.train.charrnn import train  # loads numpy and torch: only when the command runs

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, seq_len=args.seq_len, batch=args.batch,
                  threads=args.threads, resume=not args.no_resume, seed=args.seed, log=say,
                  max_steps=args.steps, device=args.device, accum=args.accum, progress=args.verbosity >= 0,
                  config_overrides={"time_unit": args.time}, init=args.init)
    if rank() == 0:
        say(f"done: {state['step']} steps, best held-out NLL {state['best_val']:.3f} nats/event -> {args.out}")
    return 0


def _train_dcrnn(args) -> int:
    """The DCRNN's trainer: VAE pretraining then WGAN-GP; sample MIDI files beside --out."""
    from livegen.train.dcrnn import train  # loads numpy and torch: only when the command runs

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, batch=args.batch, threads=args.threads,
                  resume=not args.no_resume, seed=args.seed, log=say, max_steps=args.steps, device=args.device,
                  accum=args.accum, progress=args.verbosity >= 0)
    if rank() == 0:
        say(f"done: {state['step']} steps ({state['phase']} phase) -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    extras.require("train", "livegen eval", "torch")
    from livegen.models import checkpoint  # loads numpy: only when the command runs

    if checkpoint.read_metadata(args.checkpoint).get("kind") in checkpoint.TEXT_KINDS:
        return cmd_eval_commentary(args)
    if args.baseline or args.midi:
        raise UserError(f"{'--baseline' if args.baseline else '--midi'} is for commentary checkpoints only")
    from livegen.train.charrnn import evaluate  # loads numpy and torch: only when the command runs

    result = evaluate(args.checkpoint, args.data, threads=args.threads, limit_pieces=args.limit)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"held-out NLL {result['nll_nats_per_event']:.3f} nats/event "
              f"(conditioning off: {result['nll_unconditioned_nats_per_event']:.3f}; "
              f"random {result['random_baseline_nats_per_event']:.2f}), {result['nll_nats_per_note']:.2f} nats/note, "
              f"over {result['events']} events in {result['pieces']} pieces ({result['time_unit']} steps); skipped {sum(result['skipped_files'].values())} files")
    return 0


def cmd_bench(args) -> int:
    from livegen.models.checkpoint import load_live, load_model, model_path  # loads numpy: only when the command runs

    parts = set(args.parts.split(","))
    if parts - BENCH_PARTS:
        raise UserError(f"unknown bench part {sorted(parts - BENCH_PARTS)[0]!r}: choose from "
                        f"{', '.join(sorted(BENCH_PARTS))}")
    if args.seconds is not None and not args.seconds > 0:
        raise UserError("--seconds must be a positive number")
    if not 1 <= args.seeds <= 100:
        raise UserError("--seeds is 1..100")
    seconds = args.seconds or 20.0
    if not 1 <= args.launches <= 100:
        raise UserError("--launches is 1..100")
    if not 10 <= args.phrases <= 100:
        raise UserError("--phrases is 10..100")
    if parts - {"startup", "commentary", "learn", "midi-in"}:
        extras.require("train", "livegen bench", "torch", "scipy")
    result = {}
    if "startup" in parts:
        say(f"bench: start-up, {args.launches} launches of livegen perform to the first note at a JACK port")
        result["startup"] = startup_bench(args.launches, log=say)
    model = None
    if parts & {"engine", "layers", "clock"} or args.load is not None:
        path = model_path(args.model)
        model, _ = load_live(path)
        if model.kind != "charrnn":
            raise UserError(f"--model {args.model} is a {model.kind}: bench --model takes a Char-RNN (the DCRNN "
                            "is measured in its own part, --parts dcrnn)")
    if "engine" in parts:
        from livegen.bench.engine import run_bench  # loads numpy: only when the bench runs

        result.update(run_bench(model, path, seconds=seconds, log=say))
    if "camera" in parts:
        from livegen.bench.camera import camera_bench  # loads numpy: only when the bench runs

        say("bench: camera trackers")
        result["camera"] = camera_bench()

        if Path(args.hands_data).is_dir():
            from livegen.bench.camera import hand_detection  # loads numpy: only when the bench runs

            say(f"bench: each tracker on the real photos in {args.hands_data}")
            result["camera"]["detection"] = hand_detection(args.hands_data)
    if "dcrnn" in parts:
        from livegen.bench.dcrnn import dcrnn_bench  # loads numpy: only when the bench runs

        say("bench: DCRNN")
        real = Path(args.real_data)
        result["dcrnn"] = dcrnn_bench(load_model("dcrnn"), data=str(real) if real.is_dir() else None, log=say)
    if "layers" in parts:
        from livegen.bench.engine import layered_run  # loads numpy: only when the bench runs

        say("bench: live engine run with the DCRNN layered beside the Char-RNN")
        result["layers"] = layered_run(model, load_model("dcrnn"), seconds, say)
    if args.load is not None:
        from livegen.bench.load import load_run  # loads numpy: only when the bench runs

        if not 0 <= args.load <= 64:
            raise UserError("--load is 0..64 busy processes")
        say(f"bench: the live run and a scripted DCRNN take with {args.load} busy processes beside them")
        result["load"] = load_run(model, load_model("dcrnn"), args.load, seconds, say)
    if "music" in parts:
        from livegen.bench.music import music_bench  # loads numpy and mido: only when the bench runs

        real = Path(args.real_data)
        result["music"] = music_bench(load_model("expressive" if args.timing == "free" else "charrnn"),
                                      load_model("dcrnn"), args.timing,
                                      seconds=args.seconds or 60.0, seeds=args.seeds,
                                      real=str(real) if real.is_dir() else None, log=say)
    if "clock" in parts:
        from livegen.bench.clock import clock_bench  # loads numpy: only when the bench runs

        result["clock"] = clock_bench(model, log=say)
    if "gui" in parts:
        from livegen.bench.gui import gui_timing_bench  # loads numpy: only when the bench runs

        say("bench: timing with the control panel open, repainting, moved and resized")
        result["timing_error_ms_panel_open"] = gui_timing_bench(10.0)
    if "emg" in parts:
        from livegen.bench.emg import emg_bench  # loads numpy: only when the bench runs

        if args.emg_minutes <= 0:
            raise UserError("--emg-minutes must be positive")
        say("bench: EMG")
        result["emg"] = emg_bench(args.emg_data, load_model("dcrnn"), live_seconds=args.emg_minutes * 60, log=say)
    if "commentary" in parts:
        from livegen.bench.commentary import commentary_bench  # loads numpy: only when the bench runs

        say("bench: commentary, one shown sentence on one core")
        real = Path(args.real_data)
        result["commentary"] = commentary_bench(str(real) if real.is_dir() else None)
    if "learn" in parts:
        from livegen.bench.learn import learn_bench  # loads numpy: only when the bench runs

        say("bench: learned mappings on the Myo readings and Neuro-Breakout")
        result["learn"] = learn_bench(args.emg_data, str(Path(args.emg_data).parent / "neuro-breakout"), log=say)
    if "midi-in" in parts:
        from livegen.bench.midi_in import midi_in_bench  # loads numpy and mido: only when the bench runs

        say("bench: MIDI in, a player's phrases answered on JACK")
        result["midi_in"] = midi_in_bench(args.real_data, args.phrases, log=say)
    if args.json:
        print(json.dumps(result))
    else:
        from livegen.bench.report import format_report  # loads numpy: only when the bench runs

        print(format_report(result))
    return 0


BENCH_PARTS = {"engine", "startup", "camera", "dcrnn", "gui", "emg", "layers", "clock", "music", "commentary",
               "learn", "midi-in"}


def cmd_train_commentary(args) -> int:
    from livegen.train.commentary import train  # loads numpy and torch: only when the command runs

    if args.minutes <= 0:
        raise UserError("--minutes must be positive")
    state = train(args.data, args.out, args.minutes, batch=args.batch, threads=args.threads,
                  resume=not args.no_resume, seed=args.seed, log=say, max_steps=args.steps, device=args.device,
                  accum=args.accum, config_overrides={"use_attributes": False} if args.no_attributes else None,
                  progress=args.verbosity >= 0)
    if rank() == 0:  # the others never validate: they know no perplexity to report
        best = state["best_val"]
        say(f"done: {state['step']} steps, best held-out perplexity "
             f"{'(not yet: KL still annealing)' if best == float('inf') else f'{best:.1f}'} -> {args.out}")
    return 0


def cmd_eval_commentary(args) -> int:
    from livegen.train.commentary import evaluate  # loads numpy and torch: only when the command runs

    if args.midi_limit < 1:
        raise UserError("--midi-limit must be at least 1")
    r = evaluate(args.checkpoint, args.data, threads=args.threads, limit=args.limit, baseline=args.baseline,
                 midi=args.midi, midi_limit=args.midi_limit)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"held-out perplexity {r['perplexity']:.1f} (ELBO bound; "
          f"reconstruction {r['perplexity_reconstruction']:.1f}), "
          f"KL {r['kl']:.2f} nats/sentence over {r['sentences']} sentences"
          + ("" if r["use_attributes"] else " (a no-attribute baseline: its attributes are zeroed)"))
    aspects = r["aspect_attributes"]
    print(f"attributes from the aspect list alone (not the sentence's own words): perplexity "
          f"{aspects['perplexity']:.1f} (reconstruction {aspects['perplexity_reconstruction']:.1f})")
    if "baseline" in r:
        print(f"the same decoder without attributes ({r['baseline']['model']}): perplexity "
              f"{r['baseline']['perplexity']:.1f} (reconstruction {r['baseline']['perplexity_reconstruction']:.1f})")
    print(f"attribute agreement {100 * r['attribute_agreement']:.1f} % "
          f"(chance {100 * r['attribute_agreement_chance']:.1f} %, "
          f"real captions {100 * r['classifier_on_real']:.1f} %); distinct-1 {r['distinct_1']:.3f}, "
          f"distinct-2 {r['distinct_2']:.3f}; {r['ms_per_sentence']:.1f} ms per sentence on one core")
    shown = r["shown"]
    print(f"as shown by `livegen comment` (filtered, reranked{', LC-GAN' if 'lcgan' in r else ''}): agreement "
          f"{100 * shown['attribute_agreement']:.1f} %, distinct-1 {shown['distinct_1']:.3f}, "
          f"distinct-2 {shown['distinct_2']:.3f}")
    if "lcgan" in r:
        lc = r["lcgan"]
        print(f"with the LC-GAN: agreement {100 * lc['attribute_agreement']:.1f} %, reward {lc['reward']:.3f} "
              f"(without {r['reward']:.3f}), distinct-1 {lc['distinct_1']:.3f}, distinct-2 {lc['distinct_2']:.3f}")
    if "truth" in r:
        t = r["truth"]
        print(f"on {t['files']} held-out MIDI files, {t['sentences']} shown sentences: "
              f"{100 * t['false_claim_rate']:.1f} % with a false claim, {100 * t['true_claim_rate']:.1f} % with a true "
              f"specific claim and none false, distinct-2 {t['distinct_2']:.2f} per take, "
              f"{100 * t['written_rate']:.0f} % written by the model, {t['ms_per_sentence']:.0f} ms per sentence")
        for name, take in t["by_take"].items():
            print(f"  {name}: {100 * take['false_claim_rate']:.1f} % false, {100 * take['true_claim_rate']:.1f} % true "
                  f"of {take['sentences']}")
    if "independent_judge" in r:
        j = r["independent_judge"]
        print(f"independent judge (fitted on {j['fitted_on_sentences']} of these sentences): agreement "
              f"{100 * j['attribute_agreement']:.1f} % raw, {100 * j['shown']:.1f} % as shown"
              + (f", {100 * j['lcgan']:.1f} % with the LC-GAN" if "lcgan" in j else "")
              + f"; {100 * j['on_real']:.1f} % on the {j['real_sentences']} real sentences it did not see")
    return 0

