"""``livegen gui``: the subcommand. Qt is imported only when it runs, never by ``livegen.cli``."""
from __future__ import annotations

from livegen.errors import UserError


def cmd_gui(args) -> int:
    try:
        from livegen.gui.app import run  # Qt: only when the panel opens, never with livegen.cli
    except ImportError as exc:
        raise UserError(f"the panel needs PyQt6 ({exc}): pip install 'PyQt6>=6.6'") from None
    return run(args.preset, args.screenshot)


def add_commands(sub) -> None:
    s = sub.add_parser("gui", help="the control panel: play, steer, watch and record from one window")
    s.add_argument("--preset", help="preset name or .toml path (default: presets/default.toml); "
                   "its [gui] section turns on booth mode")
    s.add_argument("--screenshot", metavar="FILE.png", help="play a few seconds under a scripted gesture, "
                   "save a picture of the window and exit")
    s.set_defaults(func=cmd_gui)
