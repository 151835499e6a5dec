"""The live path runs the shipped models in numpy, read from their files without torch, and plays
what the torch modules they were trained as would: the same tokens, frames, notes and sentences."""
import subprocess
import sys

import mido
import numpy as np
import pytest
import torch

from conftest import ROOT, dcrnn_frames, shared_data
from livegen.engine.charrnn_live import SEED_TOKEN, TokenSampler
from livegen.engine.dcrnn_live import DCRNNGenerator
from livegen.models import checkpoint
from livegen.models.charrnn import LiveCharRNN
from livegen.models.cvae import LiveCVAE, draws
from livegen.models.dcrnn import DCRNNConfig, LiveDCRNN, deconvolution_matrix
from livegen.models.nets.lcgan import reward
from livegen.music.conditioning import Controls


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The torch side as the live path ran it: one thread, oneDNN off (and the same numbers each run)."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


def both(path):
    """(torch module, numpy runtime) of one checkpoint, each from its own loader."""
    return checkpoint.load(path)[0], checkpoint.load_live(path)[0]


# --- the Char-RNN ----------------------------------------------------------------------------------

def test_the_charrnn_runtime_samples_the_tokens_the_torch_module_does():
    net, live = both(checkpoint.DEFAULT_CHARRNN)
    assert isinstance(live, LiveCharRNN)
    sampler = TokenSampler(seed=11, temperature=0.9)
    controls = [Controls(pitch=0.3, density=0.7), Controls(pitch=0.8, density=0.3, histogram=(1,) * 12)]
    cond = controls[0].vector()
    torch_state, state = net.initial_state(torch.from_numpy(cond)[None]), live.initial_state(cond)
    torch_token = token = SEED_TOKEN
    torch_tokens, tokens = [], []
    for i in range(400):
        cond = controls[i // 200].vector()  # a control change half way
        torch_logits, torch_state = net.step(torch.tensor([torch_token]), torch.from_numpy(cond)[None], torch_state)
        logits, state = live.step(token, live.condition(cond), state)
        np.testing.assert_allclose(logits, torch_logits[0].numpy(), atol=1e-4)
        torch_token = sampler.sample(torch_logits[0].numpy().astype(np.float64), i)
        token = sampler.sample(logits, i)
        torch_tokens.append(torch_token)
        tokens.append(token)
    assert tokens == torch_tokens and len(set(tokens)) > 30


# --- the DCRNN -------------------------------------------------------------------------------------

def test_the_folded_deconvolution_is_torchs_transposed_convolution():
    config = DCRNNConfig(pitches=20, strip_kernel=8, strip_stride=3, strip_channels=5)
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((config.strip_channels, 2, config.strip_kernel))
    strip = rng.standard_normal((config.strip_channels, config.strip_width))
    expected = torch.nn.functional.conv_transpose1d(torch.from_numpy(strip)[None], torch.from_numpy(weight),
                                                    stride=config.strip_stride)[0]
    folded = deconvolution_matrix(weight, config) @ strip.reshape(-1)
    np.testing.assert_allclose(folded.reshape(2, config.pitches), expected.numpy(), atol=1e-12)


def test_a_config_whose_deconvolution_misses_pitches_is_refused():
    with pytest.raises(ValueError, match="multiple of strip_stride"):
        DCRNNConfig(pitches=61)


def test_the_dcrnn_runtime_makes_the_frames_of_the_torch_generator():
    net, live = both(checkpoint.DEFAULT_DCRNN)
    assert isinstance(live, LiveDCRNN)
    c = live.config
    beats = c.beats_per_bar * c.bars_per_segment + 3
    z = np.random.default_rng(1).standard_normal((beats, c.z_dim))  # a new z every beat
    with torch.no_grad():
        expected = torch.sigmoid(net.generator(torch.tensor(z, dtype=torch.float32)[None])[0][0]).numpy()
    np.testing.assert_allclose(dcrnn_frames(live, z), expected, atol=1e-5)


class TorchDCRNNSteps:
    """The torch generator's own modules behind the runtime's step interface: the DCRNN's live
    generator driven through torch, to hear whether the numpy runtime plays the same notes."""

    kind = "dcrnn"

    def __init__(self, net):
        self.g, self.config = net.generator, net.config

    @staticmethod
    def _row(*parts):
        return torch.tensor(np.concatenate(parts), dtype=torch.float32)[None]

    @torch.no_grad()
    def initial_state(self, z):
        return self.segment_start(z), torch.tanh(self.g.init_fine(self._row(z)))[0].numpy()

    @torch.no_grad()
    def segment_start(self, z):
        return torch.tanh(self.g.init_coarse(self._row(z)))[0].numpy()

    @torch.no_grad()
    def coarse_step(self, z, beat_in_bar, h):
        return self.g.coarse(self._row(z, np.eye(self.config.beats_per_bar)[beat_in_bar]), self._row(h))[0].numpy()

    @torch.no_grad()
    def fine_step(self, coarse_h, z, step_in_beat, h):
        h = self.g.fine(self._row(coarse_h, z, np.eye(self.config.steps_per_beat)[step_in_beat]), self._row(h))
        return h[0].numpy(), torch.sigmoid(self.g.frame(h))[0].numpy()


def test_the_dcrnn_runtime_plays_the_notes_the_torch_generator_does():
    net, live = both(checkpoint.DEFAULT_DCRNN)

    def notes(model):
        gen = DCRNNGenerator(model, Controls(z=(0.4,) * 8), seed=3, bpm=130)
        gen.timeline.set(3.0, Controls(z=(-0.6, 0.9) * 4, theme="B"))
        out = []
        while gen.steps < 256:  # 8 segments of 2 bars
            out += gen.step()
        return out

    played = notes(live)
    assert played == notes(TorchDCRNNSteps(net))
    assert sum(1 for _, _, msg in played if msg[0] & 0xF0 == 0x90) > 50


# --- the commentary --------------------------------------------------------------------------------

ATTRIBUTE_SETS = (["slow tempo", "piano", "minor key", "sad"], ["fast tempo", "guitar", "energetic", "drums"],
                  ["medium tempo", "strings", "soft"], [])


def test_the_cvae_runtime_writes_the_sentences_the_torch_module_does():
    net, live = both(checkpoint.DEFAULT_COMMENTARY)
    assert isinstance(live, LiveCVAE) and live.lcgan is not None
    compared = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        for labels in ATTRIBUTE_SETS:
            attrs = np.repeat(live.attribute_vector(labels)[None], 8, 0)
            z, uniforms = draws(rng, 8, live.config)
            steered = live.lcgan.steer(z, attrs)
            with torch.no_grad():
                torch_steered = net.lcgan.steer(torch.from_numpy(z), torch.from_numpy(attrs))
            np.testing.assert_allclose(steered, torch_steered.numpy(), atol=1e-5)
            for code, torch_code in ((z, torch.from_numpy(z)), (steered, torch_steered)):  # prior and LC-GAN
                written = live.sample(attrs, code, uniforms)
                assert written == net.sample(torch.from_numpy(attrs), torch_code, torch.from_numpy(uniforms))
                scores = reward(net.classifier, net.encode_words(written), torch.from_numpy(attrs)).numpy()
                np.testing.assert_allclose(live.reward(written, attrs), scores, atol=1e-6)
                compared += len(written)
            assert len({" ".join(s) for s in written}) > 4  # the draws differ, so do the sentences
    assert compared == 4 * len(ATTRIBUTE_SETS) * 16


def test_sampling_follows_the_temperature_and_top_k_it_is_given():
    from livegen.models.cvae import draw_words

    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 20000))
    never = np.array([False, False, False, False])
    u = np.random.default_rng(0).random(20000)
    assert np.bincount(draw_words(logits, u, never, 1.0, 0), minlength=4) / 20000 == pytest.approx(
        [0.5, 0.3, 0.15, 0.05], abs=0.02)
    top2 = np.bincount(draw_words(logits, u, never, 1.0, 2), minlength=4) / 20000
    assert top2 == pytest.approx([0.625, 0.375, 0, 0], abs=0.02)
    assert set(draw_words(logits, u, np.array([True, False, False, True]), 1.0, 0)) == {1, 2}
    cold = np.bincount(draw_words(logits, u, never, 0.25, 0), minlength=4) / 20000
    assert cold[0] > 0.85


