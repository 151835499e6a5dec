"""Shared fixtures: the real data folder, a real JACK server (dummy driver), a receiving port, the
real panel window."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
JACK_SERVER = f"livegen-test-{os.getpid()}"  # private: test sessions running side by side don't share one


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data; skips (with the reason) when absent, unless LIVEGEN_REQUIRE_SHARED=1."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("LIVEGEN_REQUIRE_SHARED") == "1":
            pytest.fail(f"{path} is missing but LIVEGEN_REQUIRE_SHARED=1")
        pytest.skip(f"real data {path} is not here (a fresh clone without ../shared/data)")
    return path


@pytest.fixture(autouse=True)
def livegen_home(tmp_path_factory, monkeypatch):
    """Every test's presets, profiles, takes, journal and cache live in a folder of its own
    (``LIVEGEN_HOME``, inherited by the livegen processes a test starts), never in the real home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LIVEGEN_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def jack_server():
    """A JACK server with the dummy driver, private to the tests (its own server name). Its period
    is 1024 frames (21 ms): at 256 (5.3 ms) this VM's JACK missed cycles even with nothing else
    running (2 to 194 "client not finished" in an 18 s take), and a missed cycle loses its MIDI,
    so a receiver saw notes livegen had ended as stuck. At 1024: none under `loaded 4`."""
    if shutil.which("jackd") is None:
        if os.environ.get("LIVEGEN_REQUIRE_SHARED") == "1":
            pytest.fail("jackd is not installed (apt-get install jackd2); .ci/run installs it")
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(["jackd", "-n", JACK_SERVER, "-d", "dummy", "-r", "48000", "-p", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    os.environ["JACK_DEFAULT_SERVER"] = JACK_SERVER
    os.environ["JACK_NO_START_SERVER"] = "1"
    from livegen.midi import ports

    deadline = time.monotonic() + 10
    while not ports.api_available("jack"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("the JACK dummy server did not start")
        time.sleep(0.1)
    yield JACK_SERVER
    proc.terminate()
    proc.wait(5)
    os.environ.pop("JACK_DEFAULT_SERVER", None)


class Receiver:
    """A JACK MIDI input that records every message with its arrival time (within a poll).

    rtmidi's queue is read on a thread of the receiver's own, as livegen's inputs do: rtmidi's
    callback would run Python in JACK's real-time cycle, waiting there for the interpreter lock,
    and a late cycle garbled what the receiver heard (a chord's messages read as copies of its
    first), not what livegen sent."""

    POLL_SECONDS = 0.001
    QUEUE = 8192

    def __init__(self, name: str):
        import mido  # both need the system's MIDI libraries: loaded only by the tests that use JACK
        import rtmidi

        self._parse = mido.Message.from_bytes
        self.messages: list[tuple[float, object]] = []
        self.received = 0  # raw messages taken from rtmidi's queue
        self.unreadable = 0  # of those, the ones that are no MIDI message
        self._lock = threading.Lock()
        self._raw = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="RtMidiIn Client", queue_size_limit=self.QUEUE)
        self._raw.ignore_types(sysex=False, timing=False, active_sense=True)  # as mido's inputs
        self._raw.open_virtual_port(name)
        self.name = name
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"receiver {name}", daemon=True)
        self._reader.start()

    def _read(self):
        while not self._stop.is_set():
            event = self._raw.get_message()
            if event is None:
                time.sleep(self.POLL_SECONDS)
                continue
            at = time.monotonic()
            try:
                msg = self._parse(event[0])
            except ValueError:
                msg = None
            with self._lock:
                self.received += 1
                if msg is None:
                    self.unreadable += 1
                else:
                    self.messages.append((at, msg))

    def notes(self):
        with self._lock:
            return [m for _, m in self.messages if m.type in ("note_on", "note_off")]

    def hanging(self) -> int:
        """Notes switched on and never switched off by a note-off (all-notes-off does not count)."""
        on: dict[tuple[int, int], int] = {}
        for _, m in list(self.messages):
            if m.type == "note_on" and m.velocity > 0:
                on[(m.channel, m.note)] = on.get((m.channel, m.note), 0) + 1
            elif m.type in ("note_on", "note_off"):
                on[(m.channel, m.note)] = max(0, on.get((m.channel, m.note), 0) - 1)
        return sum(on.values())

    def settle(self, quiet: float = 0.5, limit: float = 10.0) -> None:
        """Wait until nothing has arrived for ``quiet`` s: JACK delivers in cycles, late on a busy VM."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self._lock:
                last = self.messages[-1][0] if self.messages else 0.0
            if time.monotonic() - last >= quiet:
                return
            time.sleep(0.05)

    def close(self):
        """Stop reading and close the port; a second call (a test that closed it, then the
        fixture) does nothing: rtmidi crashes on a port deleted twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._reader.join()
        self._raw.close_port()
        self._raw.delete()


@pytest.fixture
def receiver(jack_server, request):
    r = Receiver(f"recv-{request.node.name[:20]}")
    time.sleep(0.3)
    yield r
    r.close()


def dcrnn_frames(live, z):
    """The DCRNN runtime's frame probabilities, step by step, for one z per beat (rows of ``z``),
    each segment restarting its coarse RNN as the live generator does."""
    import numpy as np  # only the model tests need it

    c = live.config
    coarse, fine = live.initial_state(z[0])
    frames = []
    for k in range(len(z)):
        if k % (c.beats_per_bar * c.bars_per_segment) == 0:
            coarse = live.segment_start(z[k])
        coarse = live.coarse_step(z[k], k % c.beats_per_bar, coarse)
        for j in range(c.steps_per_beat):
            fine, frame = live.fine_step(coarse, z[k], j, fine)
            frames.append(frame)
    return np.stack(frames)


START_MS = 30_000  # a take starts in ~1 s; generous for a loaded 2-core CI machine


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """A panel (pytest-qt, offscreen) playing to ``port`` (a receiver's name) on JACK, from
    ``preset`` (else the default) with ``gui`` keys set; takes land in the test's
    ``paths.takes_dir()`` (``LIVEGEN_HOME``). Closed after the test."""
    from livegen import presets  # the panel and its Qt: only the panel's tests load them
    from livegen.gui.app import application
    from livegen.gui.window import MainWindow

    monkeypatch.chdir(tmp_path)
    application()
    windows = []

    def make(port: str = "", preset=None, **gui):
        preset = preset or presets.Preset()
        preset.output.api, preset.output.port = ("jack", port) if port else ("auto", "")
        preset.controls.density = 0.8
        for key, value in gui.items():
            setattr(preset.gui, key, value)
        window = MainWindow(preset)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


class ClockBand:
    """Another program's MIDI clock on JACK (tests/clock_band.py in a process of its own, so a busy
    test process never makes it a sloppy drummer): its port at once; on ``start()``, Start, then
    ticks at ``bpm``, settable."""

    def __init__(self, name: str, bpm: float):
        self.name = name
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("clock_band.py")), name, str(bpm)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self._proc.stdout.readline().strip() != "ready":
            self.close()
            pytest.fail(f"the clock band {name} did not start")

    def start(self) -> "ClockBand":
        self._tell("start")
        return self

    def set_bpm(self, bpm: float) -> None:
        self._tell(str(bpm))

    def _tell(self, line: str) -> None:
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def wait_playing(qtbot, window):
    qtbot.waitUntil(lambda: window.takes.engine is not None and window.takes.engine.now() > 0, timeout=START_MS)


def livegen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "livegen", *args]
