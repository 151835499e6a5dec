"""The vocabulary's spec table, encoding round trips and the streaming decoder's guards."""
import pytest

from livegen.music import events
from livegen.music.events import Note, StreamingDecoder

# (kind, value, token): the boundaries of every row of the spec table
TOKEN_TABLE = [
    ("NOTE_ON", 0, 0), ("NOTE_ON", 127, 127),
    ("NOTE_OFF", 0, 128), ("NOTE_OFF", 127, 255),
    ("TIME_SHIFT", 1, 256), ("TIME_SHIFT", 100, 355),
    ("VELOCITY", 0, 356), ("VELOCITY", 31, 387),
]


def test_vocabulary_is_performance_rnns_388_tokens():
    assert events.VOCAB_SIZE == 388
    assert [s.count for s in events.EVENT_SPECS] == [128, 128, 100, 32]


@pytest.mark.parametrize("kind,value,token", TOKEN_TABLE)
def test_encode_decode_table(kind, value, token):
    assert events.encode(kind, value) == token
    assert events.decode(token) == (kind, value)


@pytest.mark.parametrize("kind,value", [("NOTE_ON", 128), ("TIME_SHIFT", 0), ("TIME_SHIFT", 101), ("VELOCITY", 32)])
def test_out_of_range_values_are_refused(kind, value):
    with pytest.raises(ValueError):
        events.encode(kind, value)


def test_every_token_round_trips():
    for token in range(events.VOCAB_SIZE):
        assert events.encode(*events.decode(token)) == token
    with pytest.raises(ValueError):
        events.decode(events.VOCAB_SIZE)


def test_velocity_bins_round_trip():
    for b in range(events.VELOCITY_BINS):
        assert events.velocity_to_bin(events.bin_to_velocity(b)) == b
    assert events.velocity_to_bin(1) == 0 and events.velocity_to_bin(127) == 31


# notes on the 10 ms grid with bin-centre velocities: must come back exactly
V = [events.bin_to_velocity(b) for b in (3, 20, 31)]
ROUND_TRIP_TABLE = [
    [Note(0.0, 0.5, 60, V[0])],
    [Note(0.0, 0.5, 60, V[0]), Note(0.0, 0.5, 64, V[0]), Note(0.0, 0.5, 67, V[0])],  # a chord
    [Note(0.0, 0.25, 60, V[1]), Note(0.25, 0.5, 60, V[2])],  # re-struck pitch, new velocity
    [Note(0.0, 2.37, 21, V[1]), Note(1.01, 1.02, 108, V[2])],  # long shifts, 10 ms note, extremes
    [Note(0.5, 0.6, 72, V[2]), Note(3.0, 4.0, 48, V[0])],  # leading and inner silence > 1 s
]


@pytest.mark.parametrize("notes", ROUND_TRIP_TABLE)
def test_notes_tokens_notes_round_trip_exactly(notes):
    tokens, times = events.notes_to_tokens(notes)
    back = events.tokens_to_notes(tokens)
    assert [(round(n.start, 6), round(n.end, 6), n.pitch, n.velocity) for n in back] == \
        [(round(n.start, 6), round(n.end, 6), n.pitch, n.velocity) for n in sorted(notes)]
    assert len(times) == len(tokens)


def test_round_trip_is_exact_up_to_the_grid():
    notes = [Note(0.1234, 0.5678, 60, 80), Note(0.3333, 0.9999, 64, 100)]
    back = events.tokens_to_notes(events.notes_to_tokens(notes)[0])
    assert [(n.start, n.end) for n in back] == [pytest.approx((0.12, 0.57)), pytest.approx((0.33, 1.0))]
    # and once on the grid it is a fixed point
    assert events.tokens_to_notes(events.notes_to_tokens(back)[0]) == back


def test_quantize_removes_duplicates_and_cuts_same_pitch_overlaps():
    notes = [Note(0.0, 1.0, 60, 80), Note(0.0, 1.0, 60, 80), Note(0.5, 1.5, 60, 90)]
    q = events.quantize_notes(notes)
    assert [(n.start, n.end) for n in q] == [(0.0, 0.5), (0.5, 1.5)]


def test_velocity_is_emitted_only_on_change():
    notes = [Note(i * 0.1, i * 0.1 + 0.05, 60 + i, 80) for i in range(5)]
    kinds = [events.decode(int(t))[0] for t in events.notes_to_tokens(notes)[0]]
    assert kinds.count("VELOCITY") == 1


def feed(decoder, *pairs):
    out = []
    for kind, value in pairs:
        out += decoder.feed(events.encode(kind, value))
    return out


def test_streaming_decoder_emits_timed_messages_one_token_at_a_time():
    d = StreamingDecoder()
    assert feed(d, ("VELOCITY", 31)) == []
    [on] = feed(d, ("NOTE_ON", 60))
    assert (on.time, on.pitch, on.velocity) == (0.0, 60, events.bin_to_velocity(31))
    assert feed(d, ("TIME_SHIFT", 50)) == []
    [off] = feed(d, ("NOTE_OFF", 60))
    assert (off.time, off.pitch, off.velocity) == (0.5, 60, 0)
    assert feed(d, ("NOTE_OFF", 61)) == []  # off for a silent pitch is a no-op


def test_decoder_ends_notes_held_too_long():
    d = StreamingDecoder(max_note_seconds=1.0)
    feed(d, ("NOTE_ON", 60))
    out = feed(d, ("TIME_SHIFT", 100), ("TIME_SHIFT", 100))
    assert [(m.time, m.pitch, m.velocity) for m in out] == [(1.0, 60, 0)]
    assert d.active == {}


def test_decoder_caps_polyphony_by_ending_the_oldest_note():
    d = StreamingDecoder(max_polyphony=2)
    out = feed(d, ("NOTE_ON", 60), ("NOTE_ON", 64), ("NOTE_ON", 67))
    assert [(m.pitch, m.velocity > 0) for m in out] == [(60, True), (64, True), (60, False), (67, True)]
    assert list(d.active) == [64, 67]


def test_decoder_restrikes_a_sounding_pitch_and_ignores_a_double_strike():
    d = StreamingDecoder()
    assert len(feed(d, ("NOTE_ON", 60), ("NOTE_ON", 60))) == 1  # same instant: one note
    out = feed(d, ("TIME_SHIFT", 10), ("NOTE_ON", 60))
    assert [(m.pitch, m.velocity > 0) for m in out] == [(60, False), (60, True)]


def test_decoder_time_scale_stretches_time_shifts():
    d = StreamingDecoder(time_scale=2.0)
    feed(d, ("TIME_SHIFT", 10))
    assert d.time == pytest.approx(0.2)
