"""``livegen bench`` without ``--json``: the numbers as a text table, one row per measurement,
with each part's rows (load, layers, dcrnn, clock, emg, camera, the panel) when it ran.
"""
from __future__ import annotations

from livegen.bench.emg import report_rows
from livegen.bench.learn import report_rows as learn_rows
from livegen.bench.midi_in import report_rows as midi_in_rows
from livegen.bench.music import music_rows


def format_report(r: dict) -> str:
    def row(name, d):
        return f"{name:<22} p50 {d['p50']:8.3f}  p99 {d['p99']:8.3f}  max {d['max']:8.3f} ms"

    if "fidelity" not in r:  # the engine part did not run
        return "\n".join(_optional_rows(r))
    f, m = r["fidelity"], r["fidelity_model_only"]
    return "\n".join([
        row("control -> MIDI", r["control_to_midi_ms"]) + "   (target p99 <= 10; without rollback: "
        f"{r['live_run']['lookahead_ms_without_rollback']:.0f} ms)",
        row("timing error", r["timing_error_ms"]) + "   (target p99 <= 1)",
        row("inference step", r["step_ms"]),
        row("  same step in torch", r["step_ms_torch"]) + "   (1 thread, oneDNN off; for comparison)",
        f"{'throughput':<22} {r['realtime_factor']:.0f}x real time on one core (target >= 20)",
        f"{'fidelity':<22} pitch rho {f['pitch_rho']:.2f}, density rho {f['density_rho']:.2f} (target >= 0.9); "
        f"model conditioning alone: {m['pitch_rho']:.2f} / {m['density_rho']:.2f}",
        f"{'':<22} pitch levels {f['pitch_levels']}",
        f"{'':<22} density levels (notes/s) {f['density_levels']}",
    ] + _optional_rows(r))


def _optional_rows(r: dict) -> list[str]:
    rows = []
    startup = r.get("startup")
    if startup:
        rows.append(f"{'launch -> first note':<22} median {startup['median_s']:.3f} s, min {startup['min_s']:.3f}, "
                    f"max {startup['max_s']:.3f} over {startup['launches']} launches (target <= 1.0 s, quiet)")
    panel = r.get("timing_error_ms_panel_open")
    if panel:
        t = panel["timing_error_ms"]
        rows.append(f"{'timing, panel open':<22} p50 {t['p50']:8.3f}  p99 {t['p99']:8.3f}  max {t['max']:8.3f} ms"
                    f"   (repainting at {panel['panel_hz']} Hz, window moved {panel['window_moves']} times)")
    load = r.get("load")
    if load:
        t, c, lv = load["live"]["timing_error_ms"], load["live"]["control_to_midi_ms"], load["live"]
        d, q = load["dcrnn_loaded"], load["dcrnn_quiet"]
        rows.append(f"{'loaded (' + str(load['busy_processes']) + ' busy)':<22} timing p50 {t['p50']:.3f} "
                    f"p99 {t['p99']:.3f} max {t['max']:.3f} ms, control -> MIDI p99 {c['p99']:.3f} ms, "
                    f"{lv['late_dropped']} late notes left out")
        rows.append(f"{'  DCRNN take, loaded':<22} timing p99 {d['timing_error_ms']['p99']:.3f} ms, "
                    f"{d['note_ons']} notes ({q['note_ons']} quiet), {d['retriggers']} re-triggers, "
                    f"{d['unended']} unended, {d['late_dropped']} late, same as quiet: {load['identical_to_quiet']}")
    commentary = r.get("commentary")
    if commentary:
        ms, cpu = commentary["ms_per_sentence"], commentary["cpu_ms_per_sentence"]
        rows.append(f"{'commentary sentence':<22} p50 {ms['p50']:8.3f}  p95 {ms['p95']:8.3f}  max {ms['max']:8.3f} ms"
                    f"   (one core, target <= {commentary['target_ms']:.0f}; {commentary['written_by_model']} of "
                    f"{commentary['sentences']} written by the model)")
        rows.append(f"{'  its CPU time':<22} p50 {cpu['p50']:8.3f}  p95 {cpu['p95']:8.3f}  max {cpu['max']:8.3f} ms")
    layered = r.get("layers")
    if layered:
        c, t = layered["control_to_midi_ms"], layered["timing_error_ms"]
        rows.append(f"{'layers (+ DCRNN)':<22} control -> MIDI p50 {c['p50']:.3f} p99 {c['p99']:.3f} ms, timing "
                    f"p50 {t['p50']:.3f} p99 {t['p99']:.3f} ms, {layered['messages']} messages, "
                    f"{layered['late_arrivals']} late")
    for part in ("dcrnn", "clock"):
        numbers = r.get(part)
        if numbers:
            rows.append(f"{part:<22} " + ", ".join(f"{k} {v}" for k, v in numbers.items()
                                                   if not isinstance(v, dict))[:400])
            for k, v in numbers.items():
                if isinstance(v, dict):
                    rows.append(f"{'  ' + k:<22} {v}"[:300])
    emg = r.get("emg")
    if emg:
        rows += report_rows(emg)
    if r.get("music"):
        rows += music_rows(r["music"])
    if r.get("learn"):
        rows += learn_rows(r["learn"])
    if r.get("midi_in"):
        rows += midi_in_rows(r["midi_in"])
    camera = r.get("camera")
    if camera:
        for name, sizes in camera["fps"].items():
            text = ", ".join(f"{size} {fps if isinstance(fps, str) else f'{fps:.0f} fps'}" for size, fps in sizes.items())
            rows.append(f"{'camera ' + name:<22} {text}")
        for name, rate in camera.get("detection", {}).items():
            if isinstance(rate, dict):
                rows.append(f"{'  on real hands ' + name:<22} found a hand in {rate['detected']:.0%} of "
                            f"{camera['detection']['photos']} photos, on the hand in {rate['on_hand']:.0%}")
    return rows
