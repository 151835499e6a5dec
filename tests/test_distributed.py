"""Data-parallel training under torchrun on CPU (gloo): the window order every process shares, a
2-process run equal to a 1-process run with the same global batch, and resuming a killed run."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import livegen_cmd
from livegen.errors import UserError
from livegen.train import shards
from livegen.train.data import WindowOrder, permute
from songs import write_song, write_songs

TINY_CHARRNN = dict(embed_dim=16, hidden=32, layers=2, dropout=0.1)  # dropout masks follow the sample
TINY_DCRNN = dict(z_dim=8, coarse_hidden=16, fine_hidden=16, strip_channels=4, critic_channels=8)

# train() in processes torchrun started; jobs as JSON: [[module, data, out, keyword arguments], ...]
RUNNER = textwrap.dedent("""
    import json, sys
    from livegen.train import charrnn, commentary, dcrnn
    for module, data, out, kwargs in json.loads(sys.argv[1]):
        {"charrnn": charrnn, "dcrnn": dcrnn, "commentary": commentary}[module].train(data, out, 10.0, log=print,
                                                                                   **kwargs)
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny prepared corpus of songs the test writes: two laid out as POP909's, with beat
    annotations, and three plain MIDI tunes."""
    root = tmp_path_factory.mktemp("music")
    write_songs(root, 2, first_seed=2, pop909=True)
    for seed in (5, 6, 7):
        write_song(root / f"tune{seed}.mid", seed, beats=96)
    out = tmp_path_factory.mktemp("prepared") / "shards"
    shards.prepare(str(root), str(out), workers=2, log=lambda _: None, progress=False)
    return out


def torchrun(*args, timeout=240, background=False):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # never leave workers behind (they live in sessions of their own)
        for pid in children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (torchrun starts its workers in sessions of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def weights(path):
    return load_file(str(path))


def assert_same_weights(a, b, atol=2e-6):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=1e-4, atol=atol), (k, (wa[k] - wb[k]).abs().max())


# --- the window order -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4099])
def test_the_permutation_is_a_bijection_and_changes_with_the_epoch(n):
    a = permute(np.arange(n), n, seed=5, epoch=0)
    assert np.array_equal(np.sort(a), np.arange(n))
    if n >= 7:
        assert not np.array_equal(a, permute(np.arange(n), n, seed=5, epoch=1))
        assert not np.array_equal(a, np.arange(n))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_window_once_per_epoch_across_ranks(world):
    counts = np.array([5, 0, 1, 12, 3, 0, 9])  # pieces with 0 windows: held out
    order = WindowOrder(counts, seed=11)
    batch = 6
    seen: dict[int, list] = {}
    for step in range(2 * order.total // batch + 2):
        first = step * batch
        ranks = [WindowOrder.local(first, batch, r, world) for r in range(world)] if batch % world == 0 else None
        if ranks is None:
            continue
        positions = [g for r in ranks for g in r]
        assert positions == list(range(first, first + batch))  # the processes hold the global batch
        for g in positions:
            piece, k, epoch = order.locate(g)
            assert counts[piece] > k >= 0
            seen.setdefault(epoch, []).append((piece, k))
    everything = sorted((p, k) for p, c in enumerate(counts) for k in range(c))
    for epoch in (0, 1):
        assert sorted(seen[epoch]) == everything
    assert seen[0] != seen[1]  # a new order each epoch
    assert order.locate(17) == WindowOrder(counts, seed=11).locate(17)  # deterministic


def test_the_samples_of_a_step_do_not_depend_on_the_number_of_processes(corpus):
    from livegen.train.data import TokenWindows

    windows = TokenWindows(shards.ShardPieces(corpus), 64, seed=2)
    whole = windows.batch(WindowOrder.local(24, 8, 0, 1))[0]
    halves = [windows.batch(WindowOrder.local(24, 8, r, 2))[0] for r in (0, 1)]
    assert np.array_equal(whole, np.concatenate(halves))


# --- equivalence and resume -----------------------------------------------------------------------

def test_two_nodes_meeting_through_torchruns_rendezvous_train_the_same_model_as_one_process(corpus, tmp_path):
    """Across machines as torchrun runs it (``--nnodes 2 --rdzv-backend c10d``), here two nodes on
    this one, a process each: the same weights as one process with the same global batch."""
    import socket

    from livegen.train import charrnn

    char = dict(seq_len=64, batch=8, max_steps=3, threads=1, config_overrides=TINY_CHARRNN, resume=False)
    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = json.dumps([["charrnn", str(corpus), str(tmp_path / "nodes.safetensors"), char]])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "livegen",
                               str(script), job], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    try:
        outputs = [node.communicate(timeout=240) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.communicate()
    for node, (out, err) in zip(nodes, outputs):
        assert node.returncode == 0, out + err
    assert sum(out.count("corpus:") for out, _ in outputs) == 1  # the one global rank 0 logs
    assert any("2 process(es) on cpu" in out for out, _ in outputs)
    charrnn.train(str(corpus), str(tmp_path / "one.safetensors"), 10.0, **char, log=lambda _: None)
    assert_same_weights(tmp_path / "one.safetensors", tmp_path / "nodes.safetensors")


def test_two_processes_train_the_same_model_as_one_with_the_same_global_batch(corpus, tmp_path):
    from livegen.train import charrnn, dcrnn

    char = dict(seq_len=64, batch=8, max_steps=3, threads=1, config_overrides=TINY_CHARRNN, resume=False)
    dc = dict(batch=4, max_steps=3, threads=1, config_overrides=TINY_DCRNN, resume=False)
    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    for job in (["charrnn", str(corpus), str(tmp_path / "c2.safetensors"), char],
                ["dcrnn", str(corpus), str(tmp_path / "d2.safetensors"), dc]):
        run = torchrun(str(script), json.dumps([job]))  # one training per process, as from the command line
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.count("corpus:") == 1, run.stdout  # rank 0 alone logs
        assert "2 process(es) on cpu" in run.stdout

    quiet = dict(log=lambda _: None)
    charrnn.train(str(corpus), str(tmp_path / "c1.safetensors"), 10.0, **char, **quiet)
    charrnn.train(str(corpus), str(tmp_path / "c1a.safetensors"), 10.0, **dict(char, accum=2), **quiet)
    assert_same_weights(tmp_path / "c1.safetensors", tmp_path / "c2.safetensors")
    assert_same_weights(tmp_path / "c1.safetensors", tmp_path / "c1a.safetensors")
    from livegen.models.charrnn import CharRNNConfig
    from livegen.models.nets.charrnn import CharRNN

    torch.manual_seed(0)
    untrained = CharRNN(CharRNNConfig(**TINY_CHARRNN)).state_dict()
    trained = weights(tmp_path / "c1.safetensors")
    assert any(not torch.allclose(untrained[k], trained[k]) for k in trained)  # it did train

    state = dcrnn.train(str(corpus), str(tmp_path / "d1.safetensors"), 10.0, **dc, **quiet)
    assert state["phase"] == "gan"  # the third step ran the critic too
    assert_same_weights(tmp_path / "d1.safetensors", tmp_path / "d2.safetensors", atol=1e-5)


def test_a_resumed_run_continues_exactly_where_it_stopped(corpus, tmp_path):
    from livegen.models import checkpoint
    from livegen.train import charrnn

    common = dict(seq_len=64, batch=8, threads=1, config_overrides=TINY_CHARRNN, log=lambda _: None)
    charrnn.train(str(corpus), str(tmp_path / "straight.safetensors"), 10.0, max_steps=4, **common)
    charrnn.train(str(corpus), str(tmp_path / "halves.safetensors"), 10.0, max_steps=2, **common)
    state = charrnn.train(str(corpus), str(tmp_path / "halves.safetensors"), 10.0, max_steps=2, **common)
    assert state["step"] == 4 and state["samples"] == 32
    assert checkpoint.load(tmp_path / "halves.safetensors")[1]["extra"]["train"]["step"] == 4
    assert_same_weights(tmp_path / "straight.safetensors", tmp_path / "halves.safetensors")


def kill_after_step_2(model: str, data, out, kwargs: dict, tmp_path) -> int:
    """A 2-process torchrun training ``model``, SIGKILLed whole once its checkpoint reaches step 2;
    the step the checkpoint was left at."""
    from livegen.models import checkpoint

    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    proc = torchrun(str(script), json.dumps([[model, str(data), str(out), kwargs]]), background=True)
    deadline = time.monotonic() + 180
    step = 0
    try:
        while step < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended or stalled before step 2"
            time.sleep(0.2)
            if out.exists():
                try:
                    step = checkpoint.read_metadata(out)["extra"]["train"]["step"]
                except UserError:
                    pass  # caught between two writes of the optimizer file and the checkpoint
    finally:
        for pid in [proc.pid, *children(proc.pid)]:  # the whole run at once, as a node failure would
            os.kill(pid, signal.SIGKILL)
        proc.communicate()
    return checkpoint.read_metadata(out)["extra"]["train"]["step"]


def test_a_killed_torchrun_run_resumes_from_its_last_checkpoint(corpus, tmp_path):
    from livegen.models import checkpoint
    from livegen.train import charrnn

    out = tmp_path / "k.safetensors"
    kwargs = dict(seq_len=64, batch=8, threads=1, config_overrides=TINY_CHARRNN, eval_every=0.0)
    step = kill_after_step_2("charrnn", corpus, out, kwargs, tmp_path)
    lines = []
    state = charrnn.train(str(corpus), str(out), 10.0, max_steps=1, log=lines.append,
                          **dict(kwargs, eval_every=120.0))
    assert any(f"resuming from {out} at step {step}" in line for line in lines), lines
    assert not any("afresh" in line for line in lines), lines  # the optimizer state matched
    assert state["step"] == step + 1 and state["samples"] == (step + 1) * 8
    model, meta = checkpoint.load_live(out)  # the live engine's loader, as-is
    assert meta["kind"] == "charrnn" and model.kind == "charrnn" and not (tmp_path / "k.safetensors.tmp").exists()


def test_torchrun_runs_the_livegen_command_and_rank_0_alone_reports(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    args = ["-m", "livegen", "train", "charrnn", "--data", str(corpus), "--out", str(out), "--steps", "1",
            "--batch", "4", "--seq-len", "32", "--threads", "1"]
    run = torchrun(*args)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("livegen: corpus:") == 1 and run.stderr.count("livegen: done: 1 steps") == 1
    run = torchrun(*args)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count(f"resuming from {out} at step 1") == 1 and "done: 2 steps" in run.stderr


@pytest.mark.parametrize("model", ["charrnn", "commentary"])
def test_bad_device_and_batch_are_one_line_errors(model, corpus, tmp_path):
    from test_commentary import small_csv

    data = corpus if model == "charrnn" else small_csv(tmp_path)

    def errors(*extra):
        run = subprocess.run(livegen_cmd("train", model, "--data", str(data), "--out",
                                         str(tmp_path / "m.safetensors"), "--steps", "1", *extra),
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "Traceback" not in run.stderr
        found = [line for line in run.stderr.splitlines() if line.startswith("livegen: error")]
        assert len(found) == 1, run.stderr
        return found[0]

    assert "multiple of processes x --accum (1 x 4)" in errors("--batch", "6", "--accum", "4")
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in errors("--device", "cuda")


def test_world_size_without_torchrun_is_refused(monkeypatch):
    from livegen.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(UserError, match="torchrun"):
        with distributed.session("cpu"):
            pass


def test_the_commentary_model_trains_under_torchrun_like_one_process(tmp_path):
    from test_commentary import TINY, small_csv

    from livegen.models import checkpoint
    from livegen.train import commentary

    data = small_csv(tmp_path)
    kwargs = dict(batch=8, max_steps=3, threads=1, config_overrides=TINY, lcgan_steps=0, resume=False,
                  progress=False)
    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    run = torchrun(str(script), json.dumps([["commentary", str(data), str(tmp_path / "t2.safetensors"), kwargs]]))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("captions:") == 1 and "2 process(es) on cpu" in run.stdout  # rank 0 alone logs

    quiet = dict(log=lambda _: None)
    commentary.train(str(data), str(tmp_path / "t1.safetensors"), 10.0, **kwargs, **quiet)
    commentary.train(str(data), str(tmp_path / "t1a.safetensors"), 10.0, **dict(kwargs, accum=2), **quiet)
    assert_same_weights(tmp_path / "t1.safetensors", tmp_path / "t2.safetensors")
    assert_same_weights(tmp_path / "t1.safetensors", tmp_path / "t1a.safetensors")
    halves = dict(kwargs, max_steps=2, resume=True)
    commentary.train(str(data), str(tmp_path / "h.safetensors"), 10.0, **halves, **quiet)
    commentary.train(str(data), str(tmp_path / "h.safetensors"), 10.0, **dict(halves, max_steps=1), **quiet)
    straight, resumed = weights(tmp_path / "t1.safetensors"), weights(tmp_path / "h.safetensors")
    for k in straight:  # the classifier is refitted at the end of every run: the CVAE must continue exactly
        if not k.startswith("classifier."):
            assert torch.allclose(straight[k], resumed[k], rtol=1e-4, atol=2e-6), k

    kwargs.update(lcgan_steps=2, lcgan_samples=16)
    run = torchrun(str(script), json.dumps([["commentary", str(data), str(tmp_path / "l.safetensors"), kwargs]]))
    assert run.returncode == 0, run.stdout + run.stderr
    model, meta = checkpoint.load(tmp_path / "l.safetensors")
    assert model.kind == "cvae" and meta["extra"]["train"]["step"] == 3 and model.lcgan is not None


def test_a_killed_torchrun_commentary_run_resumes(tmp_path):
    from safetensors import safe_open
    from test_commentary import TINY, small_csv

    from livegen.models import checkpoint
    from livegen.train import commentary

    data, out = small_csv(tmp_path), tmp_path / "k.safetensors"
    kwargs = dict(batch=8, threads=1, config_overrides=dict(TINY, kl_anneal_steps=1000), lcgan_steps=2,
                  lcgan_samples=16, progress=False, eval_every=0.0)
    step = kill_after_step_2("commentary", data, out, kwargs, tmp_path)
    with safe_open(str(out) + ".opt.safetensors", framework="pt") as f:
        killed_between_writes = int(f.metadata()["step"]) != step
    lines = []
    state = commentary.train(str(data), str(out), 10.0, max_steps=1, log=lines.append, **kwargs)
    assert any(f"resuming from {out} at step {step}" in line for line in lines), lines
    assert any("afresh" in line for line in lines) == killed_between_writes, lines
    assert state["step"] == step + 1
    model, meta = checkpoint.load_live(out)  # the live engine's loader, as-is
    assert meta["extra"]["train"]["step"] == step + 1 and model.lcgan is not None
    assert not (tmp_path / "k.safetensors.tmp").exists()


def test_rank_0_alone_reports_the_commentary_command(monkeypatch, capsys, tmp_path):
    from livegen import cli
    from livegen.train import commentary

    got = {}
    monkeypatch.setattr(commentary, "train", lambda *a, **k: got.update(k) or {"step": 3, "best_val": float("inf")})
    for rank, reports in (("0", 1), ("1", 0)):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(["train", "commentary", "--data", "d.csv", "--out", str(tmp_path / "c.safetensors"),
                         "--accum", "2", "--device", "cpu", "--steps", "3"]) == 0
        assert capsys.readouterr().err.count("done: 3 steps") == reports
    assert got["accum"] == 2 and got["device"] == "cpu"
