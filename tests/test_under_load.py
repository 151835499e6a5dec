"""A take is a function of the control stream, the seed and the model, whatever the load: a scripted
DCRNN take is the same notes with busy processes beside it, and when the clock process starts late."""
import json
import subprocess

import pytest

from conftest import livegen_cmd
from livegen.bench.load import busy_processes, note_integrity, scripted_dcrnn_take, take_notes

SECONDS = 8.0


@pytest.fixture(scope="module")
def dcrnn():
    from livegen.models.checkpoint import load_model

    return load_model("dcrnn")


def test_a_scripted_take_is_the_same_notes_with_busy_processes_beside_it(dcrnn, tmp_path):
    quiet = scripted_dcrnn_take(dcrnn, SECONDS, str(tmp_path), "quiet", log=lambda _: None)
    with busy_processes(4):
        loaded = scripted_dcrnn_take(dcrnn, SECONDS, str(tmp_path), "loaded", log=lambda _: None)
    assert quiet["note_ons"] > 20
    assert loaded["notes"] == quiet["notes"]
    assert loaded["retriggers"] == loaded["unended"] == loaded["late_dropped"] == 0


SLOW_START = """import os, time
if os.environ.get("SLOW_CHILD_TOP") not in (None, str(os.getpid())):
    time.sleep(1.5)
os.environ.setdefault("SLOW_CHILD_TOP", str(os.getpid()))
"""


def test_a_clock_process_that_starts_late_plays_the_same_take(tmp_path):
    """Every Python process the performer starts sleeps 1.5 s before it runs, as on a busy laptop."""
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "sitecustomize.py").write_text(SLOW_START)
    script = tmp_path / "z.jsonl"
    script.write_text("".join(json.dumps({"t": 2.0 * k, "z": [0.9 - 0.3 * k] * 8}) + "\n" for k in range(4)))

    def take(name, env):
        out = tmp_path / f"{name}.mid"
        run = subprocess.run(livegen_cmd("perform", "--model", "dcrnn", "--no-port", "--controls", f"script:{script}",
                                         "--duration", "6", "--seed", "3", "--record", str(out)),
                             capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stderr
        return take_notes(str(out))

    import os

    quiet = take("quiet", dict(os.environ))
    slow = take("slow", dict(os.environ, PYTHONPATH=str(tmp_path / "slow")))
    assert len(quiet) > 20 and slow == quiet
    assert note_integrity(slow)["retriggers"] == 0 and note_integrity(slow)["unended"] == 0
