"""Layers: the Char-RNN and the DCRNN at once, each on its own port, channel, program and volume,
on one clock, recorded as one multi-track file; and every layer hears only its own controls."""
import json
import subprocess

import mido
import pytest

from conftest import Receiver, livegen_cmd
from livegen.engine.layers import LayerSpec, free_channels, parse_layer
from livegen.errors import UserError
from livegen.midi import recorder
from livegen.music.conditioning import Controls
from livegen.sessions import session_path


@pytest.mark.parametrize("text, spec", [
    ("dcrnn", LayerSpec("dcrnn")),
    ("dcrnn,channel=2,program=33,volume=90", LayerSpec("dcrnn", channel=2, program=33, volume=90)),
    ("charrnn, temperature=0.8 ,port=synth b", LayerSpec("charrnn", temperature=0.8, port="synth b")),
    ("my.safetensors,channel=16", LayerSpec("my.safetensors", channel=16)),
])
def test_a_layer_spec_reads_its_keys(text, spec):
    assert parse_layer(text) == spec


@pytest.mark.parametrize("text, names", [
    ("channel=2", "start with the model"),
    ("dcrnn,chanel=2", "chanel"),
    ("dcrnn,channel=17", "channel must be 1..16"),
    ("dcrnn,volume=loud", "volume must be a number"),
    ("dcrnn,program", "KEY=VALUE"),
])
def test_a_bad_layer_spec_names_what_is_wrong(text, names):
    with pytest.raises(UserError, match=names):
        parse_layer(text)


def test_layers_without_a_channel_take_free_ones_but_not_the_drums():
    assert free_channels([1, 2])[:8] == [3, 4, 5, 6, 7, 8, 9, 11]


def test_each_model_hears_only_the_controls_it_plays():
    from livegen.engine.charrnn_live import heard_by_charrnn
    from livegen.engine.dcrnn_live import heard_by_dcrnn

    base = Controls()
    camera = Controls(pitch=0.9, density=0.2)
    armband = Controls(z=(0.5,) * 8)
    assert heard_by_charrnn(camera) != heard_by_charrnn(base) and heard_by_charrnn(armband) == heard_by_charrnn(base)
    assert heard_by_dcrnn(armband) != heard_by_dcrnn(base) and heard_by_dcrnn(camera) == heard_by_dcrnn(base)


def tracks(path):
    """{track name: [(absolute tick, type, channel, note or program/control, velocity/value)]}."""
    out = {}
    for track in mido.MidiFile(path).tracks:
        tick, events = 0, []
        for m in track:
            tick += m.time
            if m.type in ("note_on", "note_off"):
                off = m.type == "note_off" or m.velocity == 0
                events.append((tick, "off" if off else "on", m.channel, m.note, 0 if off else m.velocity))
            elif m.type in ("program_change", "control_change"):
                events.append((tick, m.type, m.channel, getattr(m, "program", getattr(m, "control", None)),
                               getattr(m, "value", None)))
        out[track.name] = events
    return out


def notes_of(events):
    return [(kind, channel, note) for _, kind, channel, note, _ in events if kind in ("on", "off")]


