"""``livegen bench``: the instrument's measurements, one module per part.

- ``engine``: the Char-RNN engine's step time, throughput, control -> MIDI latency, timing error,
  control fidelity, and the live run with the DCRNN layered beside it (``--parts layers``).
- ``load``: the live run and a scripted DCRNN take with busy processes beside them (``--load N``).
- ``dcrnn``: the DCRNN's time per bar, z -> MIDI latency, roll metrics, controllability.
- ``clock``: MIDI clock out and the tempo follower on JACK.
- ``gui``: the engine's timing with the control panel open and busy.
- ``camera``: each tracker's frame rate, capture -> control latency, detection on real photos.
- ``emg``: the EMG path's per-sample cost, a pty at 200 Hz into a playing DCRNN, gesture separation.
- ``commentary``: one shown sentence's wall time on one core (target <= 150 ms).
- ``report``: the text table ``livegen bench`` prints without ``--json``.

The benchmarks sit on top of the instrument: only ``livegen bench`` (``cli.cmd_bench``) and the
tests import them, never the instrument's own modules.
"""
