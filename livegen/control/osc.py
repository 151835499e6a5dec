"""OSC in and out (python-osc), so Wekinator, TouchOSC, Max or TouchDesigner drive and follow livegen.

In (UDP, 127.0.0.1 unless opened with ``--osc-host``), all under ``/livegen``:

    /pitch f            0..1, low..high register          /play       start a take (after /stop)
    /density f          0..1, sparse..dense                /stop       end the take: notes off, file closed
    /z/0 .. /z/7 f      one noise dim, -1..1 (the DCRNN)   /panic      end every sounding note now
    /z f f f f f f f f  all eight at once                  /preset s   a preset's controls (pitch, density, key)
    /temperature f      0.2..2, the Char-RNN's sampling

A learned mapping reading ``osc:/ADDRESS`` inputs (``learned``, a ``LearnedControls``) takes one
number at each of those addresses, any address outside ``/livegen`` another tool sends: the latest
value per address, a prediction whenever one changes, in this thread.

Out (to ``--osc-out HOST:PORT``): ``/livegen/state/pitch f``, ``/density f``, ``/z f×8``,
``/temperature f`` (once one is set), ``/playing i``, ``/time f`` (seconds into the take) at up to 20 Hz when
they change, and ``/livegen/note i i i`` (channel 1..16, note, velocity; 0 = off) for every note played.

A message that is not one of these, carries the wrong arguments or fails in any way is counted,
logged once per address (and kind of failure) and ignored, and the listener goes on; values out of
range are clamped with one warning. OSC never waits on the engine: the receiving thread only merges
a value and calls the engine's thread-safe ``set_controls``.
"""
from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections import deque
from typing import Callable, Protocol

from livegen.checks import is_number
from livegen.errors import UserError
from livegen.music.conditioning import Controls, clamp_control, range_text
from livegen.presets import check_name

PREFIX = "/livegen"
Z_DIMS = 8
STATE_EVERY = 0.05  # s between state messages out (20 Hz)
MAX_WARNINGS = 32  # lines said about ignored messages; a sender spraying new addresses is only counted after


class Performance(Protocol):
    """What OSC drives: the CLI's take runner and the panel both provide it."""

    def controls(self) -> Controls: ...  # the latest controls, from any source
    def steer(self, controls: Controls) -> None: ...  # thread-safe, returns at once
    def play(self) -> None: ...
    def stop(self) -> None: ...
    def panic(self) -> None: ...
    def preset(self, name: str) -> None: ...  # raises UserError for an unknown preset


