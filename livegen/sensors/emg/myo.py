"""The Myo armband's Bluetooth protocol as data: UUIDs, ATT handles, command bytes, decoders.

Facts from thalmiclabs' public ``myohw.h`` (values are little-endian in practice, whatever the header
says) plus two the community found on real armbands: EMG mode 0x01 streams a 50 Hz rectified
envelope on a characteristic ``myohw.h`` does not list (``d5060104``: 8 uint16 and one flag byte),
and the fixed ATT handles a BLED112 client uses without discovering services. Pure functions only:
``myo_ble`` and ``bled112`` share them, and the emulators in the tests encode with them.
"""
from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass

import numpy as np

from livegen.errors import UserError

CHANNELS = 8


def myo_uuid(short: int) -> str:
    """A Myo 128-bit UUID from its 16-bit short id (the base is d506xxxx-a904-deb9-4748-2c7f4a124842)."""
    return f"d506{short:04x}-a904-deb9-4748-2c7f4a124842"


def sig_uuid(short: int) -> str:
    """A Bluetooth SIG 16-bit UUID in the 128-bit form bleak reports."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


CONTROL_SERVICE = myo_uuid(0x0001)  # advertised by every Myo: how a scan finds one
FIRMWARE_INFO = myo_uuid(0x0101)
FIRMWARE_VERSION = myo_uuid(0x0201)
COMMAND = myo_uuid(0x0401)
FILTERED_EMG_SERVICE = myo_uuid(0x0004)
FILTERED_EMG = myo_uuid(0x0104)  # mode 0x01: 50 Hz rectified envelope
EMG_SERVICE = myo_uuid(0x0005)
EMG_DATA = (myo_uuid(0x0105), myo_uuid(0x0205), myo_uuid(0x0305), myo_uuid(0x0405))
BATTERY_SERVICE = sig_uuid(0x180F)
BATTERY_LEVEL = sig_uuid(0x2A19)

# The control service UUID as it travels in advertising data (128-bit UUIDs are sent byte-reversed).
CONTROL_SERVICE_ADV = uuid.UUID(CONTROL_SERVICE).bytes[::-1]

# ATT value handles of a Myo's GATT table (stable across firmware 1.x); a client characteristic
# configuration descriptor (CCCD) sits right after each notifying value.
HANDLE_BATTERY_LEVEL = 0x11
HANDLE_FIRMWARE_INFO = 0x15
HANDLE_FIRMWARE_VERSION = 0x17
HANDLE_COMMAND = 0x19
HANDLE_FILTERED_EMG = 0x27
HANDLE_EMG_DATA = (0x2B, 0x2E, 0x31, 0x34)
CCCD_OFFSET = 1
ENABLE_NOTIFY = b"\x01\x00"  # CCCD value: notifications on


class EmgMode(enum.IntEnum):
    NONE = 0x00
    FILTERED = 0x01  # 50 Hz rectified envelope, uint16 (undocumented in myohw.h)
    RAW_FILTERED = 0x02  # 200 Hz, filtered by the armband (myohw "send_emg")
    RAW = 0x03  # 200 Hz, unfiltered ADC values (myohw "send_emg_raw")

    @classmethod
    def from_name(cls, name: str) -> "EmgMode":
        return cls[name.strip().upper().replace("-", "_")]

    @property
    def spec_name(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def rate_hz(self) -> float:
        return 50.0 if self is EmgMode.FILTERED else 200.0

    @property
    def value_range(self) -> tuple[float, float]:
        # the 50 Hz envelope is unsigned; calibration finds each user's real maximum
        return (0.0, 1024.0) if self is EmgMode.FILTERED else (-128.0, 127.0)

    @property
    def sample_limits(self) -> tuple[float, float]:
        """What a notification can encode: uint16 envelopes, int8 samples."""
        return (0.0, 65535.0) if self is EmgMode.FILTERED else (-128.0, 127.0)


class Command(enum.IntEnum):
    SET_MODE = 0x01
    VIBRATE = 0x03
    DEEP_SLEEP = 0x04
    VIBRATE2 = 0x07
    SET_SLEEP_MODE = 0x09
    UNLOCK = 0x0A
    USER_ACTION = 0x0B


class Vibration(enum.IntEnum):
    NONE = 0x00
    SHORT = 0x01
    MEDIUM = 0x02
    LONG = 0x03


IMU_MODE_NONE = 0x00
CLASSIFIER_DISABLED = 0x00
SLEEP_NORMAL = 0x00
SLEEP_NEVER = 0x01

# payload sizes of the commands we send; a command with another size is malformed
_PAYLOAD_SIZE = {Command.SET_MODE: 3, Command.VIBRATE: 1, Command.DEEP_SLEEP: 0, Command.SET_SLEEP_MODE: 1,
                 Command.UNLOCK: 1, Command.USER_ACTION: 1, Command.VIBRATE2: 18}


class MyoDecodeError(ValueError):
    """Bytes that are not the Myo structure they claim to be."""


def _command(command: Command, *payload: int) -> bytes:
    return bytes((command, len(payload), *payload))


def set_mode(emg: EmgMode, imu: int = IMU_MODE_NONE, classifier: int = CLASSIFIER_DISABLED) -> bytes:
    return _command(Command.SET_MODE, EmgMode(emg), imu, classifier)


def set_sleep_mode(never_sleep: bool) -> bytes:
    """Must be written *with response*: the armband ignores it as a write command."""
    return _command(Command.SET_SLEEP_MODE, SLEEP_NEVER if never_sleep else SLEEP_NORMAL)


def vibrate(kind: Vibration = Vibration.SHORT) -> bytes:
    return _command(Command.VIBRATE, Vibration(kind))


def decode_command(data: bytes) -> tuple[Command, bytes]:
    """(command, payload) of a command write: what an emulated armband understands."""
    if len(data) < 2:
        raise MyoDecodeError(f"command of {len(data)} bytes: the header alone is 2")
    try:
        command = Command(data[0])
    except ValueError:
        raise MyoDecodeError(f"unknown command 0x{data[0]:02x}") from None
    size = data[1]
    if size != _PAYLOAD_SIZE[command] or len(data) != 2 + size:
        raise MyoDecodeError(f"{command.name} with payload size {size} in {len(data)} bytes")
    return command, bytes(data[2:])


@dataclass(frozen=True)
class FirmwareVersion:
    major: int
    minor: int
    patch: int
    hardware_rev: int  # 1 Myo Alpha (REV-C), 2 Myo (REV-D)

    _FORMAT = struct.Struct("<4H")

    @classmethod
    def decode(cls, data: bytes) -> "FirmwareVersion":
        if len(data) != cls._FORMAT.size:
            raise MyoDecodeError(f"firmware version of {len(data)} bytes, expected 8")
        return cls(*cls._FORMAT.unpack(data))

    def encode(self) -> bytes:
        return self._FORMAT.pack(self.major, self.minor, self.patch, self.hardware_rev)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class FirmwareInfo:
    serial_number: bytes  # 6 bytes
    unlock_pose: int
    active_classifier_type: int
    active_classifier_index: int
    has_custom_classifier: bool
    stream_indicating: bool
    sku: int  # 1 black, 2 white

    _FORMAT = struct.Struct("<6sHBBBBB7x")

    @classmethod
    def decode(cls, data: bytes) -> "FirmwareInfo":
        if len(data) != cls._FORMAT.size:
            raise MyoDecodeError(f"firmware info of {len(data)} bytes, expected 20")
        serial, pose, ctype, cindex, custom, indicating, sku = cls._FORMAT.unpack(data)
        return cls(serial, pose, ctype, cindex, bool(custom), bool(indicating), sku)

    def encode(self) -> bytes:
        return self._FORMAT.pack(self.serial_number, self.unlock_pose, self.active_classifier_type,
                                 self.active_classifier_index, self.has_custom_classifier,
                                 self.stream_indicating, self.sku)


def decode_battery(data: bytes) -> int:
    if len(data) != 1 or data[0] > 100:
        raise MyoDecodeError(f"battery level {bytes(data).hex()} is not one byte of 0..100")
    return data[0]


EMG_NOTIFICATION_SIZE = 16
FILTERED_NOTIFICATION_SIZE = 17
_FILTERED = struct.Struct("<8HB")


def decode_emg(data: bytes) -> np.ndarray:
    """One EMG notification: two consecutive samples of 8 int8 channels -> (2, 8) float64."""
    if len(data) != EMG_NOTIFICATION_SIZE:
        raise MyoDecodeError(f"EMG notification of {len(data)} bytes, expected 16")
    return np.frombuffer(bytes(data), dtype=np.int8).reshape(2, CHANNELS).astype(np.float64)


def encode_emg(samples: np.ndarray) -> bytes:
    """Two samples (2, 8) of int8 range -> the 16 bytes a Myo notifies."""
    block = np.asarray(samples)
    if block.shape != (2, CHANNELS) or block.min() < -128 or block.max() > 127:
        raise ValueError(f"an EMG notification holds 2x8 values in -128..127, got {block.shape}")
    return block.astype(np.int8).tobytes()


def decode_filtered_emg(data: bytes) -> np.ndarray:
    """One mode-0x01 notification: 8 uint16 envelope values and a flag byte -> (1, 8) float64."""
    if len(data) != FILTERED_NOTIFICATION_SIZE:
        raise MyoDecodeError(f"filtered EMG notification of {len(data)} bytes, expected 17")
    return np.array([_FILTERED.unpack(bytes(data))[:CHANNELS]], dtype=np.float64)


def encode_filtered_emg(sample: np.ndarray, flags: int = 0) -> bytes:
    values = np.asarray(sample).reshape(CHANNELS)
    return _FILTERED.pack(*(int(v) for v in values), flags)


def advertises_control_service(adv_data: bytes) -> bool:
    """Does this advertising/scan-response data list the Myo control service?

    Walks the AD structures (length, type, data); types 0x06/0x07 carry 128-bit service UUIDs.
    Malformed data is simply not a Myo."""
    pos = 0
    while pos < len(adv_data):
        size = adv_data[pos]
        if size == 0 or pos + 1 + size > len(adv_data):
            return False
        kind, body = adv_data[pos + 1], adv_data[pos + 2:pos + 1 + size]
        if kind in (0x06, 0x07):
            for i in range(0, len(body) - 15, 16):
                if body[i:i + 16] == CONTROL_SERVICE_ADV:
                    return True
        pos += 1 + size
    return False


def parse_spec(kind: str, args: str, positional: str, options: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``[POSITIONAL][,key=value...]`` -> (positional or "", options); a bad spec is a ``UserError``."""
    first, found = "", {}
    for i, token in enumerate(t.strip() for t in args.split(",")):
        if not token:
            continue
        key, eq, value = token.partition("=")
        if not eq:
            if i != 0:
                raise UserError(f"--source {kind}:{args}: {token!r} must come first (the {positional}) or be key=value")
            first = token
        elif key.strip() not in options:
            raise UserError(f"--source {kind}: unknown option {key.strip()!r}; use {', '.join(options)}")
        else:
            found[key.strip()] = value.strip()
    return first, found


def parse_mode(kind: str, text: str) -> EmgMode:
    try:
        mode = EmgMode.from_name(text)
    except KeyError:
        mode = EmgMode.NONE
    if mode is EmgMode.NONE:
        names = ", ".join(m.spec_name for m in EmgMode if m is not EmgMode.NONE)
        raise UserError(f"--source {kind}: mode={text!r} is not an EMG stream; use one of {names}")
    return mode