# --- no torch on the live path ---------------------------------------------------------------------

def _torch_loaded_after(code: str) -> str:
    """Run ``code`` in a fresh interpreter; what it printed, then whether torch was loaded."""
    probe = f"import sys\n{code}\nprint('torch loaded' if 'torch' in sys.modules else 'no torch')"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_shipped_models_load_and_play_without_torch():
    out = _torch_loaded_after(
        "from livegen.commentary.commentator import Commentator\n"
        "from livegen.engine.charrnn_live import CharRNNGenerator\n"
        "from livegen.engine.dcrnn_live import DCRNNGenerator\n"
        "from livegen.models.checkpoint import load_model\n"
        "from livegen.music.conditioning import Controls\n"
        "melody = CharRNNGenerator(load_model('charrnn'), Controls(), seed=1)\n"
        "bass = DCRNNGenerator(load_model('dcrnn'), Controls(), seed=1)\n"
        "played = [m for _ in range(300) for m in melody.step() + bass.step()]\n"
        "print(len(played), 'messages')\n"
        "print(Commentator(seed=2).sentence(['slow tempo', 'piano']))\n")
    count, sentence, verdict = out.splitlines()
    assert int(count.split()[0]) > 50 and len(sentence.split()) >= 5 and verdict == "no torch"


def test_a_performance_and_its_commentary_run_without_torch(tmp_path):
    take = tmp_path / "take.mid"
    out = _torch_loaded_after(
        "from livegen.cli import main\n"
        f"assert main(['perform', '--no-port', '--duration', '2', '--record', {str(take)!r}, "
        "'--layer', 'dcrnn,channel=2']) == 0\n"
        f"assert main(['comment', '--midi', {str(shared_data('music', 'pop909', '800', '800.mid'))!r}, "
        "'--n', '1']) == 0\n")
    assert out.splitlines()[-1] == "no torch"
    assert len(out.splitlines()) == 2  # the sentence, then the verdict
    assert sum(1 for m in mido.MidiFile(take) if m.type == "note_on" and m.velocity) > 3
