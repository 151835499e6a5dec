"""MIDI ports: the one place a MIDI byte leaves livegen (notes, controls, the MIDI clock out), and
the one place a player's MIDI comes in.

``OutputPort.send`` validates and locks; backends write ``_send``. Every port remembers the notes
it has sounding, so ``close()`` ends exactly those with note-offs; ``panic()`` also sends
all-notes-off and all-sound-off.
ALSA and JACK ports go through python-rtmidi, imported only when used, and every rtmidi client
livegen opens is named ``livegen`` (``CLIENT``): other programs list its ports as ``livegen:...``.

``InputPort`` is the template for inputs: backends deliver raw bytes to ``_receive`` on their own
thread (one per port, polling rtmidi's queue), which timestamps them on the monotonic clock, keeps only well-formed
channel messages (running status expanded, SysEx and out-of-range bytes dropped) and hands each to
the listener; a listener that raises is reported once and the port goes on.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from typing import Callable

from livegen.errors import UserError

APIS = ("alsa", "jack")
CLIENT = "livegen"  # the MIDI client name other programs see (JACK: livegen:PORT; ALSA: client livegen)
OWN_PORT = "out"  # livegen's own port when it connects to another program's (JACK: livegen:out)
OWN_INPUT = "in"  # livegen's own port when it listens to another program's output (JACK: livegen:in)
# the system messages livegen sends (a MIDI clock out), by length: Song Position, clock, start, continue, stop
CLOCK_MESSAGE_LENGTHS = {0xF2: 3, 0xF8: 1, 0xFA: 1, 0xFB: 1, 0xFC: 1}
_RTMIDI_API = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK"}
ALL_NOTES_OFF, ALL_SOUND_OFF = 123, 120


def _valid(msg: list[int]) -> bool:
    if not msg or any(not 0 <= b < 0x80 for b in msg[1:]):
        return False
    return 0x80 <= msg[0] <= 0xEF or CLOCK_MESSAGE_LENGTHS.get(msg[0]) == len(msg)


class OutputPort(ABC):
    """A MIDI output. Messages are raw byte lists: [status, data1(, data2)]."""

    name: str = ""

    def __init__(self):
        self._lock = threading.Lock()
        self.sounding: set[tuple[int, int]] = set()  # (channel, note)
        self.closed = False

    def send(self, message: list[int] | bytes) -> None:
        msg = list(message)
        if not _valid(msg):
            raise ValueError(f"not a channel message nor a clock message: {msg}")
        with self._lock:
            if self.closed:
                return
            self._send(msg)
            self._track(msg)

    def _track(self, msg: list[int]) -> None:
        kind, channel = msg[0] & 0xF0, msg[0] & 0x0F
        if kind == 0x90 and msg[2] > 0:
            self.sounding.add((channel, msg[1]))
        elif kind in (0x80, 0x90):
            self.sounding.discard((channel, msg[1]))

    def release_messages(self) -> list[list[int]]:
        """A note-off for each note sounding: the port knows what it started, so a clean end
        touches nothing else (no controller resets a synth or a recording would keep)."""
        return [[0x80 | ch, note, 0] for ch, note in sorted(self.sounding)]

    def panic_messages(self, all_channels: bool = False) -> list[list[int]]:
        """Panic: the note-offs, then all-notes-off and all-sound-off on those channels (on every
        channel with ``all_channels``), for sound this port does not know of (a stuck synth voice)."""
        channels = range(16) if all_channels else sorted({ch for ch, _ in self.sounding} or {0})
        return self.release_messages() + [[0xB0 | ch, c, 0] for ch in channels for c in (ALL_NOTES_OFF, ALL_SOUND_OFF)]

    def panic(self, all_channels: bool = False) -> None:
        """End every note this port started and reset the sound on its channels (``all_channels``: on any)."""
        for msg in self.panic_messages(all_channels):
            self.send(msg)

    def release(self) -> None:
        """End every note this port started, with note-offs only."""
        for msg in self.release_messages():
            self.send(msg)

    def close(self, release: bool = True) -> None:
        """Close, first ending every note this port started (skip only if the caller just did)."""
        if self.closed:
            return
        try:
            if release:
                self.release()
        finally:
            with self._lock:
                self.closed = True
                self._close()

    @abstractmethod
    def _send(self, message: list[int]) -> None: ...

    def _close(self) -> None:
        pass


class NullOutput(OutputPort):
    """No MIDI system (a headless server, ``--no-port``): the performance still plays into the recording."""

    name = "(no port)"

    def _send(self, message: list[int]) -> None:
        pass


class RtMidiOutput(OutputPort):
    """Another program's MIDI input, ``name`` as ``list_ports`` gives it (or ``match_port`` finds
    it), reached through livegen's own port ``OWN_PORT``; with ``virtual``, a port ``name`` of
    livegen's that other programs connect to."""

    def __init__(self, api: str, name: str, virtual: bool = False):
        super().__init__()
        self.api = api
        try:
            self._raw = rtmidi_client(api, output=True)
        except Exception as exc:  # no rtmidi, or the MIDI system refused a client
            raise UserError(f"cannot open MIDI output {name!r} on {api}: {exc}") from None
        try:
            if virtual:
                self._raw.open_virtual_port(name)
            else:
                available = self._raw.get_ports()
                name = match_port(name, available)
                self._raw.open_port(available.index(name), OWN_PORT)
        except UserError:
            self._raw.delete()
            raise
        except Exception as exc:
            self._raw.delete()
            raise UserError(f"cannot open MIDI output {name!r} on {api}: {exc}") from None
        self.name = name

    def _send(self, message: list[int]) -> None:
        self._raw.send_message(message)

    def _close(self) -> None:
        self._raw.close_port()
        self._raw.delete()


