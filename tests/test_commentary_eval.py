"""Honest commentary evaluation: attributes that do not contain the answer, the no-attribute
baseline trained and reported from the command line, and an agreement judge of its own."""
import json
import subprocess

import pytest

from captions import write_captions
from conftest import livegen_cmd
from livegen.commentary import text
from livegen.train.commentary import write_held_out
from test_commentary import TINY, small_csv


def run(*args, timeout=300):
    return subprocess.run(livegen_cmd(*args), capture_output=True, text=True, timeout=timeout)


def held_out_csv(tmp_path, count=40):
    """Held-out captions of clips the test writes (tests/captions.py), not the training ones."""
    rows = [r for r in text.read_captions(write_captions(tmp_path / "all.csv", 800, seed=1))
            if text.is_held_out(r["ytid"])][:count]
    path = tmp_path / "held.csv"
    write_held_out(rows, path)  # as training writes its held-out captions
    return path


def test_a_sentences_own_words_are_in_its_training_attributes_but_not_in_its_aspects():
    row = {"ytid": "x", "aspect_list": "['slow tempo', 'piano']",
           "caption": "A slow piano piece in a minor key. The drums come in fast and loud later on."}
    first, second = text.caption_sentences([row])
    assert first.aspects == second.aspects == {"slow tempo", "piano"}
    assert {"minor key"} <= first.attributes - first.aspects  # named by the sentence itself: the leak
    assert {"drums", "fast tempo", "loud"} <= second.attributes - second.aspects
    assert first.aspects <= first.attributes and second.aspects <= second.attributes


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A tiny CVAE and the same tiny decoder trained without attributes, on the same captions."""
    from livegen.train import commentary as trainer

    tmp = tmp_path_factory.mktemp("pair")
    data = small_csv(tmp)
    common = dict(minutes=1, max_steps=3, batch=16, lcgan_steps=2, lcgan_samples=16, progress=False,
                  log=lambda _: None)
    with_attrs, without = tmp / "with.safetensors", tmp / "without.safetensors"
    trainer.train(str(data), str(with_attrs), config_overrides=TINY, **common)
    trainer.train(str(data), str(without), config_overrides=dict(TINY, use_attributes=False), **common)
    return data, with_attrs, without


def test_the_cli_trains_the_no_attribute_baseline_and_refuses_to_mix_it_into_a_resumed_run(tiny_pair, tmp_path):
    from livegen.models import checkpoint

    data, with_attrs, _ = tiny_pair
    out = tmp_path / "base.safetensors"
    r = run("train", "commentary", "--data", str(data), "--out", str(out), "--steps", "1", "--minutes", "1",
            "--batch", "16", "--threads", "1", "--no-attributes")
    assert r.returncode == 0, r.stderr
    assert "zeroed: the no-attribute baseline" in r.stderr
    model, meta = checkpoint.load(out)
    assert model.config.use_attributes is False and model.lcgan is None and meta["extra"]["train"]["step"] == 1

    for args, fragment in ((["commentary", "--out", str(with_attrs)], "was trained with use_attributes=True"),
                           (["charrnn", "--out", str(tmp_path / "c.safetensors")], "for `livegen train commentary`")):
        r = run("train", args[0], "--data", str(data), *args[1:], "--steps", "1", "--no-attributes")
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert fragment in r.stderr.strip().splitlines()[-1]


def test_eval_reports_the_baseline_the_aspect_only_perplexity_and_an_independent_judge(tiny_pair, tmp_path):
    data, with_attrs, without = tiny_pair
    held = held_out_csv(tmp_path)
    r = run("eval", str(with_attrs), "--data", str(held), "--baseline", str(without), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["use_attributes"] is True
    for numbers in (out, out["aspect_attributes"], out["baseline"]):
        assert numbers["perplexity"] > 1 and numbers["perplexity_reconstruction"] > 1 and numbers["kl"] >= 0
    assert out["baseline"]["model"] == str(without) and out["baseline"]["trained_steps"] == 3
    judge = out["independent_judge"]
    for key in ("attribute_agreement", "shown", "lcgan", "on_real"):
        assert 0 <= judge[key] <= 1, key
    assert judge["fitted_on_sentences"] + judge["real_sentences"] == out["sentences"]

    text_out = run("eval", str(with_attrs), "--data", str(held), "--baseline", str(without))
    assert text_out.returncode == 0, text_out.stderr
    assert "aspect list alone" in text_out.stdout and "without attributes" in text_out.stdout
    assert "independent judge" in text_out.stdout

    for baseline, fragment in ((with_attrs, "was trained with attributes"), (held, "not a readable safetensors")):
        bad = run("eval", str(with_attrs), "--data", str(held), "--baseline", str(baseline))
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert fragment in bad.stderr.strip().splitlines()[-1]


def test_a_baseline_checkpoint_evaluated_alone_is_marked_and_its_two_perplexities_agree(tiny_pair, tmp_path):
    from livegen.train.commentary import evaluate

    _, _, without = tiny_pair
    out = evaluate(str(without), str(held_out_csv(tmp_path)), threads=1, per_category=4)
    assert out["use_attributes"] is False and "lcgan" not in out
    assert out["aspect_attributes"]["perplexity"] == pytest.approx(out["perplexity"])  # attributes zeroed


def test_a_baseline_of_another_architecture_does_not_compare(tiny_pair, tmp_path):
    from livegen.errors import UserError
    from livegen.train import commentary as trainer

    data, with_attrs, _ = tiny_pair
    wider = tmp_path / "wider.safetensors"
    trainer.train(str(data), str(wider), minutes=1, max_steps=1, batch=16, lcgan_steps=0, progress=False,
                  log=lambda _: None, config_overrides=dict(TINY, decoder_hidden=40, use_attributes=False))
    with pytest.raises(UserError, match="not the same decoder"):
        trainer.evaluate(str(with_attrs), str(held_out_csv(tmp_path)), threads=1, per_category=4,
                         baseline=str(wider))