def script(tmp_path):
    """A camera (pitch, density) and an armband (z) changing at different moments, as a live take would."""
    path = tmp_path / "gesture.jsonl"
    lines = [{"t": 0.0, "pitch": 0.5, "density": 0.7}, {"t": 1.5, "pitch": 0.8, "density": 0.9},
             {"t": 2.5, "pitch": 0.8, "density": 0.9, "z": [0.9, -0.9, 0.5, 0.0, 0.8, -0.4, 0.2, 0.7]},
             {"t": 4.0, "pitch": 0.3, "density": 0.5, "z": [0.9, -0.9, 0.5, 0.0, 0.8, -0.4, 0.2, 0.7]},
             {"t": 5.0, "pitch": 0.3, "density": 0.5, "z": [-0.8, 0.6, -0.5, 0.3, -0.2, 0.9, -0.7, 0.1]}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_two_models_play_at_once_on_their_own_ports_and_record_one_track_each(jack_server, tmp_path):
    melody, rhythm = Receiver("layer-melody"), Receiver("layer-rhythm")
    try:
        take = tmp_path / "take.mid"
        run = subprocess.run(livegen_cmd(
            "perform", "--api", "jack", "--port", "layer-melody", "--program", "0", "--volume", "110",
            "--layer", "dcrnn,port=layer-rhythm,channel=2,program=33,volume=90",
            "--controls", f"script:{script(tmp_path)}", "--duration", "6", "--seed", "5", "--record", str(take)),
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        melody.settle()
        rhythm.settle()
        recorded = tracks(take)
        assert mido.MidiFile(take).type == 1
        assert list(recorded) == ["livegen take", "1 charrnn ch1", "2 dcrnn ch2"]
        lead, bass = recorded["1 charrnn ch1"], recorded["2 dcrnn ch2"]
        assert lead[:2] == [(0, "program_change", 0, 0, None), (0, "control_change", 0, 7, 110)]
        assert bass[:2] == [(0, "program_change", 1, 33, None), (0, "control_change", 1, 7, 90)]
        assert {c for _, _, c, _, _ in lead} == {0} and {c for _, _, c, _, _ in bass} == {1}
        for receiver, events in ((melody, lead), (rhythm, bass)):
            onsets = [n for n in notes_of(events) if n[0] == "on"]
            assert len(onsets) >= 10
            got = [("off" if m.type == "note_off" or m.velocity == 0 else "on", m.channel, m.note)
                   for m in receiver.notes()]
            assert got == notes_of(events)  # every note of the layer reached its own port, in order
            assert receiver.hanging() == 0
            assert [m.program for _, m in receiver.messages if m.type == "program_change"] == [events[0][3]]
        header = json.loads(session_path(take).read_text().splitlines()[0])
        assert header["layers"] == [{"model": "dcrnn", "channel": 2, "program": 33, "volume": 90,
                                     "port": header["layers"][0]["port"], "temperature": None}]
        assert header["layers"][0]["port"].endswith("layer-rhythm")
    finally:
        melody.close()
        rhythm.close()


def test_a_layered_take_replays_note_for_note(tmp_path):
    take, again = tmp_path / "take.mid", tmp_path / "again.mid"
    layer = ["--layer", "dcrnn,channel=3,volume=100"]
    first = subprocess.run(livegen_cmd("perform", "--no-port", *layer, "--controls", f"script:{script(tmp_path)}",
                                       "--duration", "6", "--seed", "9", "--record", str(take)),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(livegen_cmd("perform", "--no-port", *layer, "--controls",
                                        f"replay:{session_path(take)}", "--seed", "9", "--record", str(again)),
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "notes will differ" not in second.stderr
    a, b = tracks(take), tracks(again)
    assert len(notes_of(a["2 dcrnn ch3"])) >= 10 and len(notes_of(a["1 charrnn ch1"])) >= 10
    assert a == b
    alone = subprocess.run(livegen_cmd("perform", "--no-port", "--controls", f"replay:{session_path(take)}",
                                       "--seed", "9", "--record", str(tmp_path / "alone.mid")),
                           capture_output=True, text=True, timeout=120)
    assert "was recorded with layers" in alone.stderr  # replayed without its layers: the user is told


def test_two_layers_on_one_channel_of_one_port_is_an_error(tmp_path):
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--channel", "2", "--layer", "dcrnn,channel=2",
                                     "--duration", "1"), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "livegen: error: layer 2 would play channel 2 on the recording with the main layer: give it another channel=")


def test_an_unfinished_layered_take_is_repaired_into_one_track_per_layer(tmp_path):
    path = tmp_path / "crash.mid"
    rec = recorder.Recorder(path, track_names=["1 charrnn ch1", "2 dcrnn ch2"])
    rec.add(0.0, [0x90, 60, 80], 0)
    rec.add(0.1, [0x91, 36, 90], 1)
    rec.add(0.2, [0x80, 60, 0], 0)
    rec.add(0.3, [0x91, 38, 90], 1)
    rec.flush()  # then the process dies: no close
    info = recorder.repair(path)
    assert info["ended_notes"] == 2  # both of the rhythm's notes were left sounding
    repaired = tracks(path)
    assert mido.MidiFile(path).type == 1 and len(repaired) == 3
    lead, rhythm = list(repaired.values())[1:]
    assert notes_of(lead) == [("on", 0, 60), ("off", 0, 60)]
    assert [n for n in notes_of(rhythm) if n[0] == "on"] == [("on", 1, 36), ("on", 1, 38)]
    assert recorder.repair(path)["notes"] == 3  # repairing a whole layered take again leaves it as it is
    assert len(tracks(path)) == 3


def test_a_preset_lists_layers_checks_their_keys_and_round_trips(tmp_path):
    from livegen import presets

    text = "[[layers]]\nmodel = \"dcrnn\"\nchannel = 2\nprogram = 33\nvolume = 90\n\n[[layers]]\nmodel = \"charrnn\"\n"
    preset = presets.parse(text)
    assert [layer.spec() for layer in preset.layers] == [LayerSpec("dcrnn", channel=2, program=33, volume=90),
                                                          LayerSpec("charrnn")]
    assert presets.parse(presets.dumps(preset)) == preset
    with pytest.raises(UserError, match="layers.volme is unknown"):
        presets.parse("[[layers]]\nvolme = 3\n")
    with pytest.raises(UserError, match="layers.channel must be int"):
        presets.parse("[[layers]]\nchannel = \"two\"\n")
    with pytest.raises(UserError, match=r"\[\[layers\]\] tables"):
        presets.parse("[layers]\nmodel = \"dcrnn\"\n")
    path = tmp_path / "band.toml"
    path.write_text(text.split("\n\n")[0] + "\n")
    take = tmp_path / "take.mid"
    run = subprocess.run(livegen_cmd("perform", "--no-port", "--preset", str(path), "--duration", "3",
                                     "--record", str(take)), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert list(tracks(take)) == ["livegen take", "1 charrnn ch1", "2 dcrnn ch2"]


def test_the_bench_runs_the_engine_with_the_dcrnn_layered_beside_the_char_rnn():
    from livegen.models.checkpoint import load_model
    from livegen.bench.engine import layered_run
    from livegen.bench.report import _optional_rows

    result = layered_run(load_model("charrnn"), load_model("dcrnn"), 3.0, log=lambda _: None)
    assert result["changes"] >= 5 and result["messages"] > 0
    assert result["timing_error_ms"]["p99"] is not None
    assert any(row.startswith("layers (+ DCRNN)") for row in _optional_rows({"layers": result}))


@pytest.mark.parametrize("table, names", [("channel = 17", "layers.channel must be 1..16"),
                                          ("volume = 128", "layers.volume must be 0..127"),
                                          ("temperature = 9.0", "layers.temperature must be 0.05..5.0"),
                                          ("program = -2", "layers.channel, program, volume")])
def test_a_presets_layer_out_of_range_names_its_key(table, names):
    from livegen import presets

    with pytest.raises(UserError, match=names):
        presets.parse(f"[[layers]]\n{table}\n")