# data bytes that follow each channel-message kind (note off/on, poly pressure, CC, program, pressure, bend)
CHANNEL_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
Listener = Callable[[float, list[int]], None]


class InputPort(ABC):
    """A MIDI input: each well-formed channel message reaches ``listener(monotonic time, bytes)``
    on the backend's thread. The listener must return at once (queue, never wait)."""

    name: str = ""

    def __init__(self, listener: Listener, report: Callable[[str], None] | None = None):
        self.listener = listener
        self.report = report
        self.closed = False
        self.received = 0  # well-formed channel messages handed on
        self.dropped = 0  # bytes that were not (SysEx, stray data bytes, system messages)
        self._running_status = 0
        self._failed_once = False

    def _receive(self, data, at: float | None = None) -> None:
        """From the backend's thread: one packet of raw bytes, split into channel messages."""
        at = time.monotonic() if at is None else at
        try:
            for msg in self._split(list(data)):
                self.received += 1
                self.listener(at, msg)
        except Exception as exc:  # the listener's bug must not end the port's thread
            if not self._failed_once and self.report is not None:
                self._failed_once = True
                self.report(f"MIDI input {self.name}: {type(exc).__name__}: {exc}; listening on")

    def _split(self, data: list[int]) -> list[list[int]]:
        """Channel messages in ``data``; running status applied, anything else dropped."""
        out, i = [], 0
        while i < len(data):
            byte = data[i]
            if not 0 <= byte <= 0xFF:
                self.dropped += 1
                i += 1
                continue
            if byte >= 0xF0:  # system messages (SysEx and its data, clock, ...) carry no music here
                if byte == 0xF0:
                    end = next((j for j in range(i + 1, len(data)) if data[j] == 0xF7), len(data) - 1)
                    self.dropped += end - i + 1
                    i = end + 1
                    continue
                if byte < 0xF8:
                    self._running_status = 0  # system common cancels running status
                self.dropped += 1
                i += 1
                continue
            if byte >= 0x80:
                self._running_status, i = byte, i + 1
            elif not self._running_status:
                self.dropped += 1
                i += 1
                continue
            status = self._running_status
            need = CHANNEL_DATA_BYTES[status & 0xF0]
            body = data[i:i + need]
            if len(body) < need or any(not 0 <= b < 0x80 for b in body):
                self.dropped += max(1, len(body))
                i += max(1, len(body))
                continue
            out.append([status, *body])
            i += need
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    @abstractmethod
    def _close(self) -> None: ...


