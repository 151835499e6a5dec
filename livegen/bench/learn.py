"""``livegen bench --parts learn``: how well learned mappings recognise gestures and follow a
paddle, on the real recordings.

- across sessions: each Myo readings session (another person) fitted, every other one tested,
  each calibrated on itself; kNN and the network against today's nearest-centroid recall
  (``Processor.gesture``, centroids from ``calibrate_from`` on the training session's levels).
- within a session: 5-fold by time blocks: each recording file cut into 5 contiguous blocks, fold
  i tests block i of every file and trains on the others (never neighbouring samples of one block
  on both sides).
- Neuro-Breakout: each file's earlier 70 % fitted, its later 30 % tested: the paddle position's
  Pearson r from the EMG.
Figures: accuracy and balanced accuracy (the mean of the per-class recalls: rest is over half of
the samples); fit time and median per-vector prediction time.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from livegen.sensors.emg.processing import Calibration, Gesture, Mapping as EmgMapping, Processor
from livegen.sensors.learn import EmgSettings, read_sources
from livegen.sensors.learn.examples import Source
from livegen.sensors.learn.mapping import Examples, Output, features

MODELS = ("knn", "mlp")
FOLDS = 5


def learn_bench(myo: str, breakout: str, log: Callable[[str], None] = print) -> dict:
    settings = EmgSettings()
    sessions = {p.name: read_sources(str(p), settings)[0] for p in sorted(Path(myo).iterdir()) if p.is_dir()}
    result: dict = {"across_sessions": [], "within_session": {}, "neuro_breakout": {}}
    for train, a in sessions.items():
        for test, b in sessions.items():
            if train == test:
                continue
            row = {"train": train, "test": test, "centroid": _score(b.outputs["theme"], _centroids(a, b))}
            for model in MODELS:
                row[model] = _fit_and_score(a.x, a.outputs["theme"], b.x, b.outputs["theme"], model, "theme")
            log(f"  {train} -> {test}: " + ", ".join(f"{k} {row[k]['balanced_accuracy']:.2f}"
                                                     for k in ("centroid", *MODELS)))
            result["across_sessions"].append(row)
    for name, s in sessions.items():
        folds = _time_blocks(s.lengths)
        scores = {k: [] for k in ("centroid", *MODELS)}
        for fold in range(FOLDS):
            test = folds == fold
            train_part = Source(s.inputs, s.x[~test], {"theme": s.outputs["theme"][~test]})
            test_part = Source(s.inputs, s.x[test], {"theme": s.outputs["theme"][test]})
            scores["centroid"].append(_score(test_part.outputs["theme"], _centroids(train_part, test_part)))
            for model in MODELS:
                scores[model].append(_fit_and_score(train_part.x, train_part.outputs["theme"], test_part.x,
                                                    test_part.outputs["theme"], model, "theme"))
        result["within_session"][name] = {k: _mean(v) for k, v in scores.items()}
        log(f"  {name}, 5 time-block folds: " + ", ".join(
            f"{k} {v['balanced_accuracy']:.2f}" for k, v in result["within_session"][name].items()))
    for path in sorted(Path(breakout).glob("*.csv")):
        s = read_sources(str(path), settings)[0]
        y = s.outputs["density"]
        cut = int(0.7 * len(y))
        result["neuro_breakout"][path.name] = {
            model: _fit_and_score(s.x[:cut], y[:cut], s.x[cut:], y[cut:], model, "density") for model in MODELS}
        log(f"  {path.name}: paddle r " + ", ".join(
            f"{m} {v['pearson_r']:.2f}" for m, v in result["neuro_breakout"][path.name].items()))
    return result


def _fit_and_score(x, y, test_x, test_y, model: str, output: str) -> dict:
    inputs = [f"emg{i}" for i in range(1, 9)]
    o = Output(output, model)
    o.examples = Examples(x, y)
    started = time.process_time()
    o.fit(inputs)
    fit_ms = (time.process_time() - started) * 1000
    predicted = o.learner.predict(features(inputs, test_x))
    one = features(inputs, test_x[:: max(1, len(test_x) // 200)])
    timings = []
    for row in one:
        started = time.perf_counter()
        o.learner.predict_one(row)
        timings.append(time.perf_counter() - started)
    score = _score(test_y, predicted) if o.kind == "classify" else {
        "pearson_r": float(np.corrcoef(predicted, test_y)[0, 1]) if np.std(predicted) > 0 else 0.0,
        "rmse": float(np.sqrt(np.mean((predicted - test_y) ** 2)))}
    return {**score, "fit_ms": fit_ms, "predict_us": statistics.median(timings) * 1e6}


def _centroids(train: Source, test: Source) -> np.ndarray:
    """Today's recall: mean levels per gesture on the training session, nearest centroid on the
    test session's levels (each session calibrated on itself, neither turned: levels as they come)."""
    x, y = np.roll(train.x, -train.rotate if train.rotate else 0, axis=1), train.outputs["theme"]
    test_x = np.roll(test.x, -test.rotate if test.rotate else 0, axis=1)
    gestures = {label: Gesture(x[y == label].mean(axis=0).tolist(), label) for label in sorted(set(y)) if label != "0"}
    calibration = Calibration([0.0] * 8, [1.0] * 8, gestures=gestures)
    processor = Processor(200.0, EmgMapping(), calibration)
    names = {"rest": "0", **{label: label for label in gestures}}
    return np.array([names[processor.gesture(levels)] for levels in test_x])


def _score(y: np.ndarray, predicted: np.ndarray) -> dict:
    recalls = [float(np.mean(predicted[y == c] == c)) for c in sorted(set(y.tolist()))]
    return {"accuracy": float(np.mean(predicted == y)), "balanced_accuracy": float(np.mean(recalls))}


def _time_blocks(lengths: list[int]) -> np.ndarray:
    """Fold number of each sample: every file cut into ``FOLDS`` contiguous blocks."""
    return np.concatenate([np.minimum(np.arange(n) * FOLDS // n, FOLDS - 1) for n in lengths])


def _mean(scores: list[dict]) -> dict:
    return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}


def report_rows(r: dict) -> list[str]:
    rows = []
    for row in r["across_sessions"]:
        rows.append(f"{'gestures, new person':<22} {row['train']} -> {row['test']}: balanced " + ", ".join(
            f"{k} {row[k]['balanced_accuracy']:.2f}" for k in ("centroid", *MODELS)))
    for name, v in r["within_session"].items():
        rows.append(f"{'gestures, same session':<22} {name} (5 time-block folds): balanced " + ", ".join(
            f"{k} {s['balanced_accuracy']:.2f}" for k, s in v.items()))
    for name, v in r["neuro_breakout"].items():
        rows.append(f"{'paddle from EMG':<22} {name}: Pearson r " + ", ".join(
            f"{m} {s['pearson_r']:.2f}" for m, s in v.items()))
    return rows
