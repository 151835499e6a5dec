"""A Myo through the BLED112 USB dongle: Silicon Labs' BGAPI binary protocol over its serial port.

``--source bled112`` finds the dongle by its USB VID:PID 2458:0001; ``bled112:/dev/ttyACM0`` names
the port; options ``mode=raw|raw-filtered|filtered`` and ``myo=AA:BB:CC:DD:EE:FF`` (pick one armband
when several are around). The dongle does the Bluetooth: we scan, connect, write attributes
(BGAPI's attribute_write is an ATT write *request*, so never-sleep is acknowledged) and read
notifications, using the Myo's fixed ATT handles. BGAPI frames carry no checksum, so the parser
only trusts a frame whose header is plausible, whose length fields agree and which is followed by
another plausible header (or a pause in the stream): after garbage it locks on again within a frame.
"""
from __future__ import annotations

import os
import struct
import time
from collections import deque
from typing import Callable, NamedTuple

from livegen import extras
from livegen.errors import UserError
from livegen.sensors.emg import myo
from livegen.sensors.emg.device import EmgDevice

VID_PID = (0x2458, 0x0001)

# -- BGAPI framing ---------------------------------------------------------------------------
# header: [type | technology | length high bits] [length low] [class] [command], then the payload.
# type 0x00 is a command (host -> dongle) or its response, 0x80 an event; technology 0 is BLE.
RESPONSE = 0x00
EVENT = 0x80
HEADER_SIZE = 4
MAX_PAYLOAD = 64  # the longest message of the BLE API we meet is ~42 bytes (a scan response)
MAX_CLASS = 9
MAX_EVENT_ID = 7

SYSTEM, CONNECTION, ATTCLIENT, GAP = 0, 3, 4, 6

# payload size of each message we know, by (is_event, class, command) ...
_FIXED_SIZE = {
    (False, SYSTEM, 1): 0,  # hello
    (False, SYSTEM, 6): 1,  # get_connections
    (False, CONNECTION, 0): 3,  # disconnect: connection, result
    (False, ATTCLIENT, 4): 3,  # read_by_handle: connection, result
    (False, ATTCLIENT, 5): 3,  # attribute_write: connection, result
    (False, ATTCLIENT, 6): 3,  # write_command: connection, result
    (False, GAP, 2): 2,  # discover: result
    (False, GAP, 3): 3,  # connect_direct: result, connection
    (False, GAP, 4): 2,  # end_procedure: result
    (False, GAP, 7): 2,  # set_scan_parameters: result
    (True, SYSTEM, 0): 12,  # boot
    (True, SYSTEM, 5): 2,  # protocol_error: reason
    (True, CONNECTION, 0): 16,  # status
    (True, CONNECTION, 1): 6,  # version_ind
    (True, CONNECTION, 4): 3,  # disconnected: connection, reason
    (True, ATTCLIENT, 0): 3,  # indicated
    (True, ATTCLIENT, 1): 5,  # procedure_completed: connection, result, handle
}
# ... or, for those ending in a length-prefixed byte array, where that length byte sits
_ARRAY_AT: dict[tuple[bool, int, int], int] = {
    (True, CONNECTION, 2): 1,  # feature_ind
    (True, ATTCLIENT, 2): 5,  # group_found
    (True, ATTCLIENT, 4): 3,  # find_information_found
    (True, ATTCLIENT, 5): 4,  # attribute_value: connection, handle, type, value[]
    (True, GAP, 0): 10,  # scan_response: rssi, packet type, address, address type, bond, data[]
}

_KNOWN = _FIXED_SIZE.keys() | _ARRAY_AT.keys()

ATTRIBUTE_READ = 0  # attribute_value types
ATTRIBUTE_NOTIFY = 1
CONNECTED = 0x01  # connection status flags


class Message(NamedTuple):
    event: bool
    cls: int
    cmd: int
    payload: bytes


def encode(event: bool, cls: int, cmd: int, payload: bytes = b"") -> bytes:
    """One BGAPI frame (a command from the host, or what a dongle sends)."""
    if len(payload) > 0x7FF:
        raise ValueError("a BGAPI payload holds at most 2047 bytes")
    first = (EVENT if event else RESPONSE) | (len(payload) >> 8)
    return bytes((first, len(payload) & 0xFF, cls, cmd)) + bytes(payload)


