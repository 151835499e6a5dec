"""The Myo armband, without one: the protocol tables, a bumble-emulated Myo behind a real bleak
client (bleak's ``backend=`` plugs in a client that speaks real ATT over bumble's in-process
LocalLink), a BLED112 dongle emulator on a pty pair, and property tests on every decoder. The
emulators replay real recordings from ../shared/data/emg/myo-readings."""
from __future__ import annotations

import asyncio
import os
import random
import select
import struct
import threading
import time
import tty
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livegen.errors import UserError
from livegen.sensors.emg import bled112, myo
from livegen.sensors.emg.bled112 import Bled112Myo, BgapiParser
from livegen.sensors.emg.myo_ble import MyoBle
from conftest import shared_data

CONTROL = "d5060001-a904-deb9-4748-2c7f4a124842"
CONTROL_ON_AIR = uuid.UUID(CONTROL).bytes[::-1]  # 128-bit UUIDs travel byte-reversed
MYO_ADV = bytes([2, 0x01, 0x06, 17, 0x06]) + CONTROL_ON_AIR  # flags, incomplete 128-bit UUID list
FIRMWARE = b"\x01\x00\x05\x00\xb2\x07\x02\x00"  # 1.5.1970 on a REV-D, as a real armband reports it


def recording(n: int = 600) -> np.ndarray:
    """The first ``n`` samples of a real session alternating rest and gesture (int8 EMG, 200 Hz)."""
    path = shared_data("emg", "myo-readings", "12345-1", "7.txt")
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64, max_rows=n)
    return rows[:, :8].astype(np.int8)


