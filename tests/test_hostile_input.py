"""Hostile input (absurdly nested, non-finite, oversized, not text, not ours) and Ctrl-C at any moment:
one clear line and a non-zero exit, never a traceback."""
import dataclasses
import json
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livegen import presets, sessions
from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.charrnn import CharRNNConfig
from livegen.models.nets.charrnn import CharRNN
from livegen.music.control_stream import read_stream
from test_cli import livegen, one_line_error

DEEP = 50000


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- control scripts and sessions ----------------------------------------------------------------

@pytest.mark.parametrize("line,fragment", [
    ('{"t": 0, "z": ' + _deep_json(DEEP) + '}', "line 1: longer than 64 KiB"),
    ('{"t": 0, "z": ' + _deep_json(20000) + '}', "line 1: nested deeper than 8 levels"),  # past the parser's stack
    ('{"t": 0, "z": ' + _deep_json(12) + '}', "line 1: nested deeper than 8 levels"),
    ('{"t": 0, "pitch": NaN}', "line 1: pitch must be a finite number"),
    ('{"t": 0, "z": [0, -Infinity]}', "line 1: z[1] must be a finite number"),
    ('{"t": 1e999}', "line 1: t must be a finite number"),
    ('{"t": 0, "bpm": ' + "9" * 400 + '}', "line 1: bpm must be a finite number"),
    ('{"t": ' + "1" * 5000 + '}', "line 1: not JSON"),
    ('{"livegen": "session", "temperature": Infinity}', "line 1: temperature must be a finite number"),
])
def test_hostile_script_lines_are_one_error_naming_file_and_line(tmp_path, line, fragment):
    script = tmp_path / "s.jsonl"
    script.write_text(line + "\n" + '{"t": 0}\n')
    with pytest.raises(UserError) as err:
        read_stream(str(script))
    assert f"control script {script} {fragment}" in str(err.value)
    assert len(str(err.value)) < 300


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                               st.sampled_from(sorted(("t", "pitch", "density", "z", "histogram", "key", "theme",
                                                       "toward", "mix", "bpm", "end", "livegen", "x"))),
                               inner, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=60)), max_size=6))
def test_any_control_script_is_read_or_refused_with_a_user_error(lines):
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "fuzz.jsonl"
        script.write_text("\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n",
                          encoding="utf-8", errors="surrogatepass")
        try:
            header, rows = read_stream(str(script))
        except UserError as exc:
            assert "\n" not in str(exc)
        else:
            json.dumps([header, rows], allow_nan=False)  # every number it lets through is finite


@pytest.mark.parametrize("header,fragment", [
    ({"seed": "three"}, "header key seed cannot be str"),
    ({"bpm": [120]}, "header key bpm cannot be list"),
    ({"layers": [{"model": "dcrnn"}]}, "header key layers[0] must be an object with a model and a channel"),
    ({"layers": [{"model": "dcrnn", "channel": 2, "temperature": "hot"}]}, "header key layers[0].temperature"),
])
def test_a_session_header_of_the_wrong_types_is_one_error_and_not_listed(tmp_path, header, fragment):
    take = tmp_path / "take.jsonl"
    take.write_text(json.dumps({"livegen": "session", "version": 1, **header}) + '\n{"t": 0, "pitch": 0.5}\n')
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        sessions.read_take(take)
    assert sessions.list_sessions(tmp_path) == []


# --- presets -------------------------------------------------------------------------------------

SECTIONS = {"model": presets.ModelPreset, "output": presets.OutputPreset, "engine": presets.EnginePreset,
            "controls": presets.ControlsPreset, "camera": presets.CameraPreset, "gui": presets.GuiPreset,
            "emg": presets.EmgPreset}
