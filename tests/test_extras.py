"""A missing optional library is one line that names the extra to install, and exit status 2.

Each command runs in a fresh interpreter in which one library cannot be imported
(``sys.modules[name] = None``: Python refuses the import, and ``find_spec`` finds nothing), as in
an install without that extra."""
import re
import subprocess
import sys
import tomllib

import mido
import pytest

from conftest import ROOT
from livegen import extras
from livegen.errors import UserError


def livegen_without(module: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from livegen.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def a_midi_file(path):
    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track += [mido.Message("note_on", note=60, velocity=90), mido.Message("note_off", note=60, time=480)]
    mid.save(path)
    return path


@pytest.fixture
def replay_file(tmp_path):
    path = tmp_path / "emg.csv"
    path.write_text("".join(f"{i % 7},{-i % 5},3,4,5,6,7,8\n" for i in range(50)))
    return path


def cases(tmp_path, replay_file):
    """(module made missing, command, the line livegen must print)."""
    model = str(ROOT / "livegen" / "models" / "charrnn-pop909.safetensors")
    return [
        ("PyQt6", ("gui", "--screenshot", str(tmp_path / "p.png")), "the panel needs PyQt6: pip install 'livegen[gui]'"),
        ("cv2", ("track", "--source", "0", "--duration", "1"),
         "camera tracking needs OpenCV: pip install 'livegen[camera]'"),
        ("scipy", ("emg", "--source", f"replay:{replay_file}", "--duration", "1"),
         "EMG source 'replay' needs SciPy: pip install 'livegen[emg]'"),
        ("serial", ("emg", "--source", "serial:/dev/ttyUSB0,115200,csv", "--duration", "1"),
         "EMG source 'serial' needs pyserial: pip install 'livegen[emg]'"),
        ("bleak", ("emg", "--source", "myo", "--duration", "1"), "EMG source 'myo' needs bleak: pip install 'livegen[emg]'"),
        ("fluidsynth", ("render", str(a_midi_file(tmp_path / "t.mid")), str(tmp_path / "t.wav")),
         "the built-in synth needs pyfluidsynth: pip install 'livegen[synth]'"),
        ("torch", ("train", "charrnn", "--data", str(tmp_path), "--out", str(tmp_path / "m.safetensors")),
         "livegen train needs PyTorch: pip install 'livegen[train]'"),
        ("torch", ("eval", model, "--data", str(tmp_path)), "livegen eval needs PyTorch: pip install 'livegen[train]'"),
        ("tqdm", ("prepare", "--data", str(tmp_path), "--out", str(tmp_path / "shards")),
         "livegen prepare needs tqdm: pip install 'livegen[train]'"),
    ]


def test_each_missing_extra_is_one_line_naming_it(tmp_path, replay_file):
    for module, args, line in cases(tmp_path, replay_file):
        run = livegen_without(module, *args, cwd=tmp_path)
        assert (run.returncode, run.stderr) == (2, f"livegen: error: {line}\n"), (module, args, run.stderr)


def test_the_same_commands_get_past_the_check_with_the_library_there(tmp_path, replay_file):
    """What the test above sees is the missing library, not a command that fails anyway."""
    for module, args, line in cases(tmp_path, replay_file)[1:3]:
        run = livegen_without("no_such_module", *args, cwd=tmp_path)
        assert line not in run.stderr, (args, run.stderr)


def test_needed_names_the_extra_and_lets_other_errors_through(monkeypatch):
    monkeypatch.setitem(sys.modules, "music21", None)
    from livegen.music.corpus import read_music21

    with pytest.raises(UserError, match=re.escape("reading kern, ABC and MusicXML needs music21: "
                                                  "pip install 'livegen[train]'")):
        read_music21("tune.abc")
    with pytest.raises(ModuleNotFoundError):  # not a library of this extra: a bug, shown as one
        with extras.needed("gui", "the panel"):
            import livegen_no_such_module  # noqa: F401  # the import this test makes fail
    with pytest.raises(UserError, match=r"^Ableton Link cannot load LinkPython-extern \(no libfoo\): apt-get x$"):
        with extras.needed("link", "Ableton Link", broken="apt-get x"):
            raise ImportError("no libfoo", name="link")


def test_the_extras_table_matches_pyproject():
    """Each extra the code names is one pyproject.toml declares, and [all] holds every role."""
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(optional)
    roles = set(extras.EXTRAS) - {"mediapipe"}
    assert optional["all"] == [f"livegen[{','.join(sorted(roles, key=list(extras.EXTRAS).index))}]"]
    assert "livegen[all]" in optional["dev"]
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    heavy = {"torch", "PyQt6", "opencv-python-headless", "scipy", "music21", "bleak", "pyfluidsynth"}
    assert not {re.split(r"[<>=!~\[ ]", d)[0] for d in core} & heavy
