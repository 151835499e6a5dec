"""``livegen learn-midi``: bind the next control moved on a MIDI input to a target, and save it in a preset."""
from __future__ import annotations

import queue
from pathlib import Path

from livegen.errors import UserError
from livegen.messages import say
from livegen.midi import ports

MOVES = {0xB0: "cc", 0x90: "note", 0xE0: "bend"}  # what a moved control sends (a note: struck)


def add_commands(sub) -> None:
    s = sub.add_parser("learn-midi", help="bind the next control moved on a MIDI input to a control or action, "
                       "saved in a preset")
    s.add_argument("--midi-in", required=True, metavar="PORT", help="the controller's input (see `livegen ports`)")
    s.add_argument("--target", required=True, help="what it plays: pitch, density, z1..z8, theme:NAME (a press picks "
                   "it) or an action done on a press: play, panic, record, next_preset, previous_preset")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--preset", metavar="NAME", help="save into this preset (a shipped one is copied to yours "
                       "first; a new name is made from the default)")
    where.add_argument("--out", metavar="FILE.toml", help="save into this preset file (made when missing)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a move (default 30)")
    s.add_argument("--invert", action="store_true", help="the control's value turned round (high at the bottom)")
    s.add_argument("--api", default="auto", choices=["auto", "alsa", "jack"],
                   help="the MIDI system (default auto: ALSA, then JACK)")
    s.set_defaults(func=cmd_learn_midi)


def cmd_learn_midi(args) -> int:
    from livegen import presets  # loads numpy (the controls' ranges): `livegen --help` starts without it
    from livegen.midi.bindings import Binding, check_target  # numpy too, through the controls' ranges

    target = check_target(args.target, "--target")
    if not 0 < args.timeout <= 3600:
        raise UserError("--timeout must be 0..3600 seconds")
    if args.out is not None and Path(args.out).suffix != ".toml":
        raise UserError(f"--out {args.out} must be a .toml preset file")
    path = Path(args.out) if args.out is not None else presets.user_file(args.preset) if args.preset else None
    api = ports.resolve_api(args.api)
    if api is None:
        raise UserError("no MIDI system is running here (ALSA or JACK): nothing to learn from")
    moves: queue.SimpleQueue = queue.SimpleQueue()
    port = ports.RtMidiInput(api, args.midi_in, lambda at, msg: moves.put(msg) if _moved(msg) else None)
    try:
        say(f"move a control on {port.name} (waiting {args.timeout:g} s)")
        try:
            msg = moves.get(timeout=args.timeout)
        except queue.Empty:
            raise UserError(f"no control moved on {port.name} within {args.timeout:g} s") from None
    finally:
        port.close()
    source = MOVES[msg[0] & 0xF0]
    binding = Binding(source, 0 if source == "bend" else msg[1], target, (msg[0] & 0x0F) + 1, port.name,
                      invert=args.invert)
    say(f"learned: {binding.describe()}")
    if path is not None:
        presets.add_binding(binding, path)
        say(f"saved in {path}")
    return 0


def _moved(msg: list[int]) -> bool:
    kind = msg[0] & 0xF0
    return kind in (0xB0, 0xE0) or kind == 0x90 and msg[2] > 0
