"""Start-up: launch of ``livegen perform`` → its first note-on at a JACK port, as a user sees it.

Each launch is a fresh process (``python -m livegen perform --api jack --port ...``) started by
this one, which listens on a JACK input of its own and stamps the first note-on's arrival against
the monotonic clock the launch was stamped with. With no JACK server running, a private one with
the dummy driver is started for the measurement (Debian's ``jackd2``) and stopped after it.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

from livegen.errors import UserError
from livegen.midi import ports

RECEIVER = "livegen-bench-startup"
SERVER_START_TIMEOUT = 10.0  # s for a private JACK server to come up
LAUNCH_TIMEOUT = 60.0  # s one launch may take before it counts as failed


def startup_bench(launches: int = 5, seconds: float = 3.0, log=print) -> dict:
    """Median (and each) of ``launches`` launch → first-note times, in seconds."""
    server = None if ports.api_available("jack") else _private_jack(log)
    try:
        return _measure(launches, seconds, log)
    finally:
        if server is not None:
            with ports.quiet_stderr():  # libjack's clients here say the server went, straight to fd 2
                server.terminate()
                server.wait(5)
                time.sleep(0.2)


def _measure(launches: int, seconds: float, log) -> dict:
    import mido  # the MIDI library: loaded when the bench runs

    first: list[float] = []
    lock = threading.Lock()

    def on_message(msg) -> None:
        if msg.type == "note_on" and msg.velocity:
            with lock:
                first.append(time.monotonic())

    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    receiver = backend.open_input(RECEIVER, virtual=True, callback=on_message, client_name=RECEIVER)
    times, failures = [], []
    try:
        time.sleep(0.3)  # the receiving port is seen by new JACK clients
        command = [sys.executable, "-m", "livegen", "perform", "--api", "jack", "--port", RECEIVER,
                   "--duration", f"{seconds:g}"]
        for i in range(launches):
            with lock:
                first.clear()
            t0 = time.monotonic()
            proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  timeout=LAUNCH_TIMEOUT, check=False)
            with lock:
                at = first[0] - t0 if first else None
            if proc.returncode != 0 or at is None:
                last = (proc.stderr.strip().splitlines() or ["no note arrived"])[-1]
                failures.append(f"launch {i + 1}: rc {proc.returncode}, {last}")
                log(f"bench: start-up launch {i + 1}: failed ({last})")
                continue
            times.append(at)
            log(f"bench: start-up launch {i + 1}: first note after {at:.3f} s")
            time.sleep(0.5)  # the last launch's JACK client is gone before the next one
    finally:
        receiver.close()
        del receiver  # its JACK client goes now, before a private server stops
    if not times:
        raise UserError(f"no launch of livegen perform played a note: {failures[0]}")
    return {"launches": len(times), "failed": failures, "first_note_s": [round(t, 3) for t in times],
            "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3)}


def _private_jack(log) -> subprocess.Popen:
    """A JACK server with the dummy driver, for this measurement only."""
    if shutil.which("jackd") is None:
        raise UserError("the start-up bench needs a JACK server: start one, or install jackd2 "
                        "(apt-get install jackd2) and it starts a private one")
    name = f"livegen-bench-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    server = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    os.environ["JACK_DEFAULT_SERVER"] = name  # inherited by every launch
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not ports.api_available("jack"):
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise UserError("the private JACK server (dummy driver) did not start")
        time.sleep(0.1)
    log(f"bench: started a private JACK server ({name}, dummy driver)")
    return server
