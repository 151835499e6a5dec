"""The Char-RNN, its live single-step path and its checkpoints (including the ones that aren't ours),
read by both loaders: the torch module's and the live numpy runtime's."""
import json
import struct

import numpy as np
import pytest
import torch

from livegen.errors import UserError
from livegen.models import checkpoint
from livegen.models.charrnn import CharRNNConfig, LiveCharRNN
from livegen.models.nets.charrnn import CharRNN
from livegen.music import conditioning, events
from livegen.music.conditioning import Controls

SMALL = CharRNNConfig(embed_dim=16, hidden=24, layers=2)
each_loader = pytest.mark.parametrize("load", [checkpoint.load, checkpoint.load_live], ids=("torch", "live"))


def test_forward_shapes():
    model = CharRNN(SMALL)
    tokens = torch.randint(0, events.VOCAB_SIZE, (3, 7))
    cond = torch.rand(3, 7, conditioning.CONDITION_DIM)
    logits, (h, c) = model(tokens, cond)
    assert logits.shape == (3, 7, events.VOCAB_SIZE)
    assert h.shape == c.shape == (SMALL.layers, 3, SMALL.hidden)


def test_live_step_matches_the_torch_forward_pass():
    torch.manual_seed(0)
    model = CharRNN(SMALL).eval()
    cond = Controls(pitch=0.2, density=0.9).vector()
    tokens = [5, 200, 300, 260, 370, 64]
    with torch.no_grad():
        expected, _ = model(torch.tensor([tokens]), torch.from_numpy(np.tile(cond, (len(tokens), 1)))[None])
    live = model.live()
    state, conditioned = live.initial_state(cond), live.condition(cond)
    for i, token in enumerate(tokens):
        logits, state = live.step(token, conditioned, state)
        np.testing.assert_allclose(logits, expected[0, i].numpy(), atol=1e-4)


def test_checkpoint_round_trip_carries_config_and_vocabulary(tmp_path):
    model = CharRNN(SMALL)
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, model, {"train": {"step": 3}})
    loaded, meta = checkpoint.load(path)
    assert loaded.config == SMALL and meta["extra"]["train"]["step"] == 3
    assert meta["vocabulary"] == events.vocabulary()
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    live, live_meta = checkpoint.load_live(path)
    assert isinstance(live, LiveCharRNN) and live.config == SMALL and live_meta == meta
    cond = Controls().vector()
    np.testing.assert_array_equal(live.initial_state(cond)[0], model.live().initial_state(cond)[0])


def _bad(tmp_path, data: bytes):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    return path


@each_loader
def test_random_bytes_are_refused(tmp_path, load):
    with pytest.raises(UserError, match="not a readable safetensors"):
        load(_bad(tmp_path, np.random.default_rng(0).bytes(4000)))


@each_loader
def test_truncated_checkpoint_is_refused(tmp_path, load):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, CharRNN(SMALL))
    data = path.read_bytes()
    with pytest.raises(UserError):
        load(_bad(tmp_path, data[: len(data) // 2]))


@each_loader
def test_foreign_safetensors_is_refused(tmp_path, load):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(UserError, match="not a livegen checkpoint"):
        load(path)


def _rewrite_meta(path, change):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["livegen"])
    change(meta)
    header["__metadata__"]["livegen"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


@each_loader
def test_wrong_vocabulary_is_refused(tmp_path, load):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, CharRNN(SMALL))
    _rewrite_meta(path, lambda m: m["vocabulary"][2].update(count=50))
    with pytest.raises(UserError, match="vocabulary differs"):
        load(path)


@each_loader
@pytest.mark.parametrize("change", [dict(hidden=32), dict(layers=3), dict(embed_dim=17), dict(surprise=1)])
def test_config_that_does_not_fit_the_weights_is_refused(tmp_path, load, change):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, CharRNN(SMALL))
    _rewrite_meta(path, lambda m: m["config"].update(change))
    with pytest.raises(UserError, match="weights do not match the stored config") as err:
        load(path)
    assert "\n" not in str(err.value)


def test_the_live_loader_names_the_weight_that_does_not_fit(tmp_path):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, CharRNN(SMALL))
    _rewrite_meta(path, lambda m: m["config"].update(hidden=32))
    with pytest.raises(UserError, match=r"weight 'lstm.weight_ih_l0' is 96x45, the config implies 128x45"):
        checkpoint.load_live(path)


@pytest.mark.parametrize("name,kind", [("DEFAULT_CHARRNN", "charrnn"), ("EXPRESSIVE_CHARRNN", "charrnn"),
                                       ("DEFAULT_DCRNN", "dcrnn"), ("DEFAULT_COMMENTARY", "cvae")])
@each_loader
def test_shipped_models_load(load, name, kind):
    model, meta = load(getattr(checkpoint, name))
    assert meta["kind"] == model.kind == kind


def test_shipped_models_are_small_and_the_default_char_rnn_plays_on_the_beat():
    for name, (_, path) in checkpoint.SHIPPED.items():
        assert path.stat().st_size < 15 * 2**20, name
    assert checkpoint.read_metadata(checkpoint.DEFAULT_CHARRNN)["config"]["time_unit"] == "beats"
    assert checkpoint.read_metadata(checkpoint.EXPRESSIVE_CHARRNN)["config"].get("time_unit", "seconds") == "seconds"


def test_a_model_loaded_by_name_keeps_the_name_a_take_replays_it_with(tmp_path):
    assert checkpoint.load_model("expressive").name == "expressive"
    assert checkpoint.load_model("dcrnn").name == "dcrnn"
    copy = tmp_path / "mine.safetensors"
    copy.write_bytes(checkpoint.EXPRESSIVE_CHARRNN.read_bytes())
    assert checkpoint.load_model(str(copy)).name == str(copy.resolve())