def wait_until(condition, limit: float = 20.0, what: str = "condition", device=None) -> None:
    """Bounded wait for something that happens in another thread (no timing is asserted)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            where = f" ({device.state}: {device.detail}; {device.stats}; error {device.error})" if device else ""
            pytest.fail(f"gave up waiting {limit:.0f} s for {what}{where}")
        time.sleep(0.01)


class Sink:
    def __init__(self):
        self.blocks: list[np.ndarray] = []
        self.lock = threading.Lock()

    def __call__(self, samples, t):
        with self.lock:
            self.blocks.append(np.array(samples))

    def rows(self) -> np.ndarray:
        with self.lock:
            return np.vstack(self.blocks) if self.blocks else np.zeros((0, 8))

    def count(self) -> int:
        with self.lock:
            return sum(len(b) for b in self.blocks)


def assert_in_order(received: np.ndarray, sent: np.ndarray) -> list[int]:
    """Every received sample is a sent one, in the sent order (a lost one may be missing): the
    indices matched, for gap checks."""
    indices, at = [], 0
    for row in received:
        while at < len(sent) and not np.array_equal(sent[at], row):
            at += 1
        assert at < len(sent), f"sample {len(indices)} ({row}) is not next in the recording"
        indices.append(at)
        at += 1
    return indices


# -- the protocol tables -----------------------------------------------------------------------

@pytest.mark.parametrize("encoded, expected", [
    (myo.set_mode(myo.EmgMode.RAW), b"\x01\x03\x03\x00\x00"),
    (myo.set_mode(myo.EmgMode.RAW_FILTERED), b"\x01\x03\x02\x00\x00"),
    (myo.set_mode(myo.EmgMode.FILTERED), b"\x01\x03\x01\x00\x00"),
    (myo.set_mode(myo.EmgMode.NONE), b"\x01\x03\x00\x00\x00"),
    (myo.set_sleep_mode(never_sleep=True), b"\x09\x01\x01"),
    (myo.set_sleep_mode(never_sleep=False), b"\x09\x01\x00"),
    (myo.vibrate(myo.Vibration.SHORT), b"\x03\x01\x01"),
    (myo.vibrate(myo.Vibration.LONG), b"\x03\x01\x03"),
])
def test_command_bytes_round_trip(encoded, expected):
    assert encoded == expected
    command, payload = myo.decode_command(encoded)
    assert command == expected[0] and payload == expected[2:]


def test_uuids_and_handles_match_the_published_table():
    assert myo.CONTROL_SERVICE == CONTROL
    assert myo.COMMAND == "d5060401-a904-deb9-4748-2c7f4a124842"
    assert myo.EMG_DATA == tuple(f"d506{n}05-a904-deb9-4748-2c7f4a124842" for n in ("01", "02", "03", "04"))
    assert myo.BATTERY_LEVEL == "00002a19-0000-1000-8000-00805f9b34fb"
    assert myo.CONTROL_SERVICE_ADV == bytes.fromhex("4248124a7f2c4847b9de04a9010006d5")  # kMyoServiceInfoUuid
    assert [h + myo.CCCD_OFFSET for h in myo.HANDLE_EMG_DATA] == [0x2C, 0x2F, 0x32, 0x35]


def test_structures_round_trip():
    version = myo.FirmwareVersion.decode(FIRMWARE)
    assert (version.major, version.minor, version.patch, version.hardware_rev) == (1, 5, 1970, 2)
    assert version.encode() == FIRMWARE
    info = myo.FirmwareInfo(b"\x8e\x32\x94\x85\x3b\xd2", 5, 0, 0, False, True, 1)
    assert myo.FirmwareInfo.decode(info.encode()) == info and len(info.encode()) == 20
    assert myo.decode_battery(b"\x57") == 87
    block = np.array([[1, -2, 3, -4, 127, -128, 0, 5], [9, 8, 7, 6, 5, 4, 3, 2]])
    assert myo.encode_emg(block) == bytes([1, 254, 3, 252, 127, 128, 0, 5, 9, 8, 7, 6, 5, 4, 3, 2])
    assert np.array_equal(myo.decode_emg(myo.encode_emg(block)), block)
    envelope = np.array([35, 48, 186, 52, 43, 41, 48, 665])  # real mode-0x01 values
    assert myo.encode_filtered_emg(envelope)[:2] == b"\x23\x00"  # little-endian uint16
    assert np.array_equal(myo.decode_filtered_emg(myo.encode_filtered_emg(envelope))[0], envelope)
    assert myo.advertises_control_service(MYO_ADV)
    assert not myo.advertises_control_service(bytes([2, 1, 6, 3, 3, 0x0D, 0x18]))  # a heart-rate strap


def test_real_recording_survives_notification_encoding():
    samples = recording(400)
    decoded = np.vstack([myo.decode_emg(myo.encode_emg(samples[i:i + 2])) for i in range(0, len(samples), 2)])
    assert np.array_equal(decoded, samples)


@pytest.mark.parametrize("kind, spec", [
    (MyoBle, "AA:BB:CC"), (MyoBle, "mode=loud"), (MyoBle, "mode=none"), (MyoBle, "colour=red"),
    (MyoBle, "mode=raw,AA:BB:CC:DD:EE:FF"), (Bled112Myo, "/dev/ttyNOPE9"),
    (Bled112Myo, "/dev/null,myo=12:34"),
])
def test_bad_specs_say_what_to_do(kind, spec):
    with pytest.raises(UserError) as caught:
        kind.from_spec(spec)
    assert "\n" not in str(caught.value)


def test_specs_choose_address_and_mode():
    device = MyoBle.from_spec("AA:BB:CC:DD:EE:FF,mode=raw")
    assert (device.address, device.mode, device.nominal_rate_hz) == ("AA:BB:CC:DD:EE:FF", myo.EmgMode.RAW, 200.0)
    device = MyoBle.from_spec("mode=filtered")
    assert device.address is None and device.nominal_rate_hz == 50.0 and device.value_range[0] == 0.0
    device = Bled112Myo.from_spec("/dev/null,mode=raw,myo=aa:bb:cc:dd:ee:ff")
    assert (device.port, device.mode, device.address) == ("/dev/null", myo.EmgMode.RAW, "aa:bb:cc:dd:ee:ff")


def test_bled112_without_a_dongle_is_one_line(monkeypatch):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    with pytest.raises(UserError, match="no BLED112 dongle found"):
        Bled112Myo.from_spec("")


# -- BLE: a bumble-emulated Myo behind bleak -----------------------------------------------------

class Air:
    """bumble's in-process radio (LocalLink) on its own thread: like the OS Bluetooth stack, it
    runs beside the device's own asyncio loop."""

    def __init__(self):
        from bumble.link import LocalLink

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bumble-air", daemon=True)
        self.thread.start()
        self.link = self.run(self._make_link(LocalLink))

    @staticmethod
    async def _make_link(factory):
        return factory()

    @staticmethod
    async def _cancel_everything():
        """bumble keeps tasks running (advertising restarts): end them before the loop stops."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def run(self, coro, limit: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(limit)

    async def device(self, name: str, address: str):
        from bumble.controller import Controller
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.host import Host

        controller = Controller(name, link=self.link)
        return Device(name, address=Address(address), host=Host(controller, controller))

    def close(self):
        self.run(self._cancel_everything())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class EmulatedMyo:
    """A Myo's GATT table on a bumble peripheral; streams a recording once EMG mode is set."""

    ADDRESS = "D0:13:C3:1A:2B:3C"

    def __init__(self, air: Air, samples: np.ndarray):
        self.air, self.samples = air, samples
        self.sent = 0  # samples notified so far
        self.writes: list[tuple[str, bytes]] = []  # ("request" | "command", value) on the command characteristic
        self.mode = 0
        self.task = None
        self.connection = None
        air.run(self._setup())

    async def _setup(self):
        from bumble.core import AdvertisingData
        from bumble.gatt import Characteristic, CharacteristicValue, Service

        props, perms = Characteristic.Properties, Characteristic.Permissions
        self.device = await self.air.device("myo", self.ADDRESS)
        self.command = Characteristic(myo.COMMAND, props.WRITE | props.WRITE_WITHOUT_RESPONSE, perms.WRITEABLE,
                                      CharacteristicValue(write=self._on_command))
        self.emg = [Characteristic(u, props.NOTIFY, perms.READABLE, bytes(16)) for u in myo.EMG_DATA]
        self.device.add_services([
            Service("180F", [Characteristic("2A19", props.READ | props.NOTIFY, perms.READABLE, bytes([87]))]),
            Service(CONTROL, [
                Characteristic(myo.FIRMWARE_INFO, props.READ, perms.READABLE, bytes(20)),
                Characteristic(myo.FIRMWARE_VERSION, props.READ, perms.READABLE, FIRMWARE),
                self.command]),
            Service(myo.FILTERED_EMG_SERVICE, [Characteristic(myo.FILTERED_EMG, props.NOTIFY, perms.READABLE, bytes(17))]),
            Service(myo.EMG_SERVICE, self.emg),
        ])
        server = self.device.gatt_server
        for kind in ("request", "command"):
            self._spy(server, kind)
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        self.device.advertising_data = bytes(AdvertisingData.from_bytes(MYO_ADV))
        await self.device.start_advertising(auto_restart=True)

    def _spy(self, server, kind: str):
        name = f"on_att_write_{kind}"
        original = getattr(server, name)

        def spy(bearer, request):
            if request.attribute_handle == self.command.handle:
                self.writes.append((kind, bytes(request.attribute_value)))
            return original(bearer, request)
        setattr(server, name, spy)

    def _on_connection(self, connection):
        self.connection = connection
        connection.on("disconnection", lambda reason: self._stop_stream())

    def _on_command(self, _connection, value: bytes):
        if value[:2] == b"\x01\x03":
            self.mode = value[2]
            self._stop_stream()
            if self.mode in (0x02, 0x03):
                self.task = asyncio.ensure_future(self._stream())

    def _stop_stream(self):
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _stream(self):
        """Two samples per notification, the four characteristics in turn, faster than 200 Hz."""
        while self.sent + 2 <= len(self.samples):
            for _ in range(4):
                if self.sent + 2 > len(self.samples):
                    break
                characteristic = self.emg[(self.sent // 2) % 4]
                block = self.samples[self.sent:self.sent + 2].tobytes()
                self.sent += 2  # counted before the await: a drop can cancel it after the packet left
                await self.device.notify_subscribers(characteristic, block)
            await asyncio.sleep(0.004)

    def drop_link(self):
        async def drop():
            await self.connection.disconnect()
        self.air.run(drop())


def bumble_backends(air: Air):
    """A bleak client backend and scanner backend that drive a bumble central on ``air``."""
    from bleak.backends.characteristic import BleakGATTCharacteristic
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
    from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
    from bumble.core import AdvertisingData
    from bumble.device import Peer
    from bumble.gatt import Characteristic

    central = air.run(air.device("central", "D0:00:00:00:00:01"))
    air.run(central.power_on())

    async def on_air(coro):
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, air.loop))

    def full_uuid(u) -> str:
        return str(uuid.UUID(bytes=bytes(reversed(u.to_bytes(force_128=True)))))

    names = {Characteristic.Properties.READ: "read", Characteristic.Properties.WRITE: "write",
             Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
             Characteristic.Properties.NOTIFY: "notify", Characteristic.Properties.INDICATE: "indicate"}

    class BumbleClient(BaseBleakClient):
        def __init__(self, address_or_ble_device, **kwargs):
            super().__init__(address_or_ble_device, disconnected_callback=kwargs.get("disconnected_callback"),
                             timeout=kwargs.get("timeout", 10.0))
            self._connection = None

        @property
        def mtu_size(self) -> int:
            return 23

        @property
        def is_connected(self) -> bool:
            return self._connection is not None

        async def connect(self, pair: bool, **kwargs) -> None:
            loop = asyncio.get_running_loop()

            def lost(_reason):
                self._connection = None
                if self._disconnected_callback is not None:
                    loop.call_soon_threadsafe(self._disconnected_callback)

            async def connect():
                connection = await central.connect(self.address, timeout=self._timeout)
                connection.on("disconnection", lost)
                peer = Peer(connection)
                await peer.discover_services()
                for service in peer.services:
                    await service.discover_characteristics()
                return connection, peer

            self._connection, peer = await on_air(connect())
            services = BleakGATTServiceCollection()
            for service in peer.services:
                bleak_service = BleakGATTService(service, service.handle, full_uuid(service.uuid))
                services.add_service(bleak_service)
                for char in service.characteristics:
                    properties = [name for flag, name in names.items() if char.properties & flag]
                    services.add_characteristic(BleakGATTCharacteristic(
                        char, char.handle, full_uuid(char.uuid), properties, lambda: 20, bleak_service))
            self.services = services

        async def disconnect(self) -> None:
            if self._connection is not None:
                await on_air(self._connection.disconnect())

        async def read_gatt_char(self, characteristic, **kwargs) -> bytearray:
            return bytearray(await on_air(characteristic.obj.read_value()))

        async def write_gatt_char(self, characteristic, data, response: bool) -> None:
            await on_air(characteristic.obj.write_value(bytes(data), with_response=response))

        async def start_notify(self, characteristic, callback, **kwargs) -> None:
            loop = asyncio.get_running_loop()
            await on_air(characteristic.obj.subscribe(lambda value: loop.call_soon_threadsafe(callback, bytearray(value))))

        async def stop_notify(self, characteristic) -> None:
            await on_air(characteristic.obj.unsubscribe())

        async def pair(self, *args, **kwargs):
            raise NotImplementedError("the emulated Myo needs no pairing")

        async def unpair(self):
            raise NotImplementedError("the emulated Myo needs no pairing")

        async def read_gatt_descriptor(self, descriptor, **kwargs):
            raise NotImplementedError("not used by livegen")

        async def write_gatt_descriptor(self, descriptor, data):
            raise NotImplementedError("not used by livegen")

    class BumbleScanner(BaseBleakScanner):
        def __init__(self, detection_callback, service_uuids, scanning_mode="active", **kwargs):
            super().__init__(detection_callback, service_uuids)
            self._handler = None

        async def start(self) -> None:
            loop = asyncio.get_running_loop()
            self.seen_devices = {}

            def on_advertisement(advertisement):
                listed = [advertisement.data.get(t) or [] for t in (
                    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS)]
                uuids = [full_uuid(u) for group in listed for u in group]
                address = advertisement.address.to_string(with_type_qualifier=False)
                loop.call_soon_threadsafe(self._seen, address, uuids, advertisement.rssi)

            async def start():
                central.on("advertisement", on_advertisement)
                await central.start_scanning()

            self._handler = on_advertisement
            await on_air(start())

        def _seen(self, address, uuids, rssi):
            adv = AdvertisementData(None, {}, {}, uuids, None, rssi, ())
            device = self.create_or_update_device(address, address, "Myo", None, adv)
            if self.is_allowed_uuid(uuids):
                self.call_detection_callbacks(device, adv)

        async def stop(self) -> None:
            async def stop():
                central.remove_listener("advertisement", self._handler)
                await central.stop_scanning()
            await on_air(stop())

    return BumbleClient, BumbleScanner


