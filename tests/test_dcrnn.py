"""The DCRNN: shapes, a real training step, determinism with rollbacks, roll -> note events, themes,
and a live run on the JACK test port with z changing mid-run."""
import subprocess
import time

import mido
import numpy as np
import pytest
import torch

from conftest import dcrnn_frames, livegen_cmd
from livegen.bench.dcrnn import take_notes
from livegen.engine.dcrnn_live import DCRNNGenerator, key_folding, theme_z
from livegen.errors import UserError
from livegen.models.dcrnn import DCRNNConfig
from livegen.models.nets.dcrnn import DCRNN
from livegen.music.conditioning import Controls
from livegen.music.roll import RollDecoder
from songs import write_songs

TINY = dict(z_dim=8, coarse_hidden=16, fine_hidden=16, strip_channels=4, critic_channels=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DCRNN(DCRNNConfig(**TINY, threshold=0.5, onset_threshold=0.6)).eval()


@pytest.fixture(scope="module")
def live_model(model):
    return model.live()


@pytest.fixture(scope="module")
def shipped():
    from livegen.models import checkpoint

    return checkpoint.load_model("dcrnn")


def run(gen, until):
    out = []
    while gen.time < until:
        out += gen.step()
    return out


def test_generator_critic_and_encoder_shapes(model):
    c = model.config
    z = torch.randn(3, 2 * c.beats_per_bar, c.z_dim)
    logits, (coarse, fine) = model.generator(z)
    assert logits.shape == (3, 2 * c.beats_per_bar * c.steps_per_beat, 2, c.pitches)
    assert coarse.shape == (3, c.coarse_hidden) and fine.shape == (3, c.fine_hidden)
    window = torch.rand(3, 2, 2 * c.segment_steps, c.pitches)
    assert model.critic(window).shape == (3,)
    mu, logvar = model.encoder(window[:, :, :c.segment_steps])
    assert mu.shape == logvar.shape == (3, c.z_dim)


def test_live_numpy_steps_match_the_torch_generator_across_a_segment_boundary(model):
    c = model.config
    beats = c.beats_per_bar * c.bars_per_segment + 2
    z = np.random.default_rng(0).standard_normal((beats, c.z_dim))  # a new z every beat
    with torch.no_grad():
        expected = torch.sigmoid(model.generator(torch.tensor(z, dtype=torch.float32)[None])[0][0]).numpy()
    live = model.live()
    np.testing.assert_allclose(dcrnn_frames(live, z), expected, atol=1e-5)


def test_gan_steps_move_critic_and_generator(model):
    from livegen.train import dcrnn as trainer

    m = DCRNN(model.config)
    real = (torch.rand(4, 2, 2 * m.config.segment_steps, m.config.pitches) < 0.1).float()
    opt_c = torch.optim.Adam(m.critic.parameters(), 1e-3)
    opt_g = torch.optim.Adam(list(m.generator.parameters()) + list(m.encoder.parameters()), 1e-3)
    before_c = m.critic.out.weight.clone()
    before_g = m.generator.deconv.weight.clone()
    w = trainer._critic_step(m, real, opt_c, torch)
    losses = trainer._generator_step(m, real, opt_g, True, torch)
    assert np.isfinite(w) and all(np.isfinite(v) for v in losses.values()) and set(losses) == {"recon", "kl", "adv"}
    assert not torch.equal(before_c, m.critic.out.weight) and not torch.equal(before_g, m.generator.deconv.weight)


def test_a_tiny_training_run_writes_checkpoint_samples_and_resumes(tmp_path):
    from livegen.models import checkpoint
    from livegen.train.dcrnn import train

    data = write_songs(tmp_path / "data", 3, pop909=True)
    out = tmp_path / "dc.safetensors"
    state = train(str(data), str(out), 5.0, batch=4, max_steps=2, config_overrides=TINY, log=lambda _: None)
    assert state["step"] == 2 and out.exists() and (tmp_path / "dc.safetensors.opt.safetensors").exists()
    assert len(list((tmp_path / "dc-samples").glob("*.mid"))) == 4
    model, meta = checkpoint.load(out)
    assert model.kind == "dcrnn" and meta["extra"]["metrics"]["real"]["notes_per_bar"] > 1
    state = train(str(data), str(out), 5.0, batch=4, max_steps=1, log=lambda _: None)
    assert state["step"] == 3


def test_beat_annotations_set_the_grid(tmp_path):
    from livegen.music.corpus import beat_grid
    from livegen.music.events import Note
    from livegen.music.roll import to_roll

    (tmp_path / "beat_midi.txt").write_text("".join(f"{i * 0.6} {i % 2} {int(i % 4 == 1)}\n" for i in range(12)))
    beats, downbeats = beat_grid(str(tmp_path / "x.mid"), [])
    assert np.allclose(np.diff(beats), 0.6) and list(downbeats) == [1, 5, 9]
    notes = [Note(0.61, 1.19, 60, 90), Note(1.2, 1.33, 60, 90)]  # beat 1 to beat 2, then a 16th re-strike
    roll = to_roll(notes, beats, downbeats, 36, 60, 4)
    assert list(np.flatnonzero(roll.sounding[:, 24])) == [4, 5, 6, 7, 8]
    assert list(np.flatnonzero(roll.onset[:, 24])) == [4, 8]
    assert list(roll.downbeats) == [4, 20, 36]


def frames(*rows):
    """Hand-made frames: each row a string over 4 pitches, '.' silent, '-' sounding, 'o' struck."""
    out = np.zeros((len(rows), 2, 4))
    for t, row in enumerate(rows):
        for p, ch in enumerate(row):
            out[t, 0, p] = ch in "-o"
            out[t, 1, p] = ch == "o"
    return out


def decode(roll, max_steps=100, max_polyphony=8):
    decoder = RollDecoder(0.5, 0.5, max_steps, max_polyphony)
    notes, starts = [], {}
    for t, frame in enumerate(roll):
        decoder, ended, started = decoder.feed(frame, t)
        notes += [(starts.pop(r), t, r) for r in ended]
        starts.update((r, t) for r, _ in started)
    return sorted(notes + [(s, len(roll), r) for r, s in starts.items()])


def test_held_rows_are_one_note_and_onsets_restrike():
    roll = frames("o...", "-...", "o..-", "-..-", "....", "-...")
    assert decode(roll) == [(0, 2, 0), (2, 4, 0), (2, 4, 3), (5, 6, 0)]


def test_guards_end_long_notes_and_keep_the_strongest_onsets():
    assert decode(frames("o...", "-...", "-...", "-...", "-..."), max_steps=2) == [(0, 2, 0)]
    assert decode(frames("-oo-"), max_polyphony=2) == [(0, 1, 1), (0, 1, 2)]  # struck rows beat sounding ones
    roll = frames("oooo")
    roll[0, 1] = [0.6, 0.9, 0.7, 0.8]
    assert decode(roll, max_polyphony=2) == [(0, 1, 1), (0, 1, 3)]


def test_roll_notes_decodes_like_the_live_decoder():
    from livegen.music.roll import roll_notes
    from livegen.train.dcrnn import roll_metrics

    roll = frames("o...", "-...", "o..-", "-..-", "....", "-...")
    assert roll_notes(roll[:, 0], roll[:, 1]) == decode(roll)
    metrics = roll_metrics(roll.transpose(1, 0, 2)[None], steps_per_bar=3)
    assert metrics["notes_per_bar"] == 2.0 and metrics["empty_bar_ratio"] == 0.0 and metrics["polyphony"] == 1.4


def test_same_seed_same_notes_other_seed_other_theme(live_model):
    a = run(DCRNNGenerator(live_model, Controls(), seed=4), 6.0)
    assert a == run(DCRNNGenerator(live_model, Controls(), seed=4), 6.0)
    assert a != run(DCRNNGenerator(live_model, Controls(), seed=5), 6.0)
    assert any(m[2][0] == 0x90 for m in a)


def test_rollback_equals_knowing_the_z_change_in_advance(live_model):
    change = Controls(z=(1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0))
    planned = DCRNNGenerator(live_model, Controls(), seed=1)
    planned.timeline.set(2.01, change)
    expected = run(planned, 6.0)
    live = DCRNNGenerator(live_model, Controls(), seed=1)
    ahead = run(live, 3.0)
    live.timeline.set(2.01, change)
    first = live.rollback(2.01)
    assert first == 17  # the first 16th at or after the change: heard at the next step
    assert [m for m in ahead if m[1] < first] + run(live, 6.0) == expected
    assert expected != run(DCRNNGenerator(live_model, Controls(), seed=1), 6.0)


def test_themes_are_recalled_and_interpolated_linearly(live_model):
    gen = DCRNNGenerator(live_model, Controls(), seed=2, external=(0, 1))
    a, b = gen.z_for(Controls(theme="A")), gen.z_for(Controls(theme="B"))
    assert np.array_equal(a, theme_z(2, "A", live_model.config.z_dim)) and not np.allclose(a, b)
    np.testing.assert_allclose(gen.z_for(Controls(theme="A", toward="B", mix=0.25)), 0.75 * a + 0.25 * b)
    played = gen.z_for(Controls(theme="B", z=(1.0, -0.5)))
    assert played[0] == 1.5 and played[1] == -0.75 and np.array_equal(played[2:], b[2:])
    form = [(0.0, Controls(theme="A")), (2.0, Controls(theme="B")), (4.0, Controls(theme="A"))]
    notes = take_notes(live_model, form, 6.0, seed=2)
    alone = take_notes(live_model, [(0.0, Controls(theme="A"))], 6.0, seed=2)
    assert [(n[0], n[2]) for n in notes if n[0] < 2.0] == [(n[0], n[2]) for n in alone if n[0] < 2.0]
    assert notes != alone


def test_bad_generator_settings_are_user_errors(live_model):
    with pytest.raises(UserError, match="bpm"):
        DCRNNGenerator(live_model, Controls(), bpm=1000)
    with pytest.raises(UserError, match="external z dims"):
        DCRNNGenerator(live_model, Controls(), external=(0, 99))


def test_script_theme_keys_merge_and_bad_ones_are_refused(tmp_path):
    from livegen.sensors.script import ScriptControls

    path = tmp_path / "form.jsonl"
    path.write_text('{"t": 0, "theme": "B", "toward": "C", "mix": 0.4, "z": [0.5]}\n')
    assert ScriptControls(str(path)).current == Controls(z=(0.5,), theme="B", toward="C", mix=0.4)
    path.write_text('{"t": 0, "theme": 3}\n')
    with pytest.raises(UserError, match="theme must be a theme name"):
        ScriptControls(str(path))


def test_shipped_model_makes_bars_that_are_neither_empty_nor_a_wall(shipped):
    notes = take_notes(shipped, [(0.0, Controls(z=(0.3,) * 8))], 16.0, seed=3)
    per_bar = np.bincount([int(n[0] // 2.0) for n in notes], minlength=8)
    assert (per_bar > 0).all() and per_bar.max() < 96


def test_live_run_on_jack_with_z_changes_balances_every_note(shipped, receiver, tmp_path):
    from livegen.engine.engine import Engine, EngineSettings, OutputChoice
    from livegen.midi import ports

    port = ports.match_port(receiver.name, ports.list_ports("jack")["outputs"])
    engine = Engine(shipped, OutputChoice("jack", port), EngineSettings(seed=3, bpm=140), Controls(),
                    record=str(tmp_path / "t.mid"))
    engine.start()
    while engine.now() < 0:  # changes before the first note have no latency to count
        time.sleep(0.01)
    rng = np.random.default_rng(0)
    for _ in range(12):
        time.sleep(0.3)
        engine.set_controls(Controls(z=tuple(rng.uniform(-1, 1, 8))))
    time.sleep(0.3)
    stats = engine.stop()
    receiver.settle()
    sent = [(m.type, m.note) if m.type == "note_off" or m.velocity else ("note_off", m.note)
            for m in mido.MidiFile(tmp_path / "t.mid") if m.type in ("note_on", "note_off")]
    got = [(m.type, m.note) if m.type == "note_off" or m.velocity else ("note_off", m.note) for m in receiver.notes()]
    assert len(stats.control_to_midi) == 12 and stats.late_rollbacks == 0 and engine.failed is None
    assert len([n for n in sent if n[0] == "note_on"]) >= 10 and got == sent and receiver.hanging() == 0


def test_cli_rejects_a_bad_bpm_in_one_line():
    run = subprocess.run(livegen_cmd("perform", "--model", "dcrnn", "--no-port", "--bpm", "1000", "--duration", "1"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "--bpm" in run.stderr


def test_each_pitch_outside_a_key_folds_onto_a_neighbour_in_it():
    c_major = sum(1 << pc for pc in (0, 2, 4, 5, 7, 9, 11))
    target = key_folding(c_major, 48, 24)
    for row, into in enumerate(target):
        assert (c_major >> ((48 + into) % 12)) & 1
        assert into == row if (c_major >> ((48 + row) % 12)) & 1 else abs(into - row) == 1
    pentatonic = sum(1 << pc for pc in (0, 2, 4, 7, 9))
    assert key_folding(pentatonic, 60, 12)[5] == 4 and key_folding(pentatonic, 60, 12)[6] == 7  # F -> E, F# -> G


def in_scale(notes, mask) -> float:
    return float(np.mean([(mask >> (n[2] % 12)) & 1 for n in notes]))


def test_z_moving_changes_the_gesture_not_the_key(shipped):
    rng = np.random.default_rng(8)
    form = [(8.0 * k, Controls(z=tuple(rng.uniform(-1, 1, 8)))) for k in range(5)]
    notes = take_notes(shipped, form, 40.0, seed=1)
    gen = DCRNNGenerator(shipped, form[0][1], seed=1)
    for t, controls in form[1:]:
        gen.timeline.set(t, controls)
    run(gen, 40.0)
    latched = gen.current.key
    assert latched is not None and bin(latched).count("1") == 7
    assert in_scale(notes[12:], latched) == 1.0 and len(notes) > 100
    e_major = tuple(1.0 if pc in (4, 6, 8, 9, 11, 1, 3) else 0.0 for pc in range(12))
    asked = take_notes(shipped, [(t, Controls(z=c.z, histogram=e_major)) for t, c in form], 40.0, seed=1)
    assert in_scale(asked, sum(1 << pc for pc in (4, 6, 8, 9, 11, 1, 3))) == 1.0 and len(asked) > 100
