"""``livegen learn fit`` and ``livegen learn eval``: mappings learned from examples (see
livegen/sensors/learn)."""
from __future__ import annotations

import json

from livegen.messages import say

MODELS = ("knn", "mlp")


def add_commands(sub) -> None:
    s = sub.add_parser("learn", help="learn a mapping from examples (gestures -> controls) and evaluate it")
    learn = s.add_subparsers(dest="learn_command", required=True, metavar="STEP")
    examples_help = ("SRC[,SRC...]: a Myo readings session folder (<label>.txt), a Neuro-Breakout CSV "
                     "(paddle position) or an examples file recorded in the panel")
    fit = learn.add_parser("fit", help="fit a mapping on examples and save it as TOML")
    fit.add_argument("--examples", required=True, help=examples_help)
    fit.add_argument("--out", required=True, metavar="MAP.toml", help="where the mapping goes")
    fit.add_argument("--model", choices=MODELS, help="the model for every output (default: knn for classes, mlp for numbers)")
    fit.add_argument("--output", action="append", default=[], metavar="NAME",
                     help="an output to learn (repeatable): pitch, density, z1..z8, theme, preset; a gesture "
                          "session's labels become theme and a paddle density unless named here")
    fit.set_defaults(func=cmd_fit)
    ev = learn.add_parser("eval", help="how well a mapping predicts other examples")
    ev.add_argument("mapping", metavar="MAP.toml")
    ev.add_argument("--examples", required=True, help=examples_help)
    ev.add_argument("--json", action="store_true", help='print one object: for classes {"n", "accuracy", '
                    '"balanced_accuracy", "per_class", "train_ms", "predict_us"}, for numbers {"n", "rmse", '
                    '"pearson_r", "train_ms", "predict_us"} (several outputs: one such object per output name)')
    ev.set_defaults(func=cmd_eval)


def cmd_fit(args) -> int:
    from livegen.sensors.learn import EmgSettings, fit_mapping, read_sources  # numpy: only when it runs

    output = args.output[0] if len(args.output) == 1 else None
    sources = read_sources(args.examples, EmgSettings(), output)
    mapping = fit_mapping(sources, args.output or None, args.model)
    mapping.save(args.out)
    for name, o in mapping.outputs.items():
        classes = f", {len(set(o.examples.y.tolist()))} classes" if o.kind == "classify" else ""
        say(f"{name}: {o.model} on {len(o.examples)} examples{classes}")
    say(f"saved the mapping to {args.out}")
    return 0


def cmd_eval(args) -> int:
    from livegen.sensors.learn import Mapping, evaluate, read_sources  # numpy: only when it runs

    mapping = Mapping.load(args.mapping)
    outputs = list(mapping.outputs)
    sources = read_sources(args.examples, mapping.emg, outputs[0] if len(outputs) == 1 else None)
    report = evaluate(mapping, sources)
    if args.json:
        print(json.dumps(report[outputs[0]] if len(outputs) == 1 else report))
        return 0
    for name, r in report.items():
        if "accuracy" in r:
            say(f"{name}: accuracy {r['accuracy']:.3f}, balanced {r['balanced_accuracy']:.3f} over {r['n']} examples")
            for label, c in r["per_class"].items():
                say(f"  {label}: recall {c['recall']:.3f} of {c['n']}")
        else:
            say(f"{name}: rmse {r['rmse']:.4f}, Pearson r {r['pearson_r']:.3f} over {r['n']} examples")
        say(f"  fit {r['train_ms']:.0f} ms, predict {r['predict_us']:.1f} µs per sample")
    return 0
