"""``livegen bench --parts emg``: the EMG path's numbers, on the real recordings.

- parse_process_us: the reader thread's whole work per sample, from the bytes read to the z value
  handed to the engine's sink (decoding, processing, gesture recall, the publish step under the
  source's lock), for a CSV line, a Cyton frame and a Myo BLE notification (two samples); median
  and p99 over a real recording, on one core.
- live: a device emulator writes a real recording as CSV lines over a pty at 200 Hz into
  ``livegen``'s serial device while a DCRNN engine plays what it sends: samples sent vs received
  (drops), the rate, arrival -> z handed to the engine (p50/p99), the engine's z -> MIDI.
- separation: in myo-readings, rest vs gesture blocks: distance between the class means of z
  over the within-class spread (RMS distance to the own class mean), per gesture.
- dcrnn: the DCRNN played with each gesture's z: notes per second, mean pitch and pitch spread,
  note length; the spread between gestures over the spread between two seeds of one gesture.
"""
from __future__ import annotations

import os
import pty
import threading
import time
import tty
from pathlib import Path

import numpy as np

from livegen import presets
from livegen.bench.dcrnn import take_notes
from livegen.engine.engine import Engine, EngineSettings, OutputChoice
from livegen.music.conditioning import Controls
from livegen.sensors.emg import myo
from livegen.sensors.emg.cyton import Cyton, encode_frame
from livegen.sensors.emg.myo_ble import MyoBle
from livegen.sensors.emg.processing import Calibration, Gesture, Mapping, Processor, calibrate_from
from livegen.sensors.emg.replay import load_recording
from livegen.sensors.emg.serial_csv import SerialCsv
from livegen.sensors.emg.source import EmgControls

GESTURES = {0: "rest", 1: "flexion", 2: "extension", 3: "radial", 4: "ulnar", 5: "pronation", 6: "supination",
            7: "fist"}
SKIP = 0.5  # s after a label change left out (the label leads or lags the muscles)


def _pct(values, scale: float = 1.0) -> dict:
    a = np.asarray(values, dtype=np.float64) * scale
    if not len(a):
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3)}


# --- per-sample cost ------------------------------------------------------------------------------

def parse_process_us(samples: np.ndarray, count: int = 6000) -> dict:
    """µs per sample, bytes -> z handed to the sink, through the devices' own decoding and an
    ``EmgControls`` with the preset's defaults and two learned gestures (so recall runs too)."""
    rows = samples[:count - count % 2]
    int8 = np.clip(rows, -128, 127)
    csv, cyton, ble = SerialCsv("bench"), Cyton("bench"), MyoBle(mode=myo.EmgMode.RAW)

    def notify(data: bytes) -> None:  # on the characteristic the armband uses next: nothing lost
        ble._on_emg(ble._next_char or 0, data)

    cases = {  # name: (device, what one read delivers, samples in it, the reader's work on it)
        "csv": (csv, csv_lines(rows), 1, csv.receive),
        "cyton": (cyton, [encode_frame(i, row * 1000) for i, row in enumerate(rows)], 1, cyton.receive),
        "myo": (ble, [myo.encode_emg(int8[i:i + 2]) for i in range(0, len(rows), 2)], 2, notify),
    }
    result = {}
    for name, (device, chunks, per_chunk, receive) in cases.items():
        settings = presets.EmgPreset()
        calibration = Calibration.default(device.value_range, 8, device.rectified)
        calibration.gestures = {"fist": Gesture([0.8] * 8, "B"), "wave": Gesture([0.6, 0.1] * 4, "C")}
        processor = Processor.for_device(device, Mapping.from_preset(settings), calibration)
        source = EmgControls(device, processor, Controls(z=(0.0,) * 8), settings, calibrated=True)
        handed: list[tuple] = []
        # what start() wires, without the threads: the device's sink is the source, the source's the engine
        source._sink, source._clock = (lambda controls, t: handed.append(controls.z)), time.monotonic
        device._sink = source._on_samples
        receive(chunks[0] + chunks[1] if per_chunk == 1 else chunks[0])  # learn the width / lock on
        times = []
        for chunk in chunks[2:]:
            t0 = time.perf_counter()
            receive(chunk)
            times.append((time.perf_counter() - t0) / per_chunk)
        result[name] = {**_pct(times, 1e6), "z_handed_per_sample": round(len(handed) / len(rows), 3)}
    return result


# --- live: pty at 200 Hz into a playing DCRNN -----------------------------------------------------

def csv_lines(rows: np.ndarray) -> list[bytes]:
    """Samples as a serial board prints them: one line of integers per sample."""
    return [(",".join(str(int(v)) for v in row) + "\n").encode() for row in rows]