@pytest.fixture
def air():
    pytest.importorskip("bumble", reason="bumble emulates the armband: pip install -e .[dev]")
    world = Air()
    yield world
    world.close()


def test_ble_myo_streams_reconnects_and_resumes(air):
    samples = recording(600)
    armband = EmulatedMyo(air, samples)
    client, scanner = bumble_backends(air)
    device = MyoBle.from_spec("mode=raw", client_backend=client, scanner_backend=scanner)
    states, sink = [device.state], Sink()
    device.on_state = states.append
    device.start(sink)
    try:
        wait_until(lambda: sink.count() >= 200, what="200 samples over the emulated link", device=device)
        armband.drop_link()
        wait_until(lambda: device.stats.reconnects == 1 and device.state == "connected", what="the reconnection", device=device)
        wait_until(lambda: sink.count() >= len(samples) - 20 and armband.sent == len(samples),
                   what="the rest of the recording", device=device)
    finally:
        device.stop()
    assert device.error is None and device.state == "stopped"
    assert states[:2] == ["connecting", "connected"]
    assert states[2:5] == ["lost", "reconnecting", "connected"]
    assert all(len(block) == 2 for block in sink.blocks)  # each notification whole
    indices = assert_in_order(sink.rows(), samples)
    assert indices[-1] == len(samples) - 1
    assert device.stats.samples == len(indices) and device.stats.parse_errors == 0
    never_sleep = [kind for kind, value in armband.writes if value == b"\x09\x01\x01"]
    assert never_sleep == ["request", "request"]  # once per connection, always with response
    assert armband.writes.count(("request", b"\x01\x03\x03\x00\x00")) == 2  # raw mode, IMU and classifier off
    assert armband.writes.count(("request", b"\x03\x01\x01")) == 2  # a short vibration when ready
    assert ("request", b"\x09\x01\x00") in armband.writes  # stop() lets the armband sleep again
    assert (device.battery, str(device.firmware)) == (87, "1.5.1970")