def _shown(text: str, limit: int = 80) -> str:
    """``text`` fit for one log line: printable and at most ``limit`` characters."""
    text = text if text.isprintable() else ascii(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class OscServer:
    """Receives OSC on a UDP port in a thread of its own and steers a ``Performance``."""

    def __init__(self, performance: Performance, port: int, host: str = "127.0.0.1",
                 log: Callable[[str], None] = print):
        self.performance, self.log = performance, log
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self.received = 0
        self.ignored = 0
        self.learned = None  # a LearnedControls whose osc:/ADDRESS inputs this server feeds (None: none)
        if not 0 <= port <= 65535:
            raise UserError(f"--osc {port} is not a UDP port (1..65535)")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except (socket.gaierror, UnicodeError):
            self._sock.close()
            raise UserError(f"--osc-host {host!r} is not an address of this machine (127.0.0.1, 0.0.0.0, ...)") from None
        except OSError as exc:
            self._sock.close()
            raise UserError(f"cannot listen for OSC on {host}:{port}: {exc.strerror} "
                            "(another program on that port? choose another with --osc)") from None
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()
        self._handlers = {f"{PREFIX}/pitch": self._pitch, f"{PREFIX}/density": self._density,
                          f"{PREFIX}/z": self._z_all, f"{PREFIX}/temperature": self._temperature,
                          f"{PREFIX}/play": self._command("play"),
                          f"{PREFIX}/stop": self._command("stop"), f"{PREFIX}/panic": self._command("panic"),
                          f"{PREFIX}/preset": self._preset}
        for dim in range(Z_DIMS):
            self._handlers[f"{PREFIX}/z/{dim}"] = self._z_dim(dim)
        self._thread = threading.Thread(target=self._run, name="livegen-osc", daemon=True)

    def start(self) -> "OscServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._sock.close()

    # --- receiving -----------------------------------------------------------------------------

    def _run(self) -> None:
        from pythonosc.osc_packet import OscPacket  # python-osc: 0.1 s, loaded when a listener starts

        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                messages = [timed.message for timed in OscPacket(data).messages]  # bundles: now, not at their time tag
            except Exception:  # python-osc raises many kinds on garbage
                self._ignore("(not OSC)", f"a packet from {sender[0]} that is not OSC")
                continue
            for message in messages:
                self._handle(message.address, list(message.params))

    def _handle(self, address: str, params: list) -> None:
        handler = self._handlers.get(address)
        learned = self.learned
        if handler is None and learned is not None and f"osc:{address}" in learned.mapping.inputs:
            handler = self._learned_input(learned)
        if handler is None:
            self._ignore(address, f"{_shown(address)}: not a livegen address (see the README's OSC table)"
                         + (" nor an input of the learned mapping" if learned is not None else ""))
            return
        try:
            handler(address, params)
            self.received += 1
        except UserError as exc:
            self._ignore(address, f"{address} {_shown(repr(tuple(params)))}: {_shown(str(exc), 200)}")
        except Exception as exc:  # whatever one message does, the listener goes on
            kind = type(exc).__name__
            self._ignore(f"{address}:{kind}", f"{address} {_shown(repr(tuple(params)))}: it failed ({kind}: "
                                              f"{_shown(str(exc), 120)}); check what the sender sends against "
                                              "the README's OSC table")

    def _ignore(self, key: str, text: str) -> None:
        self.ignored += 1
        if key in self._warned or len(self._warned) > MAX_WARNINGS:
            return
        self._warned.add(key)
        if len(self._warned) > MAX_WARNINGS:
            self.log("osc: ignored more messages than are worth saying; from now on they are only counted")
        else:
            self.log(f"osc: ignored {text} (said once per address)")

    def _clamp(self, address: str, value: float, key: str) -> float:
        inside = clamp_control(key, value)
        if inside != value and address + ":range" not in self._warned:
            self._warned.add(address + ":range")
            self.log(f"osc: {address} {value:g} is outside {range_text(key)}; clamped (said once per address)")
        return inside

    def _one_number(self, address: str, params: list, key: str) -> float:
        if len(params) != 1 or not is_number(params[0]):
            raise UserError(f"expects one number {range_text(key)}")
        return self._clamp(address, params[0], key)

    def _steer(self, **changes) -> None:
        self.performance.steer(dataclasses.replace(self.performance.controls(), **changes))

    def _pitch(self, address: str, params: list) -> None:
        self._steer(pitch=self._one_number(address, params, "pitch"))

    def _density(self, address: str, params: list) -> None:
        self._steer(density=self._one_number(address, params, "density"))

    def _temperature(self, address: str, params: list) -> None:
        self._steer(temperature=self._one_number(address, params, "temperature"))

    @staticmethod
    def _learned_input(learned):
        def handler(address: str, params: list) -> None:
            if len(params) != 1 or not is_number(params[0]):
                raise UserError("expects one number (an input of the learned mapping)")
            learned.set_inputs({f"osc:{address}": float(params[0])}, time.monotonic())
        return handler

    def _z_dim(self, dim: int):
        def handler(address: str, params: list) -> None:
            value = self._one_number(address, params, "z")
            z = list(self.performance.controls().z or (0.0,) * Z_DIMS)
            z[dim] = value
            self._steer(z=tuple(z))
        return handler

    def _z_all(self, address: str, params: list) -> None:
        if len(params) != Z_DIMS or not all(is_number(p) for p in params):
            raise UserError(f"expects {Z_DIMS} numbers -1..1")
        self._steer(z=tuple(self._clamp(address, p, "z") for p in params))

    def _command(self, name: str):
        def handler(address: str, params: list) -> None:
            if params and not (len(params) == 1 and is_number(params[0])):
                raise UserError("takes no arguments (or one number, as a button sends)")
            if params and params[0] == 0:  # a button's release (TouchOSC sends 1 then 0)
                return
            getattr(self.performance, name)()
        return handler

    def _preset(self, address: str, params: list) -> None:
        if len(params) != 1 or not isinstance(params[0], str):
            raise UserError("expects one string, a preset's name")
        self.performance.preset(check_name(params[0]))


class OscState:
    """Sends the live state out: controls and transport at up to 20 Hz, and every note played."""

    def __init__(self, performance: Performance, host: str, port: int, playing: Callable[[], bool],
                 clock: Callable[[], float]):
        from pythonosc.udp_client import SimpleUDPClient  # python-osc: 0.1 s, loaded when state goes out

        try:
            self._client = SimpleUDPClient(host, port)
        except (OSError, socket.gaierror, UnicodeError) as exc:
            raise UserError(f"--osc-out {host}:{port}: {exc}") from None
        self.performance, self.playing, self.clock = performance, playing, clock
        self.notes: deque[tuple[int, int, int]] = deque(maxlen=4096)
        self._last: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-osc-out", daemon=True)
        self.sent = 0

    def start(self) -> "OscState":
        self._thread.start()
        return self

    def on_sent(self, messages) -> None:
        """Engine listener: (t, raw MIDI) just sent; keeps only notes, never blocks."""
        for _, msg in messages:
            kind = msg[0] & 0xF0
            if kind in (0x80, 0x90):
                self.notes.append((msg[0] & 0x0F, msg[1], msg[2] if kind == 0x90 else 0))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._client.close()

    def _send(self, address: str, value) -> None:
        try:
            self._client.send_message(address, value)
            self.sent += 1
        except OSError:  # nobody listening (ICMP refused) or the network is down: state is best-effort
            pass

    def _run(self) -> None:
        while not self._stop.wait(STATE_EVERY):
            self.flush()

    def flush(self) -> None:
        while self.notes:
            channel, note, velocity = self.notes.popleft()
            self._send(f"{PREFIX}/note", [channel + 1, note, velocity])
        c = self.performance.controls()
        state = {"pitch": float(c.pitch), "density": float(c.density),
                 "z": [float(v) for v in (c.z or (0.0,) * Z_DIMS)], "playing": int(bool(self.playing()))}
        if c.temperature is not None:
            state["temperature"] = float(c.temperature)
        for key, value in state.items():
            if self._last.get(key) != value:
                self._last[key] = value
                self._send(f"{PREFIX}/state/{key}", value)
        if state["playing"]:
            self._send(f"{PREFIX}/state/time", round(max(0.0, self.clock()), 3))