class PtyFeeder:
    """A serial device emulator: writes chunks (lines, frames) to a pty's master at ``rate_hz``
    on absolute deadlines, cycling through them, until stopped or ``count`` are written;
    ``garbage`` is written before every ``garbage_every``-th chunk. ``port`` is the device name."""

    def __init__(self, chunks: list[bytes], rate_hz: float = 200.0, count: int | None = None,
                 garbage_every: int = 0, garbage: bytes = b"\x00\xff garbage ,,;\n"):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # held open so the port exists until the reader opens it
        self.chunks, self.rate_hz, self.count = chunks, rate_hz, count
        self.garbage_every, self.garbage = garbage_every, garbage
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-emg-feeder", daemon=True)

    def start(self) -> "PtyFeeder":
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set() and (self.count is None or self.written < self.count):
            if self.garbage_every and self.written % self.garbage_every == self.garbage_every - 1:
                os.write(self.master, self.garbage)
            os.write(self.master, self.chunks[self.written % len(self.chunks)])
            self.written += 1
            wait = start + self.written / self.rate_hz - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        """Stop writing and close the pty (to the reader: the cable was pulled)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2.0)
        for fd in (self.master, self._slave):
            os.close(fd)


def live_run(model, rows: np.ndarray, seconds: float, log=print) -> dict:
    """A real engine playing the DCRNN, z from EMG lines written over a pty at 200 Hz."""
    feeder = PtyFeeder(csv_lines(rows), count=int(seconds * 200))
    device = SerialCsv(feeder.port, 115200)
    settings = presets.EmgPreset()
    processor = Processor.for_device(device, Mapping.from_preset(settings),
                                     Calibration.default(device.value_range, 8, False))
    source = EmgControls(device, processor, Controls(z=(0.0,) * 8), settings, calibrated=False)  # no user's profile
    engine = Engine(model, OutputChoice(), EngineSettings(seed=5), source.initial(), log=log)
    engine.start()
    try:
        source.start(engine.set_controls, engine.now)
        feeder.start()
        feeder.wait(seconds + 30)
        time.sleep(0.3)  # the last lines in flight
    finally:
        source.stop()
        stats = engine.stop()
        feeder.stop()
    sent = feeder.written
    received = device.stats.samples
    return {"seconds": seconds, "sent": sent, "received": received, "dropped": sent - received,
            "parse_errors": device.stats.parse_errors, "rate_hz": round(source.rate.rate_hz or 0.0, 2),
            "arrival_to_engine_ms": _pct(source.latency, 1e3), "z_changes": source.publishes,
            "z_changes_per_s": round(source.publishes / seconds, 1),
            "process_us_per_block": _pct(source.process_seconds, 1e6),
            "engine_z_to_midi_ms": _pct(stats.control_to_midi, 1e3), "late_controls": stats.late_controls}


# --- the mapping on real recordings ---------------------------------------------------------------

def session_z(folder: Path, mapping: Mapping | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For one myo-readings session: file label -> (z per sample, label per sample), calibrated
    like a user would: rest from the rest file, strongest contraction from the fist file."""
    mapping = mapping or Mapping()
    recordings = {int(p.stem): load_recording(p) for p in sorted(folder.glob("*.txt")) if p.stem.isdigit()}

    def envelopes(rec):
        return Processor(rec.rate_hz, mapping, Calibration.default(rec.value_range, 8, False),
                         limits=rec.value_range).envelopes(rec.samples)

    rest = envelopes(recordings[0])
    fist = recordings[7]
    strongest = envelopes(fist)[fist.labels == 7]
    calibration, _ = calibrate_from(rest, strongest, f"replay:{folder}", mapping)
    out = {}
    for label, rec in recordings.items():
        processor = Processor(rec.rate_hz, mapping, calibration, limits=rec.value_range)
        out[label] = (processor.z(processor.run(rec.samples)), rec.labels)
    return out


def _steady(labels: np.ndarray, rate_hz: float = 200.0) -> np.ndarray:
    """Samples at least SKIP s after the last label change."""
    keep = np.ones(len(labels), dtype=bool)
    changes = np.flatnonzero(np.diff(labels)) + 1
    for c in changes:
        keep[c:c + int(SKIP * rate_hz)] = False
    return keep


def separation(data: Path) -> dict:
    """Per session and gesture: ||mean z(gesture) - mean z(rest)|| / within-class RMS spread;
    and a nearest-centroid classifier's accuracy on the held-out second half of every file."""
    result: dict = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        per = {}
        zs = session_z(folder)
        for label in range(1, 8):
            z, labels = zs[label]
            keep = _steady(labels)
            a, b = z[keep & (labels == 0)], z[keep & (labels == label)]
            mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
            spread = np.sqrt((((a - mean_a) ** 2).sum() + ((b - mean_b) ** 2).sum()) / (len(a) + len(b)))
            per[GESTURES[label]] = round(float(np.linalg.norm(mean_b - mean_a) / spread), 2)
        result[folder.name] = {"separation": per, "mean": round(float(np.mean(list(per.values()))), 2),
                               "min": min(per.values()), "gesture_accuracy": _accuracy(zs)}
    return result