def _plausible(buf: bytes | bytearray, pos: int, count: int) -> bool:
    """Could the ``count`` (<= 4) bytes at ``pos`` begin a BGAPI frame?"""
    if buf[pos] not in (RESPONSE, EVENT):
        return False
    if count < 2:
        return True
    size = buf[pos + 1]
    if size > MAX_PAYLOAD:
        return False
    if count < 3:
        return True
    if buf[pos + 2] > MAX_CLASS:
        return False
    if count < 4:
        return True
    key = _key(buf, pos)
    if key in _FIXED_SIZE:
        return size == _FIXED_SIZE[key]
    if key in _ARRAY_AT:
        return size > _ARRAY_AT[key]
    # responses only answer our own commands, all known; an event we do not know is skipped whole
    # (if the stream agrees): BLE event ids are small
    return key[0] and key[2] <= MAX_EVENT_ID


def _key(buf: bytes | bytearray, pos: int) -> tuple[bool, int, int]:
    return buf[pos] == EVENT, buf[pos + 2], buf[pos + 3]


def _consistent(buf: bytes | bytearray, pos: int, size: int) -> bool:
    at = _ARRAY_AT.get(_key(buf, pos))
    return at is None or buf[pos + HEADER_SIZE + at] == size - at - 1


class BgapiParser:
    """Bytes in, whole frames out, never an exception; garbage is skipped and counted in ``resyncs``
    (once per run of skipped bytes). Right after a trusted frame (``locked``) a known message whose
    lengths agree is taken as it is; anything else, and everything while hunting after garbage,
    must also be followed by a plausible header. ``feed(..., idle=True)`` says the stream paused: a
    frame that ends exactly there is whole (unless it is a message we do not know, found while
    hunting: that is more likely garbage), one cut short by the pause never will be."""

    def __init__(self):
        self._buf = bytearray()
        self._hunting = False
        self._locked = True  # the buffer starts at a frame boundary (a fresh port answers our hello)
        self.resyncs = 0

    def reset(self) -> None:
        """A new port: what was buffered belongs to the old one."""
        self._buf.clear()
        self._hunting = False
        self._locked = True

    def feed(self, data: bytes = b"", idle: bool = False) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        while pos < len(buf):
            avail = len(buf) - pos
            whole = HEADER_SIZE + buf[pos + 1] if avail >= 2 else None
            if not _plausible(buf, pos, min(avail, HEADER_SIZE)):
                pass
            elif whole is None or avail < whole:
                if not idle:
                    break  # wait for the rest
            elif not _consistent(buf, pos, whole - HEADER_SIZE):
                pass
            elif (self._locked and _key(buf, pos) in _KNOWN) or (
                    avail > whole and _plausible(buf, pos + whole, min(avail - whole, HEADER_SIZE))) or (
                    avail == whole and idle and (self._locked or _key(buf, pos) in _KNOWN)):
                out.append(Message(*_key(buf, pos), bytes(buf[pos + HEADER_SIZE:pos + whole])))
                pos += whole
                self._hunting, self._locked = False, True
                continue
            elif avail == whole and not idle:
                break  # nothing after it yet to vouch for it
            if not self._hunting:
                self.resyncs += 1
            self._hunting, self._locked = True, False
            pos += 1
        del buf[:pos]
        return out


# -- decoders for the messages we use ---------------------------------------------------------

class ScanResponse(NamedTuple):
    rssi: int
    address: bytes  # 6 bytes, least significant first (as BGAPI sends it)
    address_type: int
    data: bytes


class AttributeValue(NamedTuple):
    connection: int
    handle: int
    kind: int  # ATTRIBUTE_READ, ATTRIBUTE_NOTIFY, ...
    value: bytes


def decode_scan_response(payload: bytes) -> ScanResponse:
    rssi, _packet_type, address, address_type, _bond = struct.unpack_from("<bB6sBB", payload)
    return ScanResponse(rssi, address, address_type, payload[11:])


def decode_attribute_value(payload: bytes) -> AttributeValue:
    connection, handle, kind = struct.unpack_from("<BHB", payload)
    return AttributeValue(connection, handle, kind, payload[5:])


def address_bytes(text: str) -> bytes:
    """AA:BB:CC:DD:EE:FF -> the 6 bytes BGAPI sends, least significant first."""
    return bytes.fromhex(text.replace(":", ""))[::-1]


def address_text(raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw[::-1])


def find_dongle() -> str:
    from serial.tools import list_ports  # pyserial is optional here: checked with a clear error in from_spec

    for port in list_ports.comports():
        if (port.vid, port.pid) == VID_PID:
            return port.device
    raise UserError("no BLED112 dongle found (USB 2458:0001): plug it in, or name its port, "
                    "e.g. --source bled112:/dev/ttyACM0")


# -- the device ------------------------------------------------------------------------------

