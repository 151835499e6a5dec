"""Another program's MIDI clock, run as its own process (as a drum machine or a DAW is): a JACK
output named ARGV[1] that says "ready"; told "start" on stdin, it sends Start, then 24 ticks a beat
at absolute deadlines, at ARGV[2] bpm or at each new tempo read from stdin, until stdin closes."""
import sys
import threading
import time

import rtmidi

TICK, START = 0xF8, 0xFA


def main(name: str, bpm: float) -> None:
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"test-{name}")
    out.open_virtual_port(name)
    tempo, started, done = [bpm], threading.Event(), threading.Event()

    def read_orders():
        for line in sys.stdin:
            if line.strip() == "start":
                started.set()
            else:
                tempo[0] = float(line)
        started.set()
        done.set()

    threading.Thread(target=read_orders, daemon=True).start()
    print("ready", flush=True)
    started.wait()
    out.send_message([START])
    deadline = time.monotonic()
    while not done.is_set():
        out.send_message([TICK])
        deadline += 60.0 / tempo[0] / 24
        time.sleep(max(0.0, deadline - time.monotonic()))
    out.close_port()
    out.delete()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