FLOAT_KEYS = [(section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
              if type(getattr(cls(), f.name)) is float]


@pytest.mark.parametrize("section,key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_every_non_finite_number_in_a_preset_names_its_key(section, key, value):
    with pytest.raises(UserError, match=rf"^preset: {section}\.{key} must be a finite number$"):
        presets.parse(f"[{section}]\n{key} = {value}\n")


@pytest.mark.parametrize("text,fragment", [
    ("[camera]\nregion = [0, nan, 1, 1]\n", "camera.region[1] must be a finite number"),
    ("[gui]\ndcrnn_z = [0, 0, 0, 0, 0, 0, 0, inf]\n", "gui.dcrnn_z[7] must be a finite number"),
    ("[[layers]]\ntemperature = nan\n", "layers[0].temperature must be a finite number"),
    ("[engine]\nexternal_z = " + _deep_json(5000) + "\n", "nested deeper than 8 levels"),
    ("[engine]\nexternal_z = " + _deep_json(9) + "\n", "nested deeper than 8 levels"),
    ("[model]\nseed = " + "1" * 5000 + "\n", "not valid TOML"),
])
def test_hostile_preset_values_are_one_error(text, fragment):
    with pytest.raises(UserError) as err:
        presets.parse(text, "preset p.toml")
    assert str(err.value).startswith(f"preset p.toml: {fragment}")
    assert "\n" not in str(err.value)


def _write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_preset_files_that_are_not_presets_are_one_error(tmp_path):
    with pytest.raises(UserError, match="is not UTF-8 text"):
        presets.load(str(_write(tmp_path, "latin.toml", "[output]\nport = 'Synthé'\n".encode("latin-1"))))
    with pytest.raises(UserError, match="is over 256 KiB"):
        presets.load(str(_write(tmp_path, "huge.toml", b"# " + b"x" * 300_000 + b"\n")))
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(UserError, match="is not a file"):
        presets.load(str(tmp_path / "folder.toml"))
    with pytest.raises(UserError, match="cannot be looked up"):
        presets.load("x" * 300)
    with pytest.raises(UserError, match="cannot be looked up"):
        presets.load("x" * 300 + ".toml")


@pytest.mark.parametrize("name", ["x" * 65, "../secrets", "a/b", "/etc/passwd", ".hidden", "", "tab\there"])
def test_check_name_refuses_what_is_not_a_preset_name(name):
    with pytest.raises(UserError, match="is not a preset name"):
        presets.check_name(name)


def test_check_name_takes_the_shipped_names():
    shipped = list(presets.SHIPPED_PRESETS.glob("*.toml"))
    assert shipped
    for path in shipped:
        assert presets.check_name(path.stem) == path.stem


TOML_SCALARS = st.one_of(st.integers(-10**20, 10**20).map(str), st.sampled_from(["true", "false"]),
                         st.floats().map(repr),
                         st.sampled_from(["nan", "-inf", "1e999", "0x10", "1979-05-27"]),
                         st.text(max_size=12).map(json.dumps))
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.lists(inner, max_size=4).map(
    lambda items: "[" + ", ".join(items) + "]"), max_leaves=12)
TABLE_KEYS = sorted((name, f.name) for name, cls in [*SECTIONS.items(), ("[layers]", presets.LayerPreset)]
                    for f in dataclasses.fields(cls))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.tuples(st.sampled_from(TABLE_KEYS), TOML_VALUES), min_size=1, max_size=3,
                     unique_by=lambda kv: kv[0][0]))
def test_any_value_under_any_preset_key_is_read_or_refused_with_a_user_error(keys):
    text = "".join(f"[{section}]\n{key} = {value}\n" for (section, key), value in keys)
    try:
        preset = presets.parse(text)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        json.dumps(dataclasses.asdict(preset), allow_nan=False)  # every number it lets through is finite


# --- checkpoints ---------------------------------------------------------------------------------

# every checkpoint check holds for both loaders: the torch module (training, eval) and the live runtime
each_loader = pytest.mark.parametrize("load", [checkpoint.load, checkpoint.load_live], ids=("torch", "live"))

def _safetensors(tmp_path, livegen_header: str, name="meta.safetensors") -> Path:
    header = json.dumps({"__metadata__": {"livegen": livegen_header}}).encode()
    return _write(tmp_path, name, struct.pack("<Q", len(header)) + header)


GOOD_META = {"format": checkpoint.FORMAT, "kind": "charrnn", "config": {}, "vocabulary": [], "conditioning": {},
             "extra": {}}


@pytest.mark.parametrize("header,fragment", [
    ("[1, 2]", "its livegen header is a JSON list, not an object"),
    ('"charrnn"', "its livegen header is a JSON str, not an object"),
    ("null", "its livegen header is a JSON NoneType, not an object"),
    ("42", "its livegen header is a JSON int, not an object"),
    ("{not json", "its livegen header: not JSON"),
    (_deep_json(DEEP), "its livegen header: nested deeper than 8 levels"),
    (json.dumps({**GOOD_META, "config": {"hidden": float("nan")}}),
     "its livegen header: config.hidden must be a finite number"),
    ("{}", "its livegen header has no format"),
    (json.dumps({**GOOD_META, "kind": 3}), "its livegen header has a kind of the wrong type (int)"),
    (json.dumps({**GOOD_META, "config": [1]}), "its livegen header has a config of the wrong type (list)"),
    (json.dumps({**GOOD_META, "extra": None}), "its livegen header has a extra of the wrong type (NoneType)"),
])
@each_loader
def test_a_livegen_header_of_the_wrong_shape_is_not_a_livegen_checkpoint(tmp_path, header, fragment, load):
    path = _safetensors(tmp_path, header)
    with pytest.raises(UserError) as err:
        load(path)
    assert str(err.value).startswith(f"{path} is not a livegen checkpoint: {fragment}")


@each_loader
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(tmp_path, value, load):
    model = CharRNN(CharRNNConfig(embed_dim=8, hidden=8, layers=1))
    with torch.no_grad():
        model.head.weight[3, 2] = value
    path = tmp_path / "diverged.safetensors"
    checkpoint.save(path, model)
    with pytest.raises(UserError, match=r"weight 'head.weight' holds NaN or infinite values"):
        load(path)


