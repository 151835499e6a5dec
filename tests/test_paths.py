"""One root for the user's files: ``livegen.paths``, ``LIVEGEN_HOME`` and ``livegen paths``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import livegen_cmd
from livegen import paths

XDG = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_MUSIC_DIR")


def printed(run: subprocess.CompletedProcess) -> dict[str, Path]:
    assert run.returncode == 0, run.stderr
    return {name: Path(path) for name, path in (line.split(": ", 1) for line in run.stdout.splitlines())}


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_the_tests_never_reach_the_real_home(livegen_home):
    assert os.environ["LIVEGEN_HOME"] == str(livegen_home)
    real = Path.home()
    for name, path in paths.all_paths().items():
        assert path.is_relative_to(livegen_home) and not path.is_relative_to(real / ".config"), name


def test_livegen_home_puts_every_path_under_it(tmp_path, monkeypatch):
    home = tmp_path / "stage"
    monkeypatch.setenv("LIVEGEN_HOME", str(home))
    for name in XDG:  # the override wins over the platform's folders
        monkeypatch.setenv(name, str(tmp_path / "xdg" / name))
    assert (paths.config_dir(), paths.state_dir(), paths.cache_dir(), paths.takes_dir()) == (
        home / "config", home / "state", home / "cache", home / "takes")
    assert paths.presets_dir() == home / "config" / "presets"
    assert paths.emg_profiles_dir() == home / "config" / "emg"
    assert paths.camera_preset() == home / "config" / "presets" / "camera.toml"
    assert paths.journal_dir() == home / "state" / "unfinished-takes"
    assert all(path.is_relative_to(home) for path in paths.all_paths().values())


def test_livegen_home_is_read_when_asked_not_at_import(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVEGEN_HOME", str(tmp_path / "one"))
    first = paths.all_paths()
    monkeypatch.setenv("LIVEGEN_HOME", str(tmp_path / "two"))
    assert all(path.is_relative_to(tmp_path / "two") for path in paths.all_paths().values()) and first != paths.all_paths()


def test_livegen_home_may_start_with_a_tilde_and_empty_means_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LIVEGEN_HOME", "~/livegen-stage")
    assert paths.config_dir() == tmp_path / "livegen-stage" / "config"
    monkeypatch.setenv("LIVEGEN_HOME", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert paths.home() is None
    if sys.platform.startswith("linux"):
        assert paths.config_dir() == tmp_path / "cfg" / "livegen"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG variables are the Linux convention")
def test_without_the_override_the_xdg_folders_are_honoured(tmp_path, monkeypatch):
    monkeypatch.delenv("LIVEGEN_HOME")
    for name in XDG:
        monkeypatch.setenv(name, str(tmp_path / name))
    assert paths.config_dir() == tmp_path / "XDG_CONFIG_HOME" / "livegen"
    assert paths.presets_dir() == tmp_path / "XDG_CONFIG_HOME" / "livegen" / "presets"
    assert paths.emg_profiles_dir() == tmp_path / "XDG_CONFIG_HOME" / "livegen" / "emg"
    assert paths.state_dir() == tmp_path / "XDG_STATE_HOME" / "livegen"
    assert paths.cache_dir() == tmp_path / "XDG_CACHE_HOME" / "livegen"
    assert paths.takes_dir() == tmp_path / "XDG_MUSIC_DIR" / "livegen"
    assert files_under(tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG variables are the Linux convention")
def test_without_anything_set_the_linux_defaults_are_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("LIVEGEN_HOME")
    for name in XDG:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.config_dir() == tmp_path / ".config" / "livegen"
    assert paths.state_dir() == tmp_path / ".local" / "state" / "livegen"
    assert paths.cache_dir() == tmp_path / ".cache" / "livegen"
    assert paths.takes_dir() == tmp_path / "Music" / "livegen"


def test_livegen_paths_prints_every_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVEGEN_HOME", str(tmp_path / "stage"))
    run = subprocess.run(livegen_cmd("paths"), capture_output=True, text=True, timeout=60)
    assert printed(run) == paths.all_paths()
    assert {"config", "presets", "emg_profiles", "camera_preset", "state", "journal", "cache", "takes"} <= set(
        printed(run))
    assert not (tmp_path / "stage").exists()  # listing the places makes none of them


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG variables are the Linux convention")
def test_livegen_paths_follows_xdg_without_the_override(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LIVEGEN_HOME"}
    env.update({name: str(tmp_path / name) for name in XDG})
    run = subprocess.run(livegen_cmd("paths"), capture_output=True, text=True, timeout=60, env=env)
    shown = printed(run)
    assert shown["config"] == tmp_path / "XDG_CONFIG_HOME" / "livegen"
    assert shown["journal"] == tmp_path / "XDG_STATE_HOME" / "livegen" / "unfinished-takes"
    assert shown["takes"] == tmp_path / "XDG_MUSIC_DIR" / "livegen"
    assert files_under(tmp_path) == []


def test_nothing_is_created_until_it_is_used(livegen_home):
    from livegen import presets
    from livegen.cli import build_parser
    from livegen.errors import UserError
    from livegen.midi.recorder import recover_unfinished
    from livegen.sensors.emg.processing import load_profile, profile_path
    from livegen.train import data  # noqa: F401  (its import once made the cache folder's name)

    build_parser()  # help texts name the folders
    paths.all_paths()
    assert recover_unfinished() == [] and load_profile("nobody") is None and profile_path("ana")
    with pytest.raises(UserError, match=str(paths.presets_dir())):
        presets.find("no-such-preset")
    assert files_under(livegen_home) == []


def test_each_kind_of_state_lands_in_its_place(livegen_home, tmp_path):
    from livegen import presets
    from livegen.midi.recorder import Recorder
    from livegen.sensors.emg.processing import Calibration, load_profile, profile_path
    from livegen.train.data import load_cached

    take = tmp_path / "music" / "take.mid"
    take.parent.mkdir()
    rec = Recorder(take)
    assert len(list(paths.journal_dir().glob("*.json"))) == 1  # a take being written is journalled
    for i in range(12):
        rec.add(i * 0.25, [0x90, 60 + i, 90])
        rec.add(i * 0.25 + 0.2, [0x80, 60 + i, 0])
    rec.close()
    assert list(paths.journal_dir().glob("*.json")) == []

    Calibration([1.0] * 8, [9.0] * 8, "myo").save(profile_path("ana"))
    assert (paths.emg_profiles_dir() / "ana.toml").is_file() and load_profile("ana").rest == [1.0] * 8

    paths.presets_dir().mkdir(parents=True)  # as the panel's Save dialog does
    presets.save(presets.Preset(), paths.presets_dir() / "mine.toml")
    assert presets.find("mine") == paths.presets_dir() / "mine.toml"

    assert len(load_cached(str(take.parent), workers=1).pieces) == 1
    assert [p.name.startswith("corpus-") for p in paths.cache_dir().iterdir()] == [True]
    assert all(p.is_relative_to(livegen_home) for p in files_under(livegen_home))
