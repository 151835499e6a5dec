"""The optional parts of livegen, by role, and the one line that names the extra to install.

``pip install livegen`` is the core, what a headless ``livegen perform`` needs; each extra of
pyproject.toml adds a role (``livegen[gui]``, ``[camera]``, ``[emg]``, ``[link]``, ``[synth]``,
``[train]``). Where a role's library is imported, a missing one ends the command in one line:

    livegen: error: the panel needs PyQt6: pip install 'livegen[gui]'

``require`` checks before a feature starts (it finds the modules, it does not import them);
``needed`` wraps the import itself.
"""
from __future__ import annotations

import contextlib
import importlib.util

from livegen.errors import UserError

# extra -> {module livegen imports: the package that brings it}, as pyproject.toml lists them
EXTRAS = {
    "gui": {"PyQt6": "PyQt6"},
    "camera": {"cv2": "OpenCV"},
    "emg": {"bleak": "bleak", "serial": "pyserial", "scipy": "SciPy"},
    "link": {"link": "LinkPython-extern"},
    "synth": {"fluidsynth": "pyfluidsynth"},
    "train": {"torch": "PyTorch", "music21": "music21", "tqdm": "tqdm", "scipy": "SciPy"},
    "mediapipe": {"mediapipe": "MediaPipe"},
}


def missing(extra: str, feature: str, module: str) -> UserError:
    """The line for a module of ``extra`` that is not installed."""
    return UserError(f"{feature} needs {EXTRAS[extra][module]}: pip install 'livegen[{extra}]'")


def require(extra: str, feature: str, *modules: str) -> None:
    """UserError naming ``extra`` when one of ``modules`` (all of the extra's when none are named) is
    not installed; a module already imported counts as installed."""
    for module in modules or EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # in sys.modules without a __spec__: imported, so there
            found = True
        if not found:
            raise missing(extra, feature, module)


@contextlib.contextmanager
def needed(extra: str, feature: str, broken: str = ""):
    """Imports in the block that fail because a module of ``extra`` is missing become ``missing``'s
    line. One that is installed but does not load (a system library it needs is missing) is a line
    too, saying why and then ``broken``: what else to install. Other errors pass through."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRAS[extra]:
            raise
        raise missing(extra, feature, top) from None
    except (ImportError, OSError) as exc:  # OSError: a ctypes binding that finds no system library
        top = (getattr(exc, "name", None) or "").partition(".")[0]
        if top and top not in EXTRAS[extra]:
            raise
        package = EXTRAS[extra].get(top) or " / ".join(EXTRAS[extra].values())
        raise UserError(f"{feature} cannot load {package} ({exc})" + (f": {broken}" if broken else "")) from None