def test_ble_myo_by_address_keeps_trying_until_it_appears(air):
    client, scanner = bumble_backends(air)
    device = MyoBle.from_spec(f"{EmulatedMyo.ADDRESS},mode=raw-filtered", client_backend=client, scanner_backend=scanner)
    sink = Sink()
    device.start(sink)
    try:
        time.sleep(0.3)
        assert device.state == "connecting" and device.error is None
        armband = EmulatedMyo(air, recording(200))
        wait_until(lambda: sink.count() >= 100, what="samples once the armband appeared", device=device)
    finally:
        device.stop()
    assert armband.mode == 0x00  # switched off on the way out
    assert_in_order(sink.rows(), armband.samples)


# -- BLED112: a dongle emulator on a pty pair ------------------------------------------------------

class DongleEmulator(threading.Thread):
    """Speaks BGAPI like a BLED112 with one Myo in range (and a stranger); encodes with struct,
    independently of the code under test. Can spit garbage and drop the link mid-stream."""

    CONNECTION = 0
    MYO = bytes([0x3C, 0x2B, 0x1A, 0xC3, 0x13, 0xD0])  # D0:13:C3:1A:2B:3C, least significant first

    def __init__(self, fd: int, samples: np.ndarray, garbage_at=(), drop_at=None):
        super().__init__(name="bled112-emulator", daemon=True)
        self.fd, self.samples = fd, samples
        self.garbage_at, self.drop_at = set(garbage_at), drop_at
        self.sent = 0
        self.writes: list[tuple[int, bytes]] = []  # (handle, value) of ATT write requests
        self.commands: list[tuple[int, int]] = []
        self.subscribed: set[int] = set()
        self.streaming = False
        self.connected = False
        self.halt = threading.Event()
        self.rng = random.Random(5)

    def out(self, event: bool, cls: int, cmd: int, payload: bytes = b""):
        os.write(self.fd, struct.pack("<BBBB", 0x80 if event else 0, len(payload), cls, cmd) + payload)

    def run(self):
        pending = b""
        while not self.halt.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.003)
            if ready:
                try:
                    pending += os.read(self.fd, 4096)
                except OSError:
                    return
                while len(pending) >= 4 and len(pending) >= 4 + pending[1]:
                    size = 4 + pending[1]
                    self.command(pending[2], pending[3], pending[4:size])
                    pending = pending[size:]
            if self.streaming:
                self.stream()

    def command(self, cls: int, cmd: int, body: bytes):
        self.commands.append((cls, cmd))
        if (cls, cmd) == (0, 1):
            self.out(False, 0, 1)
        elif (cls, cmd) == (6, 4):
            self.out(False, 6, 4, struct.pack("<H", 0))
        elif (cls, cmd) == (3, 0):
            if self.connected and body[0] == self.CONNECTION:
                self.connected = self.streaming = False
                self.out(False, 3, 0, struct.pack("<BH", body[0], 0))
                self.out(True, 3, 4, struct.pack("<BH", body[0], 0x0216))
            else:
                self.out(False, 3, 0, struct.pack("<BH", body[0], 0x0186))  # not connected
        elif (cls, cmd) == (6, 2):
            self.out(False, 6, 2, struct.pack("<H", 0))
            stranger = bytes([2, 1, 6, 3, 3, 0x0D, 0x18])
            for address, data in ((b"\x01\x02\x03\x04\x05\x06", stranger), (self.MYO, MYO_ADV)):
                self.out(True, 6, 0, struct.pack("<bB6sBBB", -60, 0, address, 0, 255, len(data)) + data)
        elif (cls, cmd) == (6, 3):
            address, _kind = struct.unpack_from("<6sB", body)
            assert address == self.MYO
            self.connected = True
            self.subscribed.clear()
            self.out(False, 6, 3, struct.pack("<HB", 0, self.CONNECTION))
            self.out(True, 3, 0, struct.pack("<BB6sBHHHB", self.CONNECTION, 0x05, self.MYO, 0, 6, 64, 0, 255))
        elif (cls, cmd) == (4, 4):
            connection, handle = struct.unpack("<BH", body)
            value = {0x17: FIRMWARE, 0x11: bytes([87])}[handle]
            self.out(False, 4, 4, struct.pack("<BH", connection, 0))
            self.out(True, 4, 5, struct.pack("<BHBB", connection, handle, 0, len(value)) + value)
        elif (cls, cmd) == (4, 5):
            connection, handle, size = struct.unpack_from("<BHB", body)
            value = body[4:4 + size]
            self.writes.append((handle, value))
            self.out(False, 4, 5, struct.pack("<BH", connection, 0))
            self.out(True, 4, 1, struct.pack("<BHH", connection, 0, handle))
            if value == b"\x01\x00":
                self.subscribed.add(handle - 1)
            elif handle == 0x19 and value[:2] == b"\x01\x03":
                self.streaming = value[2] in (2, 3) and self.subscribed >= {0x2B, 0x2E, 0x31, 0x34}

    def stream(self):
        for _ in range(4):
            if self.sent + 2 > len(self.samples):
                return
            if self.sent in self.garbage_at:
                self.garbage_at.discard(self.sent)
                junk = bytes(self.rng.randrange(256) for _ in range(23))
                truncated = struct.pack("<BBBBBHBB", 0x80, 21, 4, 5, 0, 0x2B, 1, 16) + b"\x07\x07"
                os.write(self.fd, junk + truncated)
            if self.sent == self.drop_at:
                self.drop_at = None
                self.connected = self.streaming = False
                self.out(True, 3, 4, struct.pack("<BH", self.CONNECTION, 0x0208))  # supervision timeout
                return
            handle = (0x2B, 0x2E, 0x31, 0x34)[(self.sent // 2) % 4]
            value = self.samples[self.sent:self.sent + 2].tobytes()
            self.out(True, 4, 5, struct.pack("<BHBB", self.CONNECTION, handle, 1, 16) + value)
            self.sent += 2


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_bled112_streams_through_garbage_and_a_dropped_link(pty_pair):
    master, port = pty_pair
    samples = recording(800)
    dongle = DongleEmulator(master, samples, garbage_at=(100, 300), drop_at=400)
    dongle.start()
    device = Bled112Myo.from_spec(f"{port},mode=raw")
    states, sink = [device.state], Sink()
    device.on_state = states.append
    device.start(sink)
    try:
        wait_until(lambda: dongle.sent == len(samples) and sink.count() + device.stats.dropped >= len(samples),
                   what="the whole recording through the pty", device=device)
    finally:
        device.stop()
        dongle.halt.set()
        dongle.join(5)
    assert device.error is None, device.error
    assert states[:5] == ["connecting", "connected", "lost", "reconnecting", "connected"]
    assert device.stats.reconnects == 1
    assert device.stats.resyncs >= 2  # once per injection of garbage
    indices = assert_in_order(sink.rows(), samples)
    assert all(len(block) == 2 for block in sink.blocks)
    # resynchronised within a frame: at most the notification the garbage ran into is lost, and it is counted
    assert device.stats.samples + device.stats.dropped == len(samples)
    assert device.stats.dropped <= 4 and indices[-1] == len(samples) - 1
    command_writes = [value for handle, value in dongle.writes if handle == 0x19]
    assert command_writes.count(b"\x09\x01\x01") == 2  # never-sleep, as acknowledged write requests
    assert command_writes.count(b"\x01\x03\x03\x00\x00") == 2 and command_writes.count(b"\x03\x01\x01") == 2
    assert command_writes[-2:] == [b"\x01\x03\x00\x00\x00", b"\x09\x01\x00"]  # goodbye: stream off, may sleep
    assert (device.battery, str(device.firmware)) == (87, "1.5.1970")


def test_bled112_port_that_is_no_dongle_is_one_line(pty_pair):
    _master, port = pty_pair  # nothing answers on the other side
    device = Bled112Myo.from_spec(port)
    device.start(Sink())
    wait_until(lambda: device.state == "lost", what="the verdict on a silent port")
    device.stop()
    assert "nothing on" in device.error and "answers BGAPI" in device.error and "\n" not in device.error


# -- property tests: bytes from hell --------------------------------------------------------------

def notification(handle: int, value: bytes) -> bytes:
    return struct.pack("<BBBBBHBB", 0x80, 5 + len(value), 4, 5, 0, handle, 1, len(value)) + value


def emg_frames(count: int) -> list[bytes]:
    values = np.random.default_rng(count).integers(-128, 128, size=(count, 16)).astype(np.int8)
    return [notification(0x2B + 3 * (i % 4), values[i].tobytes()) for i in range(count)]


def parse(stream: bytes, cuts: list[int]) -> tuple[list[bytes], BgapiParser]:
    parser, out, start = BgapiParser(), [], 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts) + [len(stream)]:
        out += parser.feed(stream[start:cut])
        start = cut
    out += parser.feed(b"", idle=True)
    return [bled112.encode(m.event, m.cls, m.cmd, m.payload) for m in out], parser


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_bgapi_parser_survives_random_bytes(data, cuts):
    frames, parser = parse(data, cuts)
    assert len(parser._buf) == 0  # nothing is held back after a pause
    for frame in frames:  # whatever it accepted is a well-formed frame
        assert len(frame) >= 4 and len(frame) == 4 + frame[1]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=80), st.integers(2, 12), st.lists(st.integers(0, 2000), max_size=6))
