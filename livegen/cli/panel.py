"""``livegen gui``: the subcommand. Qt is imported only when it runs, never by ``livegen.cli``."""
from __future__ import annotations

from livegen import extras


def cmd_gui(args) -> int:
    with extras.needed("gui", "the panel", broken="apt-get install libegl1 libgl1 libfontconfig1 libxkbcommon0"):
        from livegen.gui.app import run  # Qt: only when the panel opens, never with livegen.cli
    return run(args.preset, args.screenshot, args.size, args.view)


def add_commands(sub) -> None:
    s = sub.add_parser("gui", help="the control panel: play, steer, watch and record from one window")
    s.add_argument("--preset", help="preset name or .toml path (default: the shipped default); "
                   "its [gui] section turns on booth mode")
    s.add_argument("--screenshot", metavar="FILE.png", help="play a few seconds under a scripted gesture, "
                   "save a picture of the window and exit")
    s.add_argument("--size", metavar="WxH", help="with --screenshot: the window's size, e.g. 1024x768 "
                   "(default 1280x720)")
    s.add_argument("--view", choices=("performance", "full"), help="the view the panel opens on (default: the "
                   "preset's; booth presets always show the performance view)")
    s.set_defaults(func=cmd_gui)
