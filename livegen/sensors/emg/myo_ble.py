"""A Myo armband over Bluetooth LE through bleak (>= 3.1), on its own asyncio loop thread.

``--source myo`` scans for the control service UUID; ``myo:AA:BB:CC:DD:EE:FF`` connects to that
armband; options: ``mode=raw|raw-filtered|filtered`` (default raw-filtered, the armband's 200 Hz
filtered stream) and ``adapter=hci1`` (BlueZ). Once it has connected, a lost link is retried with
back-off for as long as the device runs: the engine sees no samples meanwhile, never an exception.
bleak loads only here; its client and scanner backends are injectable so the same path runs on an
emulated armband in the tests.
"""
from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from livegen import extras
from livegen.errors import UserError
from livegen.sensors.emg import myo
from livegen.sensors.emg.device import EmgDevice

_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")
_CB_UUID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")  # macOS names devices by UUID

SCAN_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 15.0
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0
GOODBYE_TIMEOUT_S = 2.0


class _Stopped(Exception):
    """``stop()`` was called while waiting on the radio."""


class MyoBle(EmgDevice):
    name = "myo"

    def __init__(self, address: str | None = None, mode: myo.EmgMode = myo.EmgMode.RAW_FILTERED,
                 adapter: str | None = None, *, client_backend: Any = None, scanner_backend: Any = None):
        super().__init__()
        self.address = address
        self.mode = mode
        self.adapter = adapter
        self.value_range = mode.value_range
        self.nominal_rate_hz = mode.rate_hz
        self.battery: int | None = None
        self.firmware: myo.FirmwareVersion | None = None
        self._client_backend = client_backend
        self._scanner_backend = scanner_backend
        self._next_char: int | None = None  # which EMG characteristic should notify next
        self._loop: asyncio.AbstractEventLoop | None = None  # the reader thread's
        self._backoff = FIRST_BACKOFF_S  # s before the next attempt
        self._ever_connected = False

    @property
    def sample_limits(self) -> tuple[float, float]:
        return self.mode.sample_limits

    @classmethod
    def from_spec(cls, args: str, **backends: Any) -> "MyoBle":
        address, options = myo.parse_spec("myo", args, "armband address", ("mode", "adapter"))
        if address and not (_MAC.match(address) or _CB_UUID.match(address)):
            raise UserError(f"--source myo:{address}: not a Bluetooth address; use AA:BB:CC:DD:EE:FF, "
                            "or --source myo alone to scan for the armband")
        mode = myo.parse_mode("myo", options["mode"]) if "mode" in options else myo.EmgMode.RAW_FILTERED
        if not backends.get("client_backend"):
            extras.require("emg", "--source myo", "bleak")
        return cls(address or None, mode, options.get("adapter") or None, **backends)

    # -- the reader thread -------------------------------------------------------------------

    def _run(self) -> None:
        """The reader's steps, each an attempt on this thread's own asyncio loop."""
        self._loop = asyncio.new_event_loop()
        try:
            super()._run()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _step(self) -> bool:
        return self._loop.run_until_complete(self._attempt())

    async def _attempt(self) -> bool:
        """Find, connect and stream until the link drops, then the back-off before the next
        attempt; True when there is no point in another."""
        from bleak.exc import BleakBluetoothNotAvailableError  # bleak (0.1 s): loaded when the reader starts

        self._set_state("reconnecting" if self._ever_connected else "connecting")
        try:
            await self._session(self._ever_connected)
            self._ever_connected = True
            self._backoff = FIRST_BACKOFF_S
        except _Stopped:
            return True
        except UserError as exc:  # the armband itself cannot do this (too old a firmware)
            self.error = str(exc)
            self._set_state("lost")
            return True
        except BleakBluetoothNotAvailableError as exc:
            if not self._ever_connected:
                self.error = (f"myo: Bluetooth is not available ({exc.reason.name.lower()}): switch the "
                              "adapter on and start bluetoothd, or use --source bled112 with the USB dongle")
                self._set_state("lost")
                return True
            self._retry_later(f"Bluetooth is not available ({exc.reason.name.lower()})", self._backoff)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
            if not self._ever_connected:  # BlueZ's D-Bus socket is missing or closed to us
                self.error = (f"myo: cannot reach the Bluetooth service ({exc}): start bluetoothd, "
                              "or use --source bled112 with the USB dongle")
                self._set_state("lost")
                return True
            self._retry_later(f"the Bluetooth service is unreachable ({exc})", self._backoff)
        except TimeoutError as exc:  # no armband found, or it did not answer
            self._retry_later(str(exc) or "the armband did not answer in time (out of range?)", self._backoff)
        except Exception as exc:  # noqa: BLE001 - any failure of one attempt means: try again later
            self._retry_later(f"{type(exc).__name__}: {exc}", self._backoff)
        if self._stop.is_set() or await self._sleep_unless_stopped(self._backoff):
            return True
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        return False

    async def _sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep, waking every 50 ms to notice ``stop()``; True when stopped."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(0.05, left))
        return True

    async def _unless_stopped(self, coro):
        """Await ``coro``, but give up (cancel it, raise ``_Stopped``) as soon as ``stop()`` is called:
        a scan or a connection attempt may take seconds and ``stop()`` waits 3 s at most."""
        task = asyncio.ensure_future(coro)
        while not task.done():
            if self._stop.is_set():
                task.cancel()
                await asyncio.wait({task})
                raise _Stopped
            await asyncio.wait({task}, timeout=0.05)
        return task.result()

    async def _find(self):
        from bleak import BleakScanner  # bleak (0.1 s): loaded when the reader starts

        kwargs: dict[str, Any] = {"backend": self._scanner_backend} if self._scanner_backend else {}
        if self.adapter:
            kwargs["bluez"] = {"adapter": self.adapter}
        if self.address:
            self.detail = f"looking for the Myo {self.address}"
            return await BleakScanner.find_device_by_address(self.address, timeout=SCAN_TIMEOUT_S, **kwargs)
        self.detail = "scanning for a Myo (wake it with a tap or by plugging it in)"
        return await BleakScanner.find_device_by_filter(
            lambda _device, adv: myo.CONTROL_SERVICE in adv.service_uuids, timeout=SCAN_TIMEOUT_S,
            service_uuids=[myo.CONTROL_SERVICE], **kwargs)

    async def _session(self, reconnecting: bool) -> None:
        """Find, connect, configure, stream until the link drops or ``stop()``; raises on failure."""
        from bleak import BleakClient  # bleak (0.1 s): loaded when the reader starts

        device = await self._unless_stopped(self._find())
        if device is None:
            raise TimeoutError("no Myo found (is it charged and awake? tap it, or plug it in and out)")
        link_down = asyncio.Event()
        kwargs: dict[str, Any] = {"backend": self._client_backend} if self._client_backend else {}
        if self.adapter:
            kwargs["bluez"] = {"adapter": self.adapter}
        client = BleakClient(device, disconnected_callback=lambda _client: link_down.set(),
                             timeout=CONNECT_TIMEOUT_S, **kwargs)
        self.detail = f"connecting to {device.address}"
        try:
            await self._unless_stopped(client.connect())
            await self._unless_stopped(self._configure(client))
            if reconnecting:
                self.stats.reconnects += 1
            self._set_state("connected", f"streaming {self.mode.spec_name} EMG from {device.address}")
            while not link_down.is_set():
                if await self._sleep_unless_stopped(0.2):
                    await self._goodbye(client)
                    return
            self._set_state("lost", "the armband went away (out of range, asleep or off)")
        finally:
            if client.is_connected:
                try:
                    await asyncio.wait_for(client.disconnect(), GOODBYE_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - already leaving; the link is dropped either way
                    pass

    async def _configure(self, client) -> None:
        # never-sleep must be a write *with response*: as a write command the armband ignores it
        await client.write_gatt_char(myo.COMMAND, myo.set_sleep_mode(never_sleep=True), response=True)
        self._next_char = None
        if self.mode is myo.EmgMode.FILTERED:
            await client.start_notify(myo.FILTERED_EMG, self._on_filtered)
        else:
            for index, uuid in enumerate(myo.EMG_DATA):
                await client.start_notify(uuid, self._emg_handler(index))
        await client.write_gatt_char(myo.COMMAND, myo.set_mode(self.mode), response=True)
        self.battery = myo.decode_battery(await client.read_gatt_char(myo.BATTERY_LEVEL))
        self.firmware = myo.FirmwareVersion.decode(await client.read_gatt_char(myo.FIRMWARE_VERSION))
        if self.firmware.major < 1:
            raise UserError(f"myo: firmware {self.firmware} is too old for this protocol; update it with Myo Connect")
        await client.write_gatt_char(myo.COMMAND, myo.vibrate(myo.Vibration.SHORT), response=True)

    async def _goodbye(self, client) -> None:
        """Stop the stream and let the armband sleep again, so it is not drained after the show."""
        try:
            await asyncio.wait_for(self._send_goodbye(client), GOODBYE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass

    @staticmethod
    async def _send_goodbye(client) -> None:
        await client.write_gatt_char(myo.COMMAND, myo.set_mode(myo.EmgMode.NONE), response=True)
        await client.write_gatt_char(myo.COMMAND, myo.set_sleep_mode(never_sleep=False), response=True)

    # -- notifications (on the BLE loop thread) -----------------------------------------------

    def _emg_handler(self, index: int):
        def on_emg(_characteristic, data: bytearray) -> None:
            self._on_emg(index, data)
        return on_emg

    def _on_emg(self, index: int, data: bytearray) -> None:
        """The four characteristics notify in turn, two samples each: a skipped turn is lost samples."""
        if self._next_char is not None:
            self.stats.dropped += 2 * ((index - self._next_char) % 4)
        self._next_char = (index + 1) % 4
        try:
            samples = myo.decode_emg(data)
        except myo.MyoDecodeError:
            self.stats.parse_errors += 1
            return
        self.emit(samples)

    def _on_filtered(self, _characteristic, data: bytearray) -> None:
        try:
            samples = myo.decode_filtered_emg(data)
        except myo.MyoDecodeError:
            self.stats.parse_errors += 1
            return
        self.emit(samples)