def _accuracy(zs) -> float:
    """Nearest centroid over 8 classes (rest + 7 gestures) on z: trained on the first half of each
    file's steady samples, tested on the second half."""
    train, test = {}, {}
    for label, (z, labels) in zs.items():
        keep = _steady(labels)
        half = len(z) // 2
        for cls in np.unique(labels):
            mask = keep & (labels == cls)
            train.setdefault(cls, []).append(z[:half][mask[:half]])
            test.setdefault(cls, []).append(z[half:][mask[half:]])
    classes = sorted(train)
    centroids = np.array([np.concatenate(train[c]).mean(axis=0) for c in classes])
    right = total = 0
    for cls in classes:
        z = np.concatenate(test[cls])
        guess = np.argmin(((z[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
        right += int((np.asarray(classes)[guess] == cls).sum())
        total += len(z)
    return round(right / max(total, 1), 3)


def dcrnn_features(model, data: Path, seconds: float = 12.0, seeds=(1, 2)) -> dict:
    """The DCRNN played with each gesture's mean z (the first session): note rate, pitch, length."""
    folder = sorted(p for p in data.iterdir() if p.is_dir())[0]
    zs = session_z(folder)
    rows, feats = {}, {}
    for label in range(8):
        z, labels = zs[label]
        steady = z[_steady(labels) & (labels == label)]
        mean = tuple(float(v) for v in steady.mean(axis=0))
        per_seed = []
        for seed in seeds:
            notes = [n for n in take_notes(model, [(0.0, Controls(z=mean))], seconds + 2.0, seed=seed) if n[0] >= 2.0]
            pitches = np.array([n[2] for n in notes], dtype=float)
            per_seed.append([len(notes) / seconds, pitches.mean() if len(notes) else 0.0,
                             pitches.std() if len(notes) else 0.0,
                             float(np.mean([n[1] - n[0] for n in notes])) if notes else 0.0])
        feats[label] = np.array(per_seed)
        m = feats[label].mean(axis=0)
        rows[GESTURES[label]] = {"z_mean": round(float(np.mean(mean)), 3), "notes_per_s": round(float(m[0]), 2),
                                 "mean_pitch": round(float(m[1]), 1), "pitch_sd": round(float(m[2]), 1),
                                 "note_s": round(float(m[3]), 3)}
    scale = np.concatenate(list(feats.values())).std(axis=0) + 1e-9  # features on one scale
    means = np.array([f.mean(axis=0) / scale for f in feats.values()])
    between = np.mean([np.linalg.norm(means[i] - means[j]) for i in range(8) for j in range(i + 1, 8)])
    within = np.mean([np.linalg.norm((f[0] - f[1]) / scale) for f in feats.values()])
    return {"session": folder.name, "gestures": rows, "between_over_within_seeds": round(float(between / max(within, 1e-9)), 2)}


def emg_bench(data: str | None, model=None, live_seconds: float = 30.0, log=print) -> dict:
    result: dict = {"targets": {"parse_process_us": 50, "arrival_to_engine_ms": 5, "dropped": 0}}
    folder = Path(data) if data else None
    if folder is None or not folder.is_dir():
        log(f"bench emg: the real recordings ({data}) are not here: only the per-sample cost on noise")
        rows = np.random.default_rng(0).integers(-60, 60, (6000, 8)).astype(float)
    else:
        rows = load_recording(folder / "12345-1" / "7.txt").samples
    log("bench emg: bytes -> z per sample (decode, process, gesture recall, publish)")
    result["parse_process_us"] = parse_process_us(rows)
    if model is not None:
        log(f"bench emg: {live_seconds:g} s of EMG at 200 Hz over a pty into a playing DCRNN")
        result["live"] = live_run(model, rows, live_seconds, log)
    if folder is not None and folder.is_dir():
        log("bench emg: rest vs gesture separation of z on myo-readings")
        result["separation"] = separation(folder)
        if model is not None:
            log("bench emg: the DCRNN's notes under each gesture's z")
            result["dcrnn_by_gesture"] = dcrnn_features(model, folder)
    return result


def report_rows(r: dict) -> list[str]:
    rows = []
    for name, d in r["parse_process_us"].items():
        rows.append(f"{'emg bytes -> z ' + name:<22} p50 {d['p50']:8.2f}  p99 {d['p99']:8.2f} us/sample   (target <= 50)")
    live = r.get("live")
    if live:
        a = live["arrival_to_engine_ms"]
        rows.append(f"{'emg arrival -> engine':<22} p50 {a['p50']:8.3f}  p99 {a['p99']:8.3f}  max {a['max']:8.3f} ms"
                    f"   (target <= 5; {live['z_changes_per_s']} z changes/s)")
        rows.append(f"{'emg 200 Hz over a pty':<22} {live['received']}/{live['sent']} samples in {live['seconds']:g} s, "
                    f"dropped {live['dropped']}, rate {live['rate_hz']} Hz (target: 0 dropped)")
    for session, s in (r.get("separation") or {}).items():
        rows.append(f"{'emg separation ' + session:<22} mean {s['mean']}, min {s['min']} "
                    f"(rest vs gesture, mean distance / spread); 8-class accuracy {s['gesture_accuracy']}")
        rows.append(f"{'':<22} {s['separation']}")
    d = r.get("dcrnn_by_gesture")
    if d:
        rows.append(f"{'emg -> dcrnn':<22} between gestures / between seeds {d['between_over_within_seeds']}")
        for g, f in d["gestures"].items():
            rows.append(f"{'  ' + g:<22} {f}")
    return rows
