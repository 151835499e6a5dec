"""``livegen learn fit`` and ``livegen learn eval``: the public contract (JSON keys, exit
statuses, one line for each bad input) and, on the real Myo readings, a session never seen."""
from __future__ import annotations

import json
import subprocess
from tempfile import TemporaryDirectory

import pytest

from conftest import livegen_cmd, shared_data
from emg_sessions import write_session

CLASS_KEYS = {"n", "accuracy", "balanced_accuracy", "per_class", "train_ms", "predict_us"}
REGRESSION_KEYS = {"n", "rmse", "pearson_r", "train_ms", "predict_us"}


def learn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(livegen_cmd("learn", *args), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    return write_session(root / "a", seed=1), write_session(root / "b", seed=2, turn=2)


@pytest.mark.parametrize("model", ["knn", "mlp"])
def test_fit_then_eval_prints_the_class_contract(sessions, tmp_path, model):
    mapping = tmp_path / "map.toml"
    fit = learn("fit", "--examples", str(sessions[0]), "--out", str(mapping), "--model", model)
    assert fit.returncode == 0, fit.stderr
    run = learn("eval", str(mapping), "--examples", str(sessions[1]), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report) == CLASS_KEYS and set(report["per_class"]) == {str(c) for c in range(8)}
    assert all(set(c) == {"recall", "n"} for c in report["per_class"].values())
    assert report["balanced_accuracy"] > 0.7 and report["n"] == sum(c["n"] for c in report["per_class"].values())
    words = learn("eval", str(mapping), "--examples", str(sessions[1]))
    assert words.returncode == 0 and "balanced" in words.stderr + words.stdout
    again = tmp_path / "again.toml"  # fitted anew on the examples the mapping holds
    assert learn("fit", "--examples", str(mapping), "--out", str(again)).returncode == 0
    assert json.loads(learn("eval", str(again), "--examples", str(sessions[1]), "--json").stdout) \
        | {"train_ms": 0, "predict_us": 0} == report | {"train_ms": 0, "predict_us": 0}


def test_a_regression_from_an_examples_file(tmp_path):
    examples = tmp_path / "examples.csv"
    rows = [f"1,{i / 100},{(i % 7) / 10},{0.2 + 0.6 * i / 100}" for i in range(100)]
    examples.write_text("take,hand_x,hand_y,density\n" + "\n".join(rows) + "\n")
    mapping = tmp_path / "map.toml"
    assert learn("fit", "--examples", str(examples), "--out", str(mapping)).returncode == 0
    report = json.loads(learn("eval", str(mapping), "--examples", str(examples), "--json").stdout)
    assert set(report) == REGRESSION_KEYS and report["pearson_r"] > 0.95 and report["rmse"] < 0.05


def _one_line_error(run: subprocess.CompletedProcess, *words: str) -> None:
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert all(w in run.stderr for w in words), run.stderr


def test_bad_inputs_are_one_line_and_exit_status_2(sessions, tmp_path):
    out = str(tmp_path / "map.toml")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(learn("fit", "--examples", str(empty), "--out", out), "no <label>.txt")
    _one_line_error(learn("fit", "--examples", ",", "--out", out), "names no source")
    one_class = write_session(tmp_path / "rest-only", labels=[0])
    _one_line_error(learn("fit", "--examples", str(one_class), "--out", out), "one class only")
    hand = tmp_path / "hand.csv"
    hand.write_text("take,hand_x,theme\n1,0.1,A\n1,0.9,B\n")
    _one_line_error(learn("fit", "--examples", f"{sessions[0]},{hand}", "--out", out), "mismatched input sizes")
    _one_line_error(learn("fit", "--examples", str(tmp_path / "nowhere"), "--out", out), "do not exist")
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "1.txt").write_bytes(b"\xff\xfe\x00\x81 not text")
    _one_line_error(learn("fit", "--examples", str(unreadable), "--out", out), "cannot read", "1.txt")
    assert learn("fit", "--examples", str(sessions[0]), "--out", out).returncode == 0
    _one_line_error(learn("eval", out, "--examples", str(hand), "--json"), "mismatched input sizes")
    broken = tmp_path / "broken.toml"
    broken.write_text((tmp_path / "map.toml").read_text().replace("version = 1", "version = [", 1))
    _one_line_error(learn("eval", str(broken), "--examples", str(sessions[1])), "not valid TOML")
    _one_line_error(learn("fit", "--examples", str(sessions[0]), "--out", out, "--output", "density"),
                    "classes")


def test_a_gesture_mapping_recognises_a_session_of_another_person():
    myo = shared_data("emg", "myo-readings")
    with TemporaryDirectory() as folder:
        mapping = f"{folder}/map.toml"
        assert learn("fit", "--examples", str(myo / "12345-1"), "--out", mapping).returncode == 0
        run = learn("eval", mapping, "--examples", str(myo / "45612-1"), "--json")
    report = json.loads(run.stdout)
    assert report["balanced_accuracy"] >= 0.45 and report["n"] > 90000  # chance is 0.125
    assert report["train_ms"] <= 1000 and report["predict_us"] <= 100