class PolledReader:
    """A thread of its own that takes what rtmidi queued on ``raw`` (an open MidiIn) and hands each
    message to ``handle(message, at)``, ``at`` the monotonic time it was taken (within a poll of
    arriving); ``close`` stops it, then frees ``raw``.

    It polls every ``POLL_SECONDS`` rather than taking rtmidi's callback: on JACK that callback
    runs in the server's real-time cycle, and Python there waits for the interpreter lock (held by
    the model a few ms at a time) and for the pipe to the clock, stalling every client's cycle on
    the server, so other ports' messages arrive late or lost. rtmidi has no blocking read, so after
    ``IDLE_AFTER`` seconds without a message the thread polls every ``IDLE_POLL_SECONDS`` instead
    (a port left idle cost 3.5% of a core polled every ms). A failing ``handle`` is reported once
    and the thread reads on."""

    POLL_SECONDS = 0.001
    IDLE_POLL_SECONDS = 0.004  # the first message after a pause is heard at most this late
    IDLE_AFTER = 1.0
    CLOSE_WAIT = 10.0  # s a close waits for the thread to let go of the port before freeing it

    def __init__(self, raw, name: str, handle: Callable[[list[int], float], None],
                 report: Callable[[str], None] | None = None):
        self._raw, self.name, self._handle, self.report = raw, name, handle, report
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(target=self._read, name=f"livegen-midi-in {name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                event = self._raw.get_message()
            except Exception as exc:  # the MIDI system went away under the port: the watcher reopens it
                if self.report is not None:
                    self.report(f"MIDI input {self.name}: {exc}; it stops listening")
                return
            if event is None:
                idle = time.monotonic() - last > self.IDLE_AFTER
                time.sleep(self.IDLE_POLL_SECONDS if idle else self.POLL_SECONDS)  # lighter than Event.wait
            else:
                last = time.monotonic()
                try:
                    self._handle(event[0], last)
                except Exception as exc:  # a bug past the port must not end its thread
                    if not self._failed and self.report is not None:
                        self._failed = True
                        self.report(f"MIDI input {self.name}: {type(exc).__name__}: {exc}; listening on")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self.CLOSE_WAIT)
        if self._thread.is_alive():  # freeing the port under a thread still reading it crashes the process
            if self.report is not None:
                self.report(f"MIDI input {self.name}: its reader did not stop; the port is left open")
            return
        self._raw.close_port()
        self._raw.delete()


class RtMidiInput(InputPort):
    """Another program's MIDI output, ``name`` as ``list_ports(api)["inputs"]`` gives it (or
    ``match_port`` finds it), heard through livegen's own port ``OWN_INPUT`` and read by a
    ``PolledReader``."""

    QUEUE = 8192  # messages rtmidi holds between polls (a flood of 10k a second fills 10 a poll)

    def __init__(self, api: str, name: str, listener: Listener, report: Callable[[str], None] | None = None):
        super().__init__(listener, report)
        self.api = api
        try:
            raw = rtmidi_client(api, output=False, queue=self.QUEUE)
        except Exception as exc:  # no rtmidi, or the MIDI system refused a client
            raise UserError(f"cannot open MIDI input {name!r} on {api}: {exc}") from None
        try:
            available = raw.get_ports()
            name = match_port(name, available, kind="input")
            raw.ignore_types(sysex=True, timing=True, active_sense=True)
            raw.open_port(available.index(name), OWN_INPUT)
        except UserError:
            raw.delete()
            raise
        except Exception as exc:
            raw.delete()
            raise UserError(f"cannot open MIDI input {name!r} on {api}: {exc}") from None
        self.name = name
        self._reader = PolledReader(raw, name, self._receive, report)

    def _close(self) -> None:
        self._reader.close()


