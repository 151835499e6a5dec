"""The built-in synth: FluidSynth as an output port (``--api fluidsynth``) and an offline renderer.

Where there is no synth to play into, livegen sounds on its own: ``FluidSynthOutput`` is an
``OutputPort`` like any MIDI port (the clock process sends into it, it tracks and ends its notes),
whose audio goes to JACK, PulseAudio or ALSA, whichever is there. ``render`` turns a recorded take
into a 16-bit WAV faster than real time. pyfluidsynth and libfluidsynth load only when used.
"""
from __future__ import annotations

import ctypes
import os
import wave
from pathlib import Path

from livegen import extras
from livegen.errors import UserError
from livegen.midi.ports import OutputPort, api_available

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian/Ubuntu: fluid-soundfont-gm
INSTALL_HINT = "apt-get install libfluidsynth3 fluid-soundfont-gm"
AUDIO_DRIVERS = ("jack", "pulseaudio", "alsa")  # tried in this order unless one is named
GAIN = 0.5
RENDER_BLOCK = 512  # frames synthesised per call between MIDI events
TAIL_MAX = 3.0  # s rendered after the last event at most, for releases and reverb
TAIL_SILENCE = 0.25  # s under SILENCE_LEVEL that end the tail early
SILENCE_LEVEL = 8  # 16-bit sample value


def load_library():
    """pyfluidsynth, or a one-line UserError saying what to install."""
    with extras.needed("synth", "the built-in synth", broken=INSTALL_HINT):
        import fluidsynth  # needs the system's libfluidsynth: a missing one fails only the built-in synth
    return fluidsynth


