"""Presets are data: the shipped default matches the code, and mistakes name their key."""
import subprocess

import mido
import pytest

from conftest import livegen_cmd
from livegen import presets
from livegen.errors import UserError


def test_shipped_default_preset_is_the_code_default():
    assert presets.load(None) == presets.Preset()


def test_save_load_round_trip(tmp_path):
    p = presets.Preset()
    p.output.port = 'My "Synth"'
    p.engine.lookahead = 0.5
    p.controls.key = "A minor"
    p.model.seed, p.output.soundfont, p.output.clock_out = 7, "/fonts/GM.sf2", "TR-8S"
    p.gui.gesture_source, p.gui.dcrnn_theme, p.gui.dcrnn_z = "script:/stage/sweep.jsonl", "B", [0.5] * 8
    p.gui.commentary, p.gui.comment_every, p.gui.comment_lcgan = False, 0, False
    p.engine.tempo_source, p.gui.osc_port, p.gui.osc_host, p.gui.osc_out = "clock:TR-8S", 9000, "0.0.0.0", "mixer:9001"
    presets.save(p, tmp_path / "mine.toml")
    assert presets.load(str(tmp_path / "mine.toml")) == p


def test_saving_over_a_preset_keeps_its_comments_and_layout(tmp_path):
    path = tmp_path / "stage.toml"
    path.write_text("# Friday's set: slow and low\n\n[engine]\nbpm = 90.0  # the band's tempo\n\n"
                    "[controls]\n# starts dark\npitch = 0.2\nkey = \"A minor\"\n")
    preset = presets.load(str(path))
    preset.engine.bpm, preset.controls.pitch = 96.0, 0.3
    presets.save(preset, path)
    text = path.read_text()
    assert text.startswith("# Friday's set: slow and low\n\n[engine]\nbpm = 96.0  # the band's tempo\n")
    assert "# starts dark\npitch = 0.3\n" in text
    assert presets.load(str(path)) == preset  # every other key written out, with its default


def test_a_new_preset_carries_the_shipped_defaults_comments(tmp_path):
    preset = presets.Preset()
    preset.gui.booth = True
    presets.save(preset, tmp_path / "booth.toml")
    text = (tmp_path / "booth.toml").read_text()
    shipped = presets.DEFAULT.read_text()
    assert text == shipped.replace("booth = false", "booth = true")
    presets.save(presets.Preset(), tmp_path / "same.toml")
    assert (tmp_path / "same.toml").read_text() == shipped  # the defaults, written out: the shipped file


def test_saving_over_a_broken_file_replaces_it(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[engine\nbpm = \n")
    presets.save(presets.Preset(), path)
    assert presets.load(str(path)) == presets.Preset()


def test_the_shipped_presets_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./presets here: the package's own
    assert presets.find("default") == presets.DEFAULT
    assert presets.DEFAULT.parent == presets.SHIPPED_PRESETS and presets.SHIPPED_PRESETS.parent.name == "livegen"


@pytest.mark.parametrize("text,fragment", [
    ("[engine]\nlookahed = 0.2\n", "engine.lookahed is unknown"),
    ("[engine]\nlookahead = 'fast'\n", "engine.lookahead must be float"),
    ("[engine]\nsteering = 1\n", "engine.steering must be bool"),
    ("[output]\nchannel = 17\n", "output.channel must be 1..16"),
    ("[stage]\nlights = true\n", "unknown section [stage]"),
    ("[engine\n", "not valid TOML"),
    ("[model]\nseed = -1\n", "model.seed must be in 0..2147483647"),
    ("[gui]\ngesture_source = 'webcam'\n", "gui.gesture_source 'webcam' is not pad, camera or script:PATH"),
    ("[gui]\ngesture_source = 'script:'\n", "gui.gesture_source 'script:' is not pad"),
    ("[gui]\ndcrnn_z = [2, 0, 0, 0, 0, 0, 0, 0]\n", "gui.dcrnn_z must be [] or 8 numbers in -1..1"),
    ("[gui]\ndcrnn_theme = ''\n", "gui.dcrnn_theme must be a theme name"),
    ("[gui]\ncomment_every = 100\n", "gui.comment_every must be 0..64 bars"),
    ("[gui]\ncomment_lcgan = 'yes'\n", "gui.comment_lcgan must be bool"),
    ("[emg]\nsource = ' '\n", "emg.source must name an armband"),
    ("[engine]\ntempo_source = 'midi'\n", "engine.tempo_source 'midi' is not internal, clock:PORT, link or player"),
    ("[engine]\ntempo_source = 'clock:'\n", "engine.tempo_source 'clock:' is not internal"),
    ("[engine]\ntiming = 'swing'\n", "engine.timing 'swing' is not grid or free"),
    ("[gui]\nosc_port = 70000\n", "gui.osc_port must be 0 (off) or a UDP port"),
    ("[gui]\nosc_out = 'mixer'\n", "gui.osc_out 'mixer' is not HOST:PORT"),
])
def test_mistakes_name_the_key(text, fragment):
    with pytest.raises(UserError) as err:
        presets.parse(text)
    assert fragment in str(err.value)


def test_the_timing_reaches_the_engine_and_defaults_to_the_grid():
    from livegen.take.spec import TakeSpec

    assert TakeSpec.from_preset(presets.Preset()).settings.timing == "grid"
    assert TakeSpec.from_preset(presets.parse("[engine]\ntiming = 'free'\n")).settings.timing == "free"


def test_integers_are_accepted_where_floats_are_expected():
    assert presets.parse("[controls]\npitch = 1\n").controls.pitch == 1.0


def test_unknown_preset_name():
    with pytest.raises(UserError, match="not found"):
        presets.load("no-such-preset")


def test_perform_takes_the_seed_from_the_preset_and_the_flag_overrides_it(tmp_path):
    """The keys the panel saves drive `perform` too."""
    def take(preset_text, *flags):
        out = tmp_path / f"take{len(list(tmp_path.glob('take*.mid')))}.mid"
        run = subprocess.run(livegen_cmd("perform", "--no-port", "--preset", str(_write(tmp_path, preset_text)),
                                         "--duration", "3", "--record", str(out), *flags),
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return [m.bytes() for m in mido.MidiFile(out) if not m.is_meta]

    assert take("[model]\nseed = 4\n") == take("", "--seed", "4") != take("", "--seed", "5")
    assert take("[model]\nseed = 4\n", "--seed", "5") == take("", "--seed", "5")


def test_perform_sends_clock_to_the_presets_clock_out_port(jack_server, tmp_path):
    preset = _write(tmp_path, '[output]\nclock_out = "no-such-clock-port"\n')
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--preset", str(preset), "--duration", "1"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no-such-clock-port" in run.stderr and "Traceback" not in run.stderr


def _write(folder, text):
    path = folder / "p.toml"
    path.write_text(text)
    return path
