"""Every place livegen keeps the user's files, from one root.

- ``config_dir()``: what the user set up and wants to keep: presets (``presets_dir()``, where
  ``livegen calibrate camera`` saves ``camera.toml``) and EMG calibration profiles
  (``emg_profiles_dir()``). On Linux ``$XDG_CONFIG_HOME/livegen``, else ``~/.config/livegen``.
- ``state_dir()``: what livegen needs across runs but the user never edits: the journal of takes
  still being written (``journal_dir()``), so the next run can repair one a crash cut off.
  ``$XDG_STATE_HOME/livegen``, else ``~/.local/state/livegen``.
- ``cache_dir()``: what can be deleted at any time and rebuilt: parsed training corpora.
  ``$XDG_CACHE_HOME/livegen``, else ``~/.cache/livegen``.
- ``takes_dir()``: where the panel records takes unless told otherwise: the user's music folder
  (``$XDG_MUSIC_DIR``, else ``~/Music``) under ``livegen``, since a take is the musician's work,
  not the program's data.

``LIVEGEN_HOME=/some/dir`` puts all of them under that one folder (``config/``, ``state/``,
``cache/``, ``takes/``): a portable setup, a second identity on one machine, or a test that must
never touch the real home. Elsewhere the platform's own folders are used (platformdirs).

Every function reads the environment when called, never at import, so a change to it (a test's
``monkeypatch.setenv``) takes effect at once; none of them creates a folder: the code that writes
there does, when it first writes.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "livegen"
HOME_ENV = "LIVEGEN_HOME"


def home() -> Path | None:
    """The ``LIVEGEN_HOME`` override as an absolute path, or None when it is unset or empty."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().absolute() if value else None


def _under_home(name: str) -> Path | None:
    root = home()
    return None if root is None else root / name


def config_dir() -> Path:
    return _under_home("config") or Path(platformdirs.user_config_dir(APP, appauthor=False))


def state_dir() -> Path:
    return _under_home("state") or Path(platformdirs.user_state_dir(APP, appauthor=False))


def cache_dir() -> Path:
    return _under_home("cache") or Path(platformdirs.user_cache_dir(APP, appauthor=False))


def takes_dir() -> Path:
    return _under_home("takes") or Path(platformdirs.user_music_dir()) / APP


def presets_dir() -> Path:
    """The user's presets, found by name after ./presets and the shipped ones."""
    return config_dir() / "presets"


def camera_preset() -> Path:
    """Where ``livegen calibrate camera`` saves the preset it makes, unless given ``--save``."""
    return presets_dir() / "camera.toml"


def emg_profiles_dir() -> Path:
    """EMG calibration profiles, one ``USER.toml`` each."""
    return config_dir() / "emg"


def journal_dir() -> Path:
    """One entry per take being recorded; a take whose entry outlives its process is repaired."""
    return state_dir() / "unfinished-takes"


def all_paths() -> dict[str, Path]:
    """Every place, by the name ``livegen paths`` prints."""
    return {"config": config_dir(), "presets": presets_dir(), "camera_preset": camera_preset(),
            "emg_profiles": emg_profiles_dir(), "state": state_dir(), "journal": journal_dir(),
            "cache": cache_dir(), "takes": takes_dir()}