def test_bgapi_parser_resyncs_within_one_frame(garbage, count, cuts):
    frames = emg_frames(count)
    decoded, parser = parse(garbage + b"".join(frames), cuts)
    tail = decoded[-(count - 1):]
    assert tail == frames[1:], "every frame after the first one following the garbage is recovered"


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 10), st.data())
def test_bgapi_parser_recovers_from_a_truncated_frame(count, data):
    frames = emg_frames(count)
    broken = data.draw(st.integers(0, count - 2))
    keep = data.draw(st.integers(1, len(frames[broken]) - 1))
    stream = b"".join(frames[:broken]) + frames[broken][:keep] + b"".join(frames[broken + 1:])
    decoded, _ = parse(stream, data.draw(st.lists(st.integers(0, 1000), max_size=4)))
    assert decoded[:broken] == frames[:broken]
    after = frames[broken + 2:]  # the cut frame is lost, and at most the one it ran into
    assert not after or decoded[-len(after):] == after


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_myo_decoders_take_any_bytes(data):
    for decode in (myo.decode_emg, myo.decode_filtered_emg, myo.decode_battery, myo.decode_command,
                   myo.FirmwareVersion.decode, myo.FirmwareInfo.decode):
        try:
            decode(data)
        except myo.MyoDecodeError:
            pass
    assert myo.advertises_control_service(data) in (True, False)
    assert myo.advertises_control_service(data + MYO_ADV) in (True, False)


