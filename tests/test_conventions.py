"""The command line's conventions: --version, -v/-q/--log-file, exit statuses, grouped help, ports
--json, MIDI clients named livegen, failing fast on bad paths, and training's parse progress."""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import mido
import pytest

from conftest import ROOT, livegen_cmd

NO_MIDI = {"JACK_DEFAULT_SERVER": "livegen-no-such-server", "JACK_NO_START_SERVER": "1"}
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} livegen\[\d+\]: "


def livegen(*args, env=None, timeout=120):
    return subprocess.run(livegen_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def loaded_after_main(*args) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``livegen ARGS`` run through ``main`` in a fresh interpreter, and which heavy libraries it loaded."""
    code = ("import sys\nfrom livegen.cli import main\ntry:\n    status = main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    status = exc.code\n"
            "print(' '.join(sorted({'numpy', 'torch'} & set(sys.modules))))\nsys.exit(status)\n")
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, **NO_MIDI))
    return run, run.stdout.splitlines()[-1].split() if run.stdout.strip() else []


def tiny_midi(path: Path, notes: int = 12) -> None:
    track = mido.MidiTrack()
    for i in range(notes):
        track += [mido.Message("note_on", note=60 + i % 12, velocity=80, time=0 if i == 0 else 120),
                  mido.Message("note_off", note=60 + i % 12, velocity=0, time=240)]
    mido.MidiFile(tracks=[track]).save(path)


def tiny_corpus(folder: Path, files: int = 3, notes: int = 80) -> Path:
    data = folder / "data"
    data.mkdir()
    for i in range(files):
        tiny_midi(data / f"{i}.mid", notes)
    return data


# --- --version ---------------------------------------------------------------------------------------

def test_version_prints_the_version_and_loads_no_numpy():
    run = livegen("--version")
    assert (run.returncode, run.stderr) == (0, "")
    import livegen as package

    assert re.fullmatch(r"livegen \d+\.\d+\.\d+\S*\n", run.stdout)
    assert run.stdout.split()[1] in (package.__version__, __import__("importlib.metadata").metadata.version("livegen"))
    run, heavy = loaded_after_main("--version")
    assert run.returncode == 0 and run.stdout.startswith("livegen ") and heavy == []


def test_the_package_version_is_the_projects():
    """``__version__`` is what --version falls back to outside an install: it must not drift."""
    import livegen as package

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert package.__version__ == project["version"]


# --- exit statuses ------------------------------------------------------------------------------------

def test_the_help_lists_the_exit_statuses_and_the_global_options():
    run = livegen("--help")
    assert run.returncode == 0
    statuses = {line.split()[0] for line in run.stdout.splitlines() if re.match(r"  (0|1|2|130) ", line)}
    assert statuses == {"0", "1", "2", "130"}
    for option in ("--version", "-v, --verbose", "-q, --quiet", "--log-file FILE"):
        assert option in run.stdout
    assert "docs/command-line.md" in run.stdout and (ROOT / "docs" / "command-line.md").is_file()


def test_ctrl_c_stops_a_performance_with_status_0_and_a_complete_recording(tmp_path, livegen_home):
    take = tmp_path / "take.mid"
    proc = subprocess.Popen(livegen_cmd("perform", "--no-port", "--record", str(take)), stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, **NO_MIDI))
    said = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            said.append(line)
            if not line or "performing on" in line:
                break
        assert "performing on" in said[-1], "".join(said)
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    said.append(rest)
    assert proc.returncode == 0, "".join(said)
    assert f"recorded {take}" in rest and "interrupted" not in rest and "Traceback" not in rest
    data = take.read_bytes()
    assert struct.unpack(">I", data[18:22])[0] == len(data) - 22  # the track's real length: closed, not repaired
    assert data.endswith(b"\xff\x2f\x00")
    on = off = 0
    for message in mido.MidiFile(take):
        on += message.type == "note_on" and message.velocity > 0
        off += message.type == "note_off" or (message.type == "note_on" and message.velocity == 0)
    assert on >= 3 and on == off  # every note ended
    assert not list((livegen_home / "state").rglob("*.json"))  # nothing left in the journal of unfinished takes


def test_ctrl_c_in_another_command_is_130(tmp_path):
    proc = subprocess.Popen(livegen_cmd("train", "charrnn", "--data", str(tiny_corpus(tmp_path)), "--minutes", "5",
                                        "--out", str(tmp_path / "m.safetensors"), "--batch", "4", "--seq-len", "32"),
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "corpus:" in line:
                break
        time.sleep(1.0)  # training
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "livegen: interrupted\n" in err and "Traceback" not in err, err


# --- -v, -q, --log-file -----------------------------------------------------------------------------

def test_quiet_verbose_and_the_log_file(tmp_path):
    log = tmp_path / "logs" / "booth.log"  # its folder is made
    quiet = livegen("-q", "perform", "--duration", "1", "--log-file", str(log), env=NO_MIDI)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ("livegen: warning: no MIDI system here (no ALSA sequencer, no JACK server) and no "
                            "--record: nothing is heard or recorded; give --record FILE or start a MIDI system\n")
    bad = livegen("perform", "--record", "/proc/nope/x.mid", "--log-file", str(log))
    assert bad.returncode == 2
    error = "error: --record /proc/nope/x.mid: cannot make the folder /proc/nope (No such file or directory)"
    assert bad.stderr == f"livegen: {error}\n"
    lines = log.read_text().splitlines()
    assert all(re.match(STAMP, line) for line in lines), lines
    texts = [re.sub(STAMP, "", line) for line in lines]
    assert texts[0].startswith("started: livegen -q perform --duration 1 --log-file")
    assert texts[1] == quiet.stderr.removeprefix("livegen: ").rstrip()  # the warning -q shows
    assert any(t.startswith("performing on") for t in texts) and any(t.startswith("sent ") for t in texts)
    assert re.fullmatch(r"ended: exit status 0 after \d+\.\d s", texts[-4])
    assert texts[-3].startswith("started: livegen perform --record /proc/nope/x.mid")
    assert texts[-2] == error  # the one-line user error, as on the terminal
    assert re.fullmatch(r"ended: exit status 2 after \d+\.\d s", texts[-1])

    verbose = livegen("perform", "--no-port", "--duration", "1", "-v")
    assert verbose.returncode == 0
    assert re.search(r"^livegen: model charrnn loaded in \d+\.\d s$", verbose.stderr, re.M), verbose.stderr
    assert "performing on" in verbose.stderr and "take: model charrnn" in verbose.stderr
    plain = livegen("perform", "--no-port", "--duration", "1")
    assert "performing on" in plain.stderr and "loaded in" not in plain.stderr


def test_messages_take_their_level_from_the_line(capsys):
    from livegen import messages

    try:
        messages.configure(-1)
        messages.say("performing on nowhere")
        messages.say("warning: a warning")
        messages.say("error: an error")
        messages.warn("a thread met an error and carries on")
        messages.debug("detail")
        assert capsys.readouterr().err == ("livegen: warning: a warning\nlivegen: error: an error\n"
                                           "livegen: a thread met an error and carries on\n")
        messages.configure(1)
        messages.debug("detail")
        messages.file_only("started: for the file alone")
        assert capsys.readouterr().err == "livegen: detail\n"
    finally:
        messages.reset()
    messages.say("performing on nowhere")
    messages.debug("detail")
    assert capsys.readouterr().err == "livegen: performing on nowhere\n"


def test_an_unwritable_log_file_is_a_user_error(tmp_path):
    run = livegen("--log-file", "/proc/nope/x.log", "paths")
    assert run.returncode == 2 and run.stderr.startswith("livegen: error: cannot write the --log-file /proc/nope")
    assert run.stdout == ""


# --- perform --help and comment --help ---------------------------------------------------------------

def subparser(name: str):
    from livegen.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[name]


def options(parser) -> dict:
    return {a.option_strings[-1]: a for a in parser._actions if a.option_strings}


def test_every_perform_flag_is_explained_in_groups():
    perform = subparser("perform")
    assert not [a.dest for a in perform._actions if not a.option_strings], "perform takes no positional argument"
    unexplained = [flag for flag, a in options(perform).items() if not (a.help or "").strip()]
    assert not unexplained
    titles = {g.title for g in perform._action_groups if g._group_actions}
    assert {"model", "output", "controls", "recording", "tempo", "network (OSC)", "messages"} <= titles
    assert perform.parse_args([]).seed is None and perform.parse_args(["--seed", "3"]).seed == 3
    from livegen.sensors import SOURCES

    controls = options(perform)["--controls"].help
    assert all(kind in controls for kind in SOURCES), controls
    run = livegen("perform", "--help")
    assert run.returncode == 0 and "\nnetwork (OSC):\n" in run.stdout and "usage: livegen perform [-h]" in run.stdout
    assert not re.search(r"\n {23}seed\n", run.stdout)


def test_comment_takes_the_performance_flags_for_live_only():
    comment, perform = options(subparser("comment")), options(subparser("perform"))
    assert not {"--osc", "--osc-host", "--osc-out"} & set(comment)  # perform's OSC control is perform's
    assert {"--record", "--port", "--model", "--duration", "--controls", "--bpm"} <= set(comment)
    assert set(comment) - {"--midi", "--live", "--n", "--no-lcgan", "--json", "--every-bars", "--window",
                           "--commentary-model"} <= set(perform)
    run = livegen("comment", "--midi", "x.mid", "--record", "y.mid", "--port", "synth")
    assert run.returncode == 2
    assert run.stderr == "livegen: error: --port, --record: for --live only; --midi describes a file\n"


# --- failing fast -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (("--record", "/proc/nope/x.mid"), "cannot make the folder /proc/nope"),
    (("--model", "/nonexistent/m.safetensors"), "checkpoint /nonexistent/m.safetensors does not exist"),
])
def test_bad_paths_fail_in_a_moment_before_numpy_loads(args, says):
    started = time.monotonic()
    run = livegen("perform", "--no-port", *args)
    took = time.monotonic() - started
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and says in run.stderr, run.stderr
    assert took < 3.0, f"{took:.1f} s"
    run, heavy = loaded_after_main("perform", "--no-port", *args)
    assert run.returncode == 2 and heavy == [], (run.stderr, heavy)


def test_a_bad_preset_fails_before_the_model_loads(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("[engine]\nlookahed = 0.2\n")
    run, heavy = loaded_after_main("perform", "--no-port", "--preset", str(preset))
    assert run.returncode == 2 and "engine.lookahed" in run.stderr and "torch" not in heavy


def test_record_makes_missing_folders_or_says_what_is_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("")
    for record, says in ((tmp_path / "afile" / "x.mid", f"{tmp_path / 'afile'} is a file, not a folder"),
                         (tmp_path, "is a folder: give a file in it")):
        run = livegen("perform", "--no-port", "--record", str(record))
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and says in run.stderr, run.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        run = livegen("perform", "--no-port", "--record", str(locked / "x.mid"))
        assert run.returncode == 2 and "permission denied" in run.stderr
    take = tmp_path / "new" / "dir" / "x.mid"
    run = livegen("perform", "--no-port", "--duration", "1", "--record", str(take))
    assert run.returncode == 0 and mido.MidiFile(take).length > 0, run.stderr


def test_without_midi_and_without_record_it_says_nothing_is_kept(tmp_path):
    run = livegen("perform", "--duration", "1", env=NO_MIDI)
    assert run.returncode == 0
    assert "no --record: nothing is heard or recorded" in run.stderr and "recording only" not in run.stderr
    run = livegen("perform", "--duration", "1", "--record", str(tmp_path / "t.mid"), env=NO_MIDI)
    assert "playing into the recording only" in run.stderr and "nothing is heard" not in run.stderr


# --- ports --json and the client name, on a real JACK server ------------------------------------------

def test_ports_json_lists_each_api_with_the_one_in_use(jack_server, receiver):
    run = livegen("ports", "--json")
    assert run.returncode == 0, run.stderr
    listing = json.loads(run.stdout)
    assert listing["api"] == "jack" and set(listing) == {"api", "apis"}
    assert set(listing["apis"]["jack"]) == {"outputs", "inputs"}
    assert [p for p in listing["apis"]["jack"]["outputs"] if p.endswith(f":{receiver.name}")]
    text = livegen("ports").stdout
    assert all(f"  {p}\n" in text for p in listing["apis"]["jack"]["outputs"])  # the same names as listed


def test_other_programs_see_livegen_by_its_name(jack_server, receiver, tmp_path):
    import rtmidi

    from livegen.midi.ports import RtMidiOutput

    port = RtMidiOutput("jack", receiver.name)
    observer = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="observer")
    try:
        time.sleep(0.3)  # JACK makes the connection in its next cycles
        port.send([0x90, 60, 90])
        assert "livegen:out" in observer.get_ports() and not [p for p in observer.get_ports() if "RtMidi" in p]
        deadline = time.monotonic() + 5
        while not receiver.notes() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [m.note for m in receiver.notes()] == [60]
    finally:
        port.close()
        observer.delete()
    proc = subprocess.Popen(livegen_cmd("perform", "--virtual", "booth-test", "--duration", "20"),
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "performing on" in line:
                break
        listing = json.loads(livegen("ports", "--json").stdout)
        assert "livegen:booth-test" in listing["apis"]["jack"]["inputs"], listing
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


# --- training's parse progress ------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_parsing_a_corpus_says_how_far_it_has_come(tmp_path, monkeypatch, workers):
    from livegen.music import corpus

    for i in range(3):
        tiny_midi(tmp_path / f"{i}.mid")
    monkeypatch.setattr(corpus, "PROGRESS_EVERY", 0.0)
    said = []
    assert len(corpus.load_corpus(tmp_path, workers=workers, log=said.append).pieces) == 3
    assert said[0] == f"parsing 3 music files in {tmp_path}"
    assert said[1:4] == ["parsed 1 of 3 files (33 %)", "parsed 2 of 3 files (66 %)", "parsed 3 of 3 files (100 %)"]
    assert re.fullmatch(r"parsed 3 files in \d+\.\d s", said[4]) and len(said) == 5


def test_train_shows_parse_progress_and_keeps_quiet_under_q(tmp_path):
    data = tiny_corpus(tmp_path)
    args = ("train", "charrnn", "--data", str(data), "--steps", "1", "--batch", "4", "--seq-len", "32")
    run = livegen(*args, "--out", str(tmp_path / "a.safetensors"), env={"LIVEGEN_HOME": str(tmp_path / "a")},
                  timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"livegen: parsing 3 music files in {data}\n" in run.stderr and "livegen: parsed 3 files in" in run.stderr
    quiet = livegen("-q", *args, "--out", str(tmp_path / "b.safetensors"), env={"LIVEGEN_HOME": str(tmp_path / "b")},
                    timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert (tmp_path / "b.safetensors").exists()


def test_no_module_hands_rtmidi_a_callback():
    """rtmidi runs a callback in JACK's real-time cycle, where Python waits for the interpreter lock
    and stalls every client on the server; livegen's inputs are read by a ``PolledReader``."""
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "livegen").rglob("*.py")
                 if ".set_callback(" in path.read_text()]
    assert offenders == []
