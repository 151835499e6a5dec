"""Mappings learned by demonstration: show livegen a gesture and the sound it should make.

The API (GUI-free; the panel's Learn tab and ``livegen learn`` both use it):

- ``ExampleRecorder(inputs, outputs)``: ``start()`` a take (``start(n)`` records take n again),
  ``add(input_vector, {output: value})`` per sensor sample while the outputs are set by hand,
  ``stop()``, ``delete(n)``, ``counts()``, ``save(path)``/``load(path)`` (an examples CSV),
  ``source()`` (its examples, to fit on).
- ``read_sources("SRC[,SRC...]", EmgSettings(), output=None)``: examples from recordings and
  examples files (``examples.py``).
- ``fit_mapping(sources, outputs=None, model=None)`` -> a fitted ``Mapping``; ``Mapping.save``,
  ``Mapping.load`` (TOML; anything wrong is one ``UserError`` line), ``Mapping.predictor()`` (one
  vector -> {output: value}).
- ``evaluate(mapping, sources)``: accuracy and balanced accuracy per class output, RMSE and
  Pearson r per regressed one, fit and prediction times.
- ``LearnedControls(mapping, sink)`` (``live.py``): the live sink: ``feed_emg(block, arrival, t)``
  from an armband's reader thread (``EmgControls.learned``), ``set_inputs({name: value}, now, t)``
  from a camera's (``CameraControls.learned``); it smooths the predictions and sends the changed
  outputs to ``sink(values, t)`` (``ControlHub.learned``); its ``listeners`` get every input vector
  (``recorder.add`` there records examples; ``Mapping(inputs, {})`` records before any fit).
- In a preset: ``[learn] mapping = "MAP.toml"``; the sensor whose inputs it reads plays through it.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from livegen.errors import UserError
from livegen.models.learners import evenly_kept
from livegen.sensors.learn.examples import ExampleRecorder, Source, examples_for, read_sources
from livegen.sensors.learn.mapping import (DEFAULT_MODEL, MODELS, EmgSettings, Examples, Mapping, Output,
                                           features, output_kind)

__all__ = ["EmgSettings", "ExampleRecorder", "Mapping", "Source", "evaluate", "fit_mapping", "read_sources"]


def fit_mapping(sources: list[Source], outputs: list[str] | None = None, model: str | None = None,
                settings: EmgSettings | None = None) -> Mapping:
    """A mapping fitted on the sources' examples, for ``outputs`` (None: every output they set),
    each with ``model`` (None: the one a mapping given as a source had, with its settings, else the
    default for its kind). The examples kept are at most as many
    as the model uses (evenly over classes and time), so the file stays small."""
    if not sources:
        raise UserError("no examples to learn from")
    if model is not None and model not in MODELS:
        raise UserError(f"--model {model!r} is not one of {', '.join(MODELS)}")
    names = outputs or list(dict.fromkeys(n for s in sources for n in s.outputs))
    settings = settings or EmgSettings()
    rotate = next((s.rotate for s in sources if s.rotate is not None), settings.rotate)
    mapping = Mapping(list(sources[0].inputs), {}, EmgSettings(settings.envelope, settings.window,
                                                               settings.smoothing, rotate))
    for name in names:
        kind = output_kind(name)
        x, y = examples_for(sources, name)
        before = next((s.settings[name] for s in sources if s.settings and name in s.settings), None)
        output = Output(name, model or DEFAULT_MODEL[kind]) if before is None else Output(
            name, model or before.model, before.knn, before.mlp, before.smoothing)
        limit = output.knn.max_examples if output.model == "knn" else output.mlp.max_examples
        keep = evenly_kept(y, kind, limit)
        output.examples = Examples(x[keep], y[keep])
        mapping.outputs[name] = output
    mapping.fit()
    return mapping


def evaluate(mapping: Mapping, sources: list[Source]) -> dict[str, dict]:
    """Per output: how its predictions on the sources' examples match, how long the model takes
    to fit on its own examples (fitted again to time it) and to predict one vector (median)."""
    if sources[0].inputs != mapping.inputs:
        raise UserError(f"the examples' inputs ({', '.join(sources[0].inputs)}) are not the mapping's "
                        f"({', '.join(mapping.inputs)}): mismatched input sizes")
    predict = mapping.predictor()
    report = {}
    for name, output in mapping.outputs.items():
        x, y = examples_for(sources, name)
        train_s = output.fit(mapping.inputs)
        predicted = output.learner.predict(features(mapping.inputs, x))
        timings = []
        for vector in x[np.linspace(0, len(x) - 1, min(len(x), 300)).astype(int)]:
            started = time.perf_counter()
            predict(vector)
            timings.append(time.perf_counter() - started)
        result: dict = {"n": int(len(y))}
        if output.kind == "classify":
            per_class = {str(c): {"recall": float(np.mean(predicted[y == c] == c)), "n": int(np.sum(y == c))}
                         for c in sorted(set(y.tolist()))}
            result.update(accuracy=float(np.mean(predicted == y)),
                          balanced_accuracy=float(np.mean([v["recall"] for v in per_class.values()])),
                          per_class=per_class)
        else:
            error = predicted.astype(np.float64) - y
            spread = float(np.std(predicted)) * float(np.std(y))
            r = float(np.mean((predicted - predicted.mean()) * (y - y.mean())) / spread) if spread > 0 else 0.0
            result.update(rmse=float(np.sqrt(np.mean(error ** 2))), pearson_r=r)
        result.update(train_ms=train_s * 1000.0, predict_us=statistics.median(timings) * 1e6)
        report[name] = result
    return report
