"""Note integrity where notes leave: one note-off per note-on, no re-triggered key, no note longer
than max_note_seconds; for the clock's guard alone (many random streams) and for the real
generator and clock under random control streams and rollback instants."""
from __future__ import annotations

import time

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livegen.engine.note_guard import NoteGuard

MAX_SECONDS = 4.0


def check_stream(stream, max_seconds: float = MAX_SECONDS) -> None:
    """stream: (t, key, kind) with kind 'on'/'off', in send order. Raises on a broken promise."""
    sounding: dict = {}
    for t, key, kind in stream:
        if kind == "on":
            assert key not in sounding, f"re-triggered {key} at {t}"
            sounding[key] = t
        else:
            assert key in sounding, f"note-off for {key} at {t} with nothing sounding"
            assert t - sounding.pop(key) <= max_seconds + 0.001, f"{key} held past {max_seconds} s"
    assert not sounding, f"unended: {sounding}"


operations = st.lists(st.one_of(
    st.tuples(st.just("on"), st.floats(0, 0.5), st.integers(0, 1), st.integers(60, 63), st.integers(0, 60)),
    st.tuples(st.just("off"), st.floats(0, 0.5), st.integers(0, 1), st.integers(60, 63), st.integers(0, 60)),
    st.tuples(st.just("rollback"), st.floats(0, 0.5), st.integers(0, 1), st.integers(0, 60), st.just(0)),
    st.tuples(st.just("cc123"), st.floats(0, 0.5), st.integers(0, 1), st.just(0), st.just(0)),
), max_size=120)


@given(operations)
@settings(max_examples=400, deadline=None)
def test_the_guard_keeps_any_stream_well_formed(ops):
    guard = NoteGuard([MAX_SECONDS, MAX_SECONDS])  # layer i plays channel i of port 0
    t, out = 0.0, []

    def sent(at, msg):
        kind = msg[0] & 0xF0
        if kind == 0x90 and msg[2] > 0:
            out.append((at, (msg[0] & 0x0F, msg[1]), "on"))
        elif kind in (0x80, 0x90):
            out.append((at, (msg[0] & 0x0F, msg[1]), "off"))
        elif kind == 0xB0:  # all-notes-off: what the receiver sees as ending each sounding note
            sounding = {k for _, k, _ in out if k[0] == msg[0] & 0x0F}
            for key in sorted(sounding):
                if _is_sounding(out, key):
                    out.append((at, key, "off"))

    for op, dt, layer, a, token in ops:
        t += dt
        for due, _, _, msg in guard.expire(t):
            sent(due, msg)
        if op == "on":
            for msg in guard.admit(t, 0, layer, token, [0x90 | layer, a, 100]):
                sent(t, msg)
        elif op == "off":
            for msg in guard.admit(t, 0, layer, token, [0x80 | layer, a, 0]):
                sent(t, msg)
        elif op == "rollback":
            for _, msg in guard.discard(layer, a):
                sent(t, msg)
        else:
            for msg in guard.admit(t, 0, layer, -1, [0xB0 | layer, 123, 0]):
                sent(t, msg)
    for due, _, _, msg in guard.expire(t + 10):
        sent(due, msg)
    assert not guard.sounding
    check_stream(out)


def _is_sounding(out, key) -> bool:
    state = False
    for _, k, kind in out:
        if k == key:
            state = kind == "on"
    return state


def test_the_generators_late_note_off_ends_nothing_after_the_guard_ended_its_note():
    guard = NoteGuard([1.0])
    assert guard.admit(0.0, 0, 0, 1, [0x90, 60, 90]) == [[0x90, 60, 90]]
    assert [m for *_, m in guard.expire(2.0)] == [[0x80, 60, 0]]
    assert guard.admit(1.5, 0, 0, 2, [0x90, 60, 90]) == [[0x90, 60, 90]]  # a new note on the key
    assert guard.admit(1.9, 0, 0, 3, [0x80, 60, 0]) == []  # the first note's own off: swallowed
    assert guard.admit(2.1, 0, 0, 4, [0x80, 60, 0]) == [[0x80, 60, 0]]  # the second note's


def test_a_retrigger_ends_the_sounding_note_first():
    guard = NoteGuard([4.0])
    guard.admit(0.0, 0, 0, 1, [0x90, 60, 90])
    assert guard.admit(0.5, 0, 0, 2, [0x90, 60, 80]) == [[0x80, 60, 0], [0x90, 60, 80]]
    assert guard.retriggers == 1


def recorded_notes(path):
    """(t, (channel, note), 'on'|'off') in file order."""
    t, out = 0.0, []
    for m in mido.MidiFile(path):
        t += m.time
        if m.type == "note_on" and m.velocity > 0:
            out.append((t, (m.channel, m.note), "on"))
        elif m.type in ("note_on", "note_off"):
            out.append((t, (m.channel, m.note), "off"))
    return out


@pytest.fixture(scope="module")
def charrnn():
    from livegen.models.checkpoint import load_model

    return load_model("charrnn")


changes = st.lists(st.tuples(st.floats(0.0, 2.5), st.floats(0, 1), st.floats(0, 1), st.floats(-0.3, 0.0)),
                   min_size=1, max_size=12)


@given(changes)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_controls_and_rollbacks_on_the_real_generator_and_clock_keep_notes_whole(
        charrnn, tmp_path_factory, steps):
    """Changes land at random instants, some stamped in the past (rollbacks the clock may already
    have passed); the recording the clock wrote must still be well-formed."""
    from livegen.engine.engine import Engine, EngineSettings, OutputChoice
    from livegen.music.conditioning import Controls

    record = str(tmp_path_factory.mktemp("take") / "take.mid")
    engine = Engine(charrnn, OutputChoice(), EngineSettings(seed=3, max_note_seconds=1.0), Controls(0.5, 0.9),
                    record=record, log=lambda _: None, end=3.0)
    engine.start()
    try:
        for at, pitch, density, back in sorted(steps):
            while engine.now() < at:
                time.sleep(0.002)
            engine.set_controls(Controls(pitch, density), max(0.0, engine.now() + back))
        while engine.now() < 3.05:
            time.sleep(0.02)
    finally:
        engine.stop()
    assert engine.failed is None
    notes = recorded_notes(record)
    # the take played (a density near 0 from the first second on leaves only a handful of notes)
    assert sum(kind == "on" for *_, kind in notes) >= 3
    check_stream(notes, max_seconds=1.0)