@each_loader
def test_training_state_may_hold_infinity(tmp_path, load):
    """A best loss not yet set is infinite; only the config has to be finite."""
    path = tmp_path / "m.safetensors"
    model = CharRNN(CharRNNConfig(embed_dim=8, hidden=8, layers=1))
    checkpoint.save(path, model, {"train": {"best_val": float("inf")}})
    assert load(path)[1]["extra"]["train"]["best_val"] == float("inf")


@each_loader
def test_a_checkpoint_cut_after_its_header_is_one_error(tmp_path, load):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, CharRNN(CharRNNConfig(embed_dim=8, hidden=8, layers=1)))
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for cut in (8 + n, 8 + n + 16, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(UserError, match="not a readable safetensors file"):
            load(path)


# --- the command line ----------------------------------------------------------------------------

def test_hostile_inputs_to_perform_are_one_line_and_a_non_zero_exit(tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"t": 0, "z": ' + _deep_json(DEEP) + '}\n')
    one_line_error(livegen("perform", "--no-port", "--duration", "3", "--controls", f"script:{deep}"),
                   f"control script {deep} line 1")
    nan = _write(tmp_path, "nan.toml", b"[controls]\npitch = nan\n")
    one_line_error(livegen("perform", "--no-port", "--duration", "3", "--preset", str(nan)),
                   f"preset {nan}: controls.pitch must be a finite number")
    meta = _safetensors(tmp_path, "[1, 2]")
    one_line_error(livegen("perform", "--no-port", "--duration", "3", "--model", str(meta)),
                   f"{meta} is not a livegen checkpoint")


# --- Ctrl-C --------------------------------------------------------------------------------------

ENTRY_POINT = Path(sys.executable).with_name("livegen")
PERFORM = ["perform", "--no-port", "--duration", "30"]


def _interrupted(run_stderr: str, returncode: int, when: str, started: bool) -> None:
    # a take that plays is stopped by Ctrl-C, perform's way to stop (0); before it plays (a Ctrl-C
    # while the take starts may still let it log its start) livegen says it was interrupted (130)
    interrupted = not started or "livegen: interrupted" in run_stderr
    assert returncode == (130 if interrupted else 0), f"Ctrl-C {when}: exit {returncode}: {run_stderr}"
    assert "Traceback" not in run_stderr, f"Ctrl-C {when}: {run_stderr}"
    if not started:
        assert len(run_stderr.strip().splitlines()) <= 1, f"Ctrl-C {when}: {run_stderr}"


def test_ctrl_c_escaping_while_livegen_loads_is_one_line_and_130():
    run = subprocess.run([sys.executable, "-c", "import livegen.cli; raise KeyboardInterrupt"],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr, run.stdout) == (130, "livegen: interrupted\n", "")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ctrl_c_at_a_random_instant_of_importing_and_parsing_is_quiet(seed):
    """The signal comes from inside, timed from just before ``livegen.cli`` is imported."""
    delay = random.Random(seed).uniform(0.002, 0.5)
    code = ("import os, signal, sys, threading, time\n"
            f"threading.Thread(target=lambda: (time.sleep({delay}), os.kill(os.getpid(), signal.SIGINT)),"
            " daemon=True).start()\n"
            "from livegen.cli import main\n"
            f"sys.exit(main({PERFORM!r}))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    _interrupted(run.stderr, run.returncode, f"{delay:.3f} s in", "performing on" in run.stderr)


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not ENTRY_POINT.exists() or not Path("/proc/self/maps").exists(),
                    reason="needs the installed livegen command and /proc")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ctrl_c_at_a_random_early_instant_of_the_livegen_command_is_quiet(seed):
    """From the moment it has started loading its libraries (numpy) through model loading."""
    delay = random.Random(seed).uniform(0.0, 1.5)
    proc = subprocess.Popen([str(ENTRY_POINT), *PERFORM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _loaded(proc.pid, "numpy") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    _interrupted(err + out, proc.returncode, f"{delay:.3f} s after numpy loaded", "performing on" in err)


def test_main_hands_uncaught_exceptions_back_to_the_hook_there_was():
    """Only loading livegen needs the quiet Ctrl-C hook; the panel's Qt relies on its own."""
    from livegen import cli

    assert cli.main(["perform", "--no-port", "--duration", "-1"]) == 2
    assert sys.excepthook is not cli._interrupted_before_main


def test_ctrl_c_inside_a_callback_python_cannot_raise_from_still_ends_livegen_quietly():
    """As when it lands in importlib's module-lock weakref callback while modules load."""
    code = ("import weakref, time\n"
            "import livegen.cli\n"
            "class Lock: pass\n"
            "def callback(_): raise KeyboardInterrupt\n"
            "lock = Lock()\n"
            "ref = weakref.ref(lock, callback)\n"
            "del lock\n"
            "time.sleep(3)\n"
            "print('played on')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr, run.stdout) == (130, "livegen: interrupted\n", "")
