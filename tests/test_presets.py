"""Presets are data: the shipped default matches the code, and mistakes name their key."""
import pytest

from livegen import presets
from livegen.errors import UserError


def test_shipped_default_preset_is_the_code_default():
    assert presets.load(None) == presets.Preset()


def test_save_load_round_trip(tmp_path):
    p = presets.Preset()
    p.output.port = 'My "Synth"'
    p.engine.lookahead = 0.5
    p.controls.key = "A minor"
    presets.save(p, tmp_path / "mine.toml")
    assert presets.load(str(tmp_path / "mine.toml")) == p


@pytest.mark.parametrize("text,fragment", [
    ("[engine]\nlookahed = 0.2\n", "engine.lookahed is unknown"),
    ("[engine]\nlookahead = 'fast'\n", "engine.lookahead must be float"),
    ("[engine]\nsteering = 1\n", "engine.steering must be bool"),
    ("[output]\nchannel = 17\n", "output.channel must be 1..16"),
    ("[stage]\nlights = true\n", "unknown section [stage]"),
    ("[engine\n", "not valid TOML"),
])
def test_mistakes_name_the_key(text, fragment):
    with pytest.raises(UserError) as err:
        presets.parse(text)
    assert fragment in str(err.value)


def test_integers_are_accepted_where_floats_are_expected():
    assert presets.parse("[controls]\npitch = 1\n").controls.pitch == 1.0


def test_unknown_preset_name():
    with pytest.raises(UserError, match="not found"):
        presets.load("no-such-preset")


def test_the_default_preset_file_spells_out_the_built_in_defaults():
    """An installed livegen without the project's presets/ folder plays the built-in defaults."""
    from livegen.presets import REPO_PRESETS

    path = REPO_PRESETS / "default.toml"
    assert presets.parse(path.read_text(), str(path)) == presets.Preset()
