"""``livegen gui``: the subcommand. Qt is imported only when it runs, never by ``livegen.cli``."""
from __future__ import annotations

from livegen import extras


def cmd_gui(args) -> int:
    with extras.needed("gui", "the panel", broken="apt-get install libegl1 libgl1 libfontconfig1 libxkbcommon0"):
        from livegen.gui.app import run  # Qt: only when the panel opens, never with livegen.cli
    return run(args.preset, args.screenshot)


def add_commands(sub) -> None:
    s = sub.add_parser("gui", help="the control panel: play, steer, watch and record from one window")
    s.add_argument("--preset", help="preset name or .toml path (default: the shipped default); "
                   "its [gui] section turns on booth mode")
    s.add_argument("--screenshot", metavar="FILE.png", help="play a few seconds under a scripted gesture, "
                   "save a picture of the window and exit")
    s.set_defaults(func=cmd_gui)