READ_TIMEOUT_S = 0.05  # a read that returns nothing for this long is a pause in the stream
REQUEST_TIMEOUT_S = 2.0
SCAN_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
SILENCE_TIMEOUT_S = 3.0  # connected but no EMG for this long: the link is dead, start again
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0


class _LinkLost(Exception):
    """The armband disconnected (or went silent)."""


class _Stopped(Exception):
    """``stop()`` was called while waiting on the dongle."""


class _NotADongle(Exception):
    """Nothing on the port answers BGAPI."""


class Bled112Myo(EmgDevice):
    name = "bled112"

    def __init__(self, port: str, mode: myo.EmgMode = myo.EmgMode.RAW_FILTERED, address: str | None = None):
        super().__init__()
        self.port = port
        self.mode = mode
        self.address = address
        self.value_range = mode.value_range
        self.nominal_rate_hz = mode.rate_hz
        self.battery: int | None = None
        self.firmware: myo.FirmwareVersion | None = None
        self._parser = BgapiParser()
        self._inbox: deque[Message] = deque()
        self._serial = None
        self._connection: int | None = None
        self._next_char: int | None = None
        self._last_data = 0.0
        self._backoff = FIRST_BACKOFF_S  # s before the next attempt
        self._ever_connected = False

    @property
    def sample_limits(self) -> tuple[float, float]:
        return self.mode.sample_limits

    @classmethod
    def from_spec(cls, args: str) -> "Bled112Myo":
        port, options = myo.parse_spec("bled112", args, "serial port", ("mode", "myo"))
        extras.require("emg", "--source bled112", "serial")
        if not port:
            port = find_dongle()
        elif port.startswith("/dev/") and not os.path.exists(port):
            raise UserError(f"--source bled112:{port}: no such port; plug the dongle in, or leave the port "
                            "out to find it by its USB id")
        mode = myo.parse_mode("bled112", options["mode"]) if "mode" in options else myo.EmgMode.RAW_FILTERED
        address = options.get("myo") or None
        if address and address_bytes_or_none(address) is None:
            raise UserError(f"--source bled112: myo={address} is not a Bluetooth address (AA:BB:CC:DD:EE:FF)")
        return cls(port, mode, address)

    # -- the reader thread -------------------------------------------------------------------

    def _step(self) -> bool:
        """One attempt: open the dongle, connect to the armband and stream until the link drops;
        then the back-off before the next."""
        import serial  # pyserial is optional here: checked with a clear error in from_spec

        self._set_state("reconnecting" if self._ever_connected else "connecting")
        try:
            if self._serial is None:
                self._open()
            self._session(self._ever_connected)
            self._ever_connected = True
            self._backoff = FIRST_BACKOFF_S
        except _Stopped:
            return True
        except UserError as exc:  # the armband itself cannot do this (too old a firmware)
            self.error = str(exc)
            self._set_state("lost")
            return True
        except TimeoutError as exc:  # an OSError too, but only this attempt failed
            self._retry_later(str(exc), self._backoff)
        except (serial.SerialException, OSError) as exc:
            self._drop_port()
            if not self._ever_connected:
                hint = " (add yourself to the dialout group)" if isinstance(exc, PermissionError) else ""
                self.error = f"bled112: cannot use {self.port}: {exc}{hint}"
                self._set_state("lost")
                return True
            self._retry_later(f"the dongle went away ({exc})", self._backoff)
        except _NotADongle:
            if not self._ever_connected:
                self.error = (f"bled112: nothing on {self.port} answers BGAPI; is it the BLED112's port? "
                              "(leave the port out to find the dongle by its USB id)")
                self._set_state("lost")
                return True
            self._drop_port()
            self._retry_later("the dongle stopped answering", self._backoff)
        except Exception as exc:  # noqa: BLE001 - one failed attempt: try again after a pause
            self._retry_later(f"{type(exc).__name__}: {exc}", self._backoff)
        self._connection = None
        if self._stop.wait(self._backoff):
            return True
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        return False

    def _open(self) -> None:
        import serial  # pyserial is optional here: checked with a clear error in from_spec

        self._serial = serial.Serial(self.port, 115200, timeout=READ_TIMEOUT_S, write_timeout=REQUEST_TIMEOUT_S)
        self._parser.reset()
        self._inbox.clear()

    def _drop_port(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # noqa: BLE001 - it is gone already
                pass
            self._serial = None

    def _close(self) -> None:
        self._drop_port()

    # -- BGAPI request/response over the port ------------------------------------------------

    def _send(self, cls: int, cmd: int, payload: bytes = b"") -> None:
        self._serial.write(encode(False, cls, cmd, payload))

    def _next_message(self) -> Message | None:
        """The next message in order (None when nothing came within one read timeout); EMG data
        and the link going down are handled on the way, whoever is waiting for what."""
        if not self._inbox:
            data = self._serial.read(max(1, min(self._serial.in_waiting, 4096)))
            before = self._parser.resyncs
            self._inbox.extend(self._parser.feed(data, idle=not data))
            self.stats.resyncs += self._parser.resyncs - before
            if not self._inbox:
                return None
        message = self._inbox.popleft()
        self._on_any(message)
        return message

    def _wait_for(self, want: Callable[[Message], bool], timeout: float, what: str,
                  stoppable: bool = True) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            if stoppable and self._stop.is_set():
                raise _Stopped
            message = self._next_message()
            if message is not None and want(message):
                return message
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dongle sent no {what} within {timeout:.0f} s")

    def _request(self, cls: int, cmd: int, payload: bytes = b"", timeout: float = REQUEST_TIMEOUT_S,
                 stoppable: bool = True) -> bytes:
        self._send(cls, cmd, payload)
        reply = self._wait_for(lambda m: not m.event and (m.cls, m.cmd) == (cls, cmd), timeout,
                               f"answer to command {cls}.{cmd}", stoppable)
        return reply.payload

    @staticmethod
    def _result(payload: bytes, at: int, what: str) -> None:
        (result,) = struct.unpack_from("<H", payload, at)
        if result:
            raise RuntimeError(f"{what} failed: BGAPI error 0x{result:04x}")

    def _on_any(self, message: Message) -> None:
        """Events that matter whatever we are waiting for: EMG data and the link going down."""
        if not message.event:
            return
        if (message.cls, message.cmd) == (ATTCLIENT, 5):
            value = decode_attribute_value(message.payload)
            if value.connection == self._connection and value.kind == ATTRIBUTE_NOTIFY:
                self._on_notification(value.handle, value.value)
        elif (message.cls, message.cmd) == (CONNECTION, 4) and self._connection is not None:
            connection, reason = struct.unpack("<BH", message.payload)
            if connection == self._connection:
                self._connection = None
                raise _LinkLost(f"the armband disconnected (reason 0x{reason:04x})")

    # -- one connection ----------------------------------------------------------------------

    def _session(self, reconnecting: bool) -> None:
        self._reset_dongle()
        address, address_type = self._scan()
        self.detail = f"connecting to {address_text(address)}"
        # connection interval 7.5 ms (the Myo's 200 Hz needs it), supervision timeout 640 ms, latency 0
        reply = self._request(GAP, 3, struct.pack("<6sBHHHH", address, address_type, 6, 6, 64, 0))
        self._result(reply, 0, "connect")
        connection = reply[2]
        try:
            self._wait_for(lambda m: m.event and (m.cls, m.cmd) == (CONNECTION, 0) and m.payload[0] == connection
                           and m.payload[1] & CONNECTED, CONNECT_TIMEOUT_S, "connection")
        except TimeoutError:
            self._request(GAP, 4)  # cancel the pending connection
            raise
        self._connection = connection
        try:
            self._configure()
            if reconnecting:
                self.stats.reconnects += 1
            self._set_state("connected", f"streaming {self.mode.spec_name} EMG from {address_text(address)}")
            self._stream()
        except _LinkLost as exc:
            self._set_state("lost", str(exc))
        except _Stopped:
            self._goodbye()
            raise

    def _reset_dongle(self) -> None:
        """Leave whatever an earlier run left behind (a scan, connections). A BGAPI system reset
        would make the dongle re-enumerate on USB, so it is not used."""
        try:
            self._request(SYSTEM, 1, timeout=1.0)  # hello
        except TimeoutError:
            raise _NotADongle from None
        self._request(GAP, 4)  # end a scan or connection attempt (an error when none: fine)
        for connection in range(3):
            self._request(CONNECTION, 0, bytes([connection]))

    def _scan(self) -> tuple[bytes, int]:
        wanted = address_bytes(self.address) if self.address else None
        self.detail = (f"looking for the Myo {self.address}" if self.address
                       else "scanning for a Myo (wake it with a tap or by plugging it in)")
        self._result(self._request(GAP, 2, b"\x01"), 0, "scan")  # generic discovery

        def is_our_myo(message: Message) -> bool:
            if not (message.event and (message.cls, message.cmd) == (GAP, 0)):
                return False
            found = decode_scan_response(message.payload)
            if wanted is not None:
                return found.address == wanted
            return myo.advertises_control_service(found.data)

        try:
            found = decode_scan_response(self._wait_for(is_our_myo, SCAN_TIMEOUT_S, "Myo advertisement").payload)
        except TimeoutError:
            raise TimeoutError("no Myo found (is it charged and awake? tap it, or plug it in and out)") from None
        finally:
            self._request(GAP, 4)
        return found.address, found.address_type

    def _read(self, handle: int) -> bytes:
        reply = self._request(ATTCLIENT, 4, struct.pack("<BH", self._connection, handle))
        self._result(reply, 1, f"read of handle 0x{handle:02x}")
        message = self._wait_for(
            lambda m: m.event and (m.cls, m.cmd) == (ATTCLIENT, 5)
            and decode_attribute_value(m.payload)[:3] == (self._connection, handle, ATTRIBUTE_READ),
            REQUEST_TIMEOUT_S, f"value of handle 0x{handle:02x}")
        return decode_attribute_value(message.payload).value

    def _write(self, handle: int, data: bytes, timeout: float = REQUEST_TIMEOUT_S, stoppable: bool = True) -> None:
        """An ATT write request: it returns once the armband acknowledged it (one at a time: BGAPI
        runs a single attribute procedure per connection)."""
        payload = struct.pack("<BHB", self._connection, handle, len(data)) + data
        reply = self._request(ATTCLIENT, 5, payload, timeout, stoppable)
        self._result(reply, 1, f"write to handle 0x{handle:02x}")
        done = self._wait_for(lambda m: m.event and (m.cls, m.cmd) == (ATTCLIENT, 1) and m.payload[0] == self._connection,
                              timeout, f"acknowledgement of the write to handle 0x{handle:02x}", stoppable)
        self._result(done.payload, 1, f"write to handle 0x{handle:02x}")

    def _configure(self) -> None:
        self.firmware = myo.FirmwareVersion.decode(self._read(myo.HANDLE_FIRMWARE_VERSION))
        if self.firmware.major < 1:
            raise UserError(f"bled112: Myo firmware {self.firmware} is too old for this protocol; update it with Myo Connect")
        self.battery = myo.decode_battery(self._read(myo.HANDLE_BATTERY_LEVEL))
        self._write(myo.HANDLE_COMMAND, myo.set_sleep_mode(never_sleep=True))
        self._next_char = None
        handles = (myo.HANDLE_FILTERED_EMG,) if self.mode is myo.EmgMode.FILTERED else myo.HANDLE_EMG_DATA
        for handle in handles:
            self._write(handle + myo.CCCD_OFFSET, myo.ENABLE_NOTIFY)
        self._write(myo.HANDLE_COMMAND, myo.set_mode(self.mode))
        self._write(myo.HANDLE_COMMAND, myo.vibrate(myo.Vibration.SHORT))
        self._last_data = time.monotonic()

    def _stream(self) -> None:
        while not self._stop.is_set():
            self._next_message()
            if time.monotonic() - self._last_data > SILENCE_TIMEOUT_S:
                self._request(CONNECTION, 0, bytes([self._connection]))
                self._connection = None
                raise _LinkLost(f"no EMG for {SILENCE_TIMEOUT_S:.0f} s")
        raise _Stopped

    def _goodbye(self) -> None:
        """Stop the stream, let the armband sleep again and hang up; best effort, on the way out."""
        if self._connection is None or self._serial is None:
            return
        try:
            for data in (myo.set_mode(myo.EmgMode.NONE), myo.set_sleep_mode(never_sleep=False)):
                self._write(myo.HANDLE_COMMAND, data, timeout=0.5, stoppable=False)
            self._request(CONNECTION, 0, bytes([self._connection]), timeout=0.5, stoppable=False)
        except Exception:  # noqa: BLE001 - leaving anyway (the link may be gone already)
            pass
        self._connection = None

    # -- notifications ---------------------------------------------------------------------

    def _on_notification(self, handle: int, value: bytes) -> None:
        if handle == myo.HANDLE_FILTERED_EMG:
            decode = myo.decode_filtered_emg
        elif handle in myo.HANDLE_EMG_DATA:
            index = myo.HANDLE_EMG_DATA.index(handle)
            if self._next_char is not None:
                self.stats.dropped += 2 * ((index - self._next_char) % 4)
            self._next_char = (index + 1) % 4
            decode = myo.decode_emg
        else:
            return
        try:
            samples = decode(value)
        except myo.MyoDecodeError:
            self.stats.parse_errors += 1
            return
        self._last_data = time.monotonic()
        self.emit(samples)


def address_bytes_or_none(text: str) -> bytes | None:
    try:
        raw = address_bytes(text)
    except ValueError:
        return None
    return raw if len(raw) == 6 and text.count(":") == 5 else None