def soundfont_path(path: str | None = None) -> str:
    """The SoundFont to load: ``path``, else $LIVEGEN_SOUNDFONT, else Debian's General MIDI one."""
    chosen = path or os.environ.get("LIVEGEN_SOUNDFONT") or DEFAULT_SOUNDFONT
    p = Path(chosen)
    if not p.is_file():
        if chosen == DEFAULT_SOUNDFONT:
            raise UserError(f"no SoundFont at {chosen}: {INSTALL_HINT}, or give one with --soundfont FILE.sf2")
        raise UserError(f"SoundFont {chosen} does not exist: give an .sf2 file with --soundfont")
    try:
        with p.open("rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise UserError(f"SoundFont {chosen} cannot be read: {exc.strerror}") from None
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise UserError(f"{chosen} is not a SoundFont (.sf2): give one with --soundfont, e.g. {DEFAULT_SOUNDFONT}")
    return str(p)


def new_synth(soundfont: str | None = None, rate: int = 44100, gain: float = GAIN):
    """A FluidSynth with the SoundFont loaded and General MIDI programs on every channel."""
    fluidsynth = load_library()
    path = soundfont_path(soundfont)
    if not 8000 <= rate <= 192000:
        raise UserError(f"sample rate {rate} is outside 8000..192000 Hz")
    synth = fluidsynth.Synth(gain=gain, samplerate=float(rate))
    if synth.sfload(path, 1) < 0:  # 1: reset every channel to the SoundFont's presets
        synth.delete()
        raise UserError(f"FluidSynth could not load the SoundFont {path}: give another with --soundfont")
    return synth


class _Dispatch:
    """Raw MIDI bytes -> FluidSynth calls (no MIDI-event objects built on the send path)."""

    def __init__(self, synth, fluidsynth):
        self.synth, self.handle = synth, synth.synth
        lib = fluidsynth._fl
        self.channel_pressure = getattr(lib, "fluid_synth_channel_pressure", None)
        self.key_pressure = getattr(lib, "fluid_synth_key_pressure", None)
        for fn, args in ((self.channel_pressure, 2), (self.key_pressure, 3)):
            if fn is not None:
                fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * args
                fn.restype = ctypes.c_int

    def __call__(self, msg: list[int]) -> None:
        kind, ch = msg[0] & 0xF0, msg[0] & 0x0F
        s = self.synth
        if kind == 0x90:
            s.noteon(ch, msg[1], msg[2]) if msg[2] else s.noteoff(ch, msg[1])
        elif kind == 0x80:
            s.noteoff(ch, msg[1])
        elif kind == 0xB0:
            s.cc(ch, msg[1], msg[2])
        elif kind == 0xC0:
            s.program_change(ch, msg[1])
        elif kind == 0xE0:
            s.pitch_bend(ch, (msg[1] | msg[2] << 7) - 8192)
        elif kind == 0xD0 and self.channel_pressure is not None:
            self.channel_pressure(self.handle, ch, msg[1])
        elif kind == 0xA0 and self.key_pressure is not None:
            self.key_pressure(self.handle, ch, msg[1], msg[2])


def _jack_running() -> bool:
    return api_available("jack")


def _driver_candidates(driver: str | None) -> list[str]:
    if driver:
        return [driver]
    found = []
    if _jack_running():
        found.append("jack")
    runtime = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    if os.environ.get("PULSE_SERVER") or os.path.exists(os.path.join(runtime, "pulse", "native")):
        found.append("pulseaudio")
    if any(name.startswith("pcm") for name in _listdir("/dev/snd")):
        found.append("alsa")
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


class FluidSynthOutput(OutputPort):
    """The built-in synth as an output port; its audio plays on the first working driver."""

    name = "fluidsynth"

    def __init__(self, soundfont: str | None = None, driver: str | None = None):
        super().__init__()
        fluidsynth = load_library()
        driver = driver or os.environ.get("LIVEGEN_AUDIO_DRIVER") or None
        candidates = _driver_candidates(driver)
        if not candidates:
            raise UserError("the built-in synth has no audio output here (no JACK server, PulseAudio or ALSA "
                            "sound card): start one, or play into a MIDI port, or record and `livegen render`")
        self.synth = new_synth(soundfont, rate=48000)
        self.soundfont = soundfont_path(soundfont)
        self._audio = None
        settings = self.synth.settings
        self.synth.setting("audio.jack.id", "livegen-synth")
        self.synth.setting("audio.jack.autoconnect", 1)  # straight to the speakers (system:playback_*)
        self.synth.setting("audio.period-size", 256)
        self.synth.setting("audio.periods", 2)
        for name in candidates:
            self.synth.setting("audio.driver", name)
            self._audio = fluidsynth.new_fluid_audio_driver(settings, self.synth.synth)
            if self._audio:
                self.driver = name
                break
        if not self._audio:
            self.synth.delete()
            raise UserError(f"the built-in synth could not open audio ({', '.join(candidates)} failed): "
                            "check the sound server, or set LIVEGEN_AUDIO_DRIVER")
        self.synth.audio_driver = self._audio  # so Synth.delete() stops it first
        self.name = f"fluidsynth ({Path(self.soundfont).name}, {self.driver})"
        self._dispatch = _Dispatch(self.synth, fluidsynth)

    def _send(self, message: list[int]) -> None:
        self._dispatch(message)

    def voices(self) -> int:
        """Voices sounding now (a note rings on after its note-off until its release ends)."""
        return self.synth.get_active_voice_count()

    def _close(self) -> None:
        self.synth.delete()


# --- offline rendering -------------------------------------------------------------------------

def _midi_events(path: str):
    """(seconds, raw channel message) in time order, tempo map applied; UserError when unreadable."""
    import mido  # only to render: the clock process imports this module to play, and plays without mido

    try:
        midi = mido.MidiFile(path)
    except FileNotFoundError:
        raise UserError(f"MIDI file {path} does not exist") from None
    except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise UserError(f"{path} is not a readable MIDI file ({exc})") from None
    now, out = 0.0, []
    try:
        for msg in midi:
            now += msg.time
            if not msg.is_meta and msg.type != "sysex" and hasattr(msg, "channel"):
                out.append((now, msg.bytes()))
    except (ValueError, EOFError, KeyError, IndexError) as exc:
        raise UserError(f"{path} is not a readable MIDI file ({exc})") from None
    return out, now


def render(midi_path: str, wav_path: str, soundfont: str | None = None, rate: int = 44100) -> dict:
    """Render a MIDI file to a 16-bit stereo WAV; the tail lets releases ring out (at most TAIL_MAX s).

    Written to ``wav_path + .part`` and renamed when complete, so a stopped render leaves no half file."""
    import numpy as np  # only to render: the clock process imports this module and must not load numpy

    events, length = _midi_events(midi_path)
    synth = new_synth(soundfont, rate)
    dispatch = _Dispatch(synth, load_library())
    part = Path(str(wav_path) + ".part")
    frames = 0
    peak = 0
    try:
        with wave.open(str(part), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(rate)

            def advance(to_frame: int) -> None:
                nonlocal frames, peak
                while frames < to_frame:
                    n = min(RENDER_BLOCK * 16, to_frame - frames)
                    block = np.asarray(synth.get_samples(n), dtype=np.int16)
                    peak = max(peak, int(np.abs(block.astype(np.int32)).max(initial=0)))
                    out.writeframes(block.tobytes())
                    frames += n

            for seconds, msg in events:
                advance(round(seconds * rate))
                dispatch(msg)
            end, quiet_needed, quiet = frames + round(TAIL_MAX * rate), round(TAIL_SILENCE * rate), 0
            while frames < end and quiet < quiet_needed:
                block = np.asarray(synth.get_samples(RENDER_BLOCK), dtype=np.int16)
                out.writeframes(block.tobytes())
                frames += RENDER_BLOCK
                quiet = quiet + RENDER_BLOCK if int(np.abs(block.astype(np.int32)).max(initial=0)) < SILENCE_LEVEL else 0
        os.replace(part, wav_path)
    finally:
        synth.delete()
        part.unlink(missing_ok=True)
    return {"seconds": frames / rate, "midi_seconds": length, "events": len(events), "peak": peak}