def rtmidi_client(api: str, output: bool, queue: int = 1024):
    """A python-rtmidi MidiOut (``output``) or MidiIn on ``api`` (holding up to ``queue`` messages
    until read), its client named ``CLIENT``."""
    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never spawn a JACK server behind the user's back
    import rtmidi  # needs the system's ALSA library: loaded only when a MIDI port opens

    rtapi = getattr(rtmidi, f"API_{_RTMIDI_API[api]}")
    return rtmidi.MidiOut(rtapi, name=CLIENT) if output else rtmidi.MidiIn(rtapi, name=CLIENT, queue_size_limit=queue)


def api_available(api: str) -> bool:
    """Whether the MIDI system behind ``api`` is running here (ALSA sequencer device, JACK server)."""
    if api == "alsa":
        return os.path.exists("/dev/snd/seq")
    if api == "jack":
        return _jack_running()
    raise UserError(f"unknown MIDI API {api!r}: use auto, alsa or jack")


def _jack_running() -> bool:
    with quiet_stderr():  # libjack prints its connection failures straight to fd 2
        try:
            probe = rtmidi_client("jack", output=True)
        except Exception:
            return False
        try:
            probe.get_port_count()
            probe.open_virtual_port("probe")  # rtmidi's JACK client connects lazily; this forces it
            probe.close_port()
            return True
        except Exception:
            return False
        finally:
            probe.delete()  # now: a client left to the garbage collector keeps the name "livegen" taken


@contextlib.contextmanager
def quiet_stderr():
    """fd 2 to /dev/null while the block runs: C libraries (libjack) write there past Python."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def resolve_api(api: str) -> str | None:
    """'auto' tries ALSA then JACK; None when there is no MIDI system at all."""
    if api == "auto":
        return next((a for a in APIS if api_available(a)), None)
    if api not in APIS:
        raise UserError(f"unknown MIDI API {api!r}: use auto, alsa or jack")
    if not api_available(api):
        hint = "start a JACK server (e.g. jackd -d dummy)" if api == "jack" else "load snd-seq"
        raise UserError(f"the {api} MIDI system is not running here: {hint}, or use --api auto / --no-port")
    return api


def list_ports(api: str) -> dict[str, list[str]]:
    """{"outputs": the ports livegen can play to, "inputs": the ports it can listen to (a player's
    keyboard, a controller, a MIDI clock), other programs' and its own}, as the MIDI system names them."""
    listing = {}
    for kind, output in (("outputs", True), ("inputs", False)):
        client = rtmidi_client(api, output)
        try:
            listing[kind] = list(client.get_ports())
        finally:
            client.delete()
    return listing


class InputLister:
    """The inputs there are now, asked again and again of one client kept open (a watcher's
    once-a-second look). Opening a client per look held the interpreter lock for 85 ms quiet and
    over 150 ms on a busy machine, and stalled the model's thread for seconds; asking an open one
    takes about 0.3 ms. A look that fails or finds nothing drops the client, and the next opens a
    fresh one: the MIDI system itself may have gone and come back."""

    def __init__(self, api: str):
        self.api = api
        self._client = None

    def inputs(self) -> list[str]:
        if self._client is None:
            self._client = rtmidi_client(self.api, output=False)
        try:
            names = list(self._client.get_ports())
        except Exception:
            self.close()
            raise
        if not names:
            self.close()
        return names

    def close(self) -> None:
        if self._client is not None:
            self._client.delete()
            self._client = None


_ALSA_NUMBERS = re.compile(r"\s*\(?\b\d+:\d+\)?\s*$|\s*\(\d+\)")


def _plain(name: str) -> str:
    return _ALSA_NUMBERS.sub("", name).strip().lower()


def match_port(wanted: str, available: list[str], kind: str = "output") -> str:
    """The one port ``wanted`` names: exact, then ignoring ALSA client:port numbers, then a unique substring."""
    if wanted in available:
        return wanted
    plain = _plain(wanted)
    for test in (lambda p: _plain(p) == plain, lambda p: plain in _plain(p)):
        hits = [p for p in available if test(p)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise UserError(f"MIDI port {wanted!r} is ambiguous: it matches {', '.join(map(repr, hits))}")
    listing = ", ".join(map(repr, available)) if available else "none"
    raise UserError(f"no MIDI {kind} matches {wanted!r}; available: {listing} (see `livegen ports`)")
