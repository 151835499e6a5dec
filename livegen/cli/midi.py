"""``livegen paths``, ``ports``, ``panic``, ``render`` and ``recover``: where files live, the MIDI system,
recorded files."""
from __future__ import annotations

import json
import time

from livegen import paths
from livegen.errors import UserError
from livegen.messages import say
from livegen.midi import ports
from livegen.midi.fluidsynth import render
from livegen.midi.recorder import recover_unfinished, repair


def add_commands(sub) -> None:
    s = sub.add_parser("paths", help="where livegen keeps presets, profiles, takes, state and cache")
    s.set_defaults(func=cmd_paths)

    s = sub.add_parser("ports", help="list MIDI outputs and inputs with the API in use")
    s.add_argument("--api", default="auto", choices=["auto", "alsa", "jack"],
                   help="the MIDI system to list (default auto: ALSA, then JACK, as perform picks)")
    s.add_argument("--json", action="store_true", help='one object: {"api": the API in use or null, "apis": '
                   '{API: {"outputs": [...], "inputs": [...]}} for every MIDI system running here} '
                   "(see docs/command-line.md)")
    s.set_defaults(func=cmd_ports)

    s = sub.add_parser("panic", help="all notes off / all sound off on every channel")
    s.add_argument("--port", help="one output (default: every output)")
    s.add_argument("--api", default="auto", choices=["auto", "alsa", "jack"],
                   help="the MIDI system (default auto: ALSA, then JACK)")
    s.set_defaults(func=cmd_panic)

    s = sub.add_parser("render", help="render a MIDI file (a recorded take) to a WAV with the built-in synth")
    s.add_argument("midi", help="the .mid to render")
    s.add_argument("wav", help="the .wav to write (16-bit stereo)")
    s.add_argument("--soundfont", metavar="FILE.sf2",
                   help="SoundFont (default: $LIVEGEN_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    s.add_argument("--rate", type=int, default=44100, help="sample rate in Hz (default 44100)")
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("recover", help="repair unfinished recordings (done automatically by perform)")
    s.add_argument("files", nargs="*", metavar="FILE.mid", help="the recordings to repair (default: the takes "
                   "livegen's journal says were left unfinished)")
    s.set_defaults(func=cmd_recover)


def cmd_paths(args) -> int:
    for name, path in paths.all_paths().items():
        print(f"{name}: {path}")
    return 0


def cmd_ports(args) -> int:
    api = ports.resolve_api(args.api)
    if args.json:
        running = [name for name in ports.APIS if name == api or ports.api_available(name)]
        print(json.dumps({"api": api, "apis": {name: ports.list_ports(name) for name in running}}))
        return 0
    if api is None:
        print("no MIDI system here (no ALSA sequencer, no JACK server); `livegen perform` records only")
        return 0
    listing = ports.list_ports(api)
    print(f"API: {api}")
    for kind in ("outputs", "inputs"):
        print(f"{kind}:")
        for name in listing[kind] or ["(none)"]:
            print(f"  {name}")
    return 0


def cmd_panic(args) -> int:
    api = ports.resolve_api(args.api)
    if api is None:
        raise UserError("no MIDI system here (no ALSA sequencer, no JACK server): nothing to silence")
    outputs = ports.list_ports(api)["outputs"]
    targets = [ports.match_port(args.port, outputs)] if args.port else outputs
    if not targets:
        print(f"no MIDI outputs on {api}: nothing to silence")
    for name in targets:
        port = ports.RtMidiOutput(api, name)
        port.panic(all_channels=True)
        port.close(release=False)
        print(f"all notes off on {name}")
    return 0


def cmd_render(args) -> int:
    started = time.monotonic()
    result = render(args.midi, args.wav, soundfont=args.soundfont, rate=args.rate)
    took = time.monotonic() - started
    say(f"rendered {args.midi} -> {args.wav}: {result['seconds']:.1f} s of audio at {args.rate} Hz, 16-bit stereo "
         f"({result['events']} MIDI events, {result['seconds'] / max(took, 1e-6):.0f}x real time)")
    if result["peak"] == 0:
        say("warning: the audio is silent (no notes in the file, or the SoundFont has no sound for them)")
    return 0


def cmd_recover(args) -> int:
    found = [repair(p) for p in args.files] if args.files else recover_unfinished()
    for take in found:
        print(f"{take['path']}: {take['notes']} notes, {take['seconds']:.1f} s, "
              f"{take['ended_notes']} hanging notes ended")
    if not found:
        print("no unfinished takes")
    return 0