# -- real hardware, opt-in --------------------------------------------------------------------------

hardware = pytest.mark.skipif(os.environ.get("LIVEGEN_HARDWARE") != "1",
                              reason="needs a Myo armband (and a BLED112 for the dongle test): set LIVEGEN_HARDWARE=1")


@pytest.mark.hardware
@hardware
@pytest.mark.parametrize("spec", [os.environ.get("LIVEGEN_MYO", "myo"), "bled112"])
def test_real_armband_streams_at_its_rate(spec):
    from livegen.sensors.emg.bled112 import Bled112Myo as dongle

    kind, _, args = spec.partition(":")
    device = (dongle if kind == "bled112" else MyoBle).from_spec(args)
    sink = Sink()
    device.start(sink)
    try:
        wait_until(lambda: device.state == "connected" or device.error, limit=60, what="a connection")
        assert device.error is None, device.error
        started, first = time.monotonic(), sink.count()
        wait_until(lambda: sink.count() - first >= 2 * device.nominal_rate_hz, limit=30, what="two seconds of EMG")
        rate = (sink.count() - first) / (time.monotonic() - started)
    finally:
        device.stop()
    print(f"{spec}: {rate:.0f} samples/s, battery {device.battery}%, firmware {device.firmware}, {device.stats}")
    assert device.stats.parse_errors == 0
