"""Ableton Link tempo following, with real Link peers (LinkPython-extern) that find each other.

Link discovery multicasts on every network interface, and these tests must not reach any
network: every piece of code that enables Link runs in a child process inside a private network
namespace whose only interface is loopback (``unshare --net``, with multicast routed to lo).
The child checks that lo is all it can see before it enables anything, and prints its
measurements as one JSON line; the assertions are made here. This process never enables Link.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# loopback up, with multicast on it and the multicast range routed to it: Link's discovery then
# reaches the other peers in the namespace, and nothing else exists to reach
NAMESPACE_SETUP = ("ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
                   ' && exec "$0" "$@"')

PRELUDE = """
import json, socket, sys, time
interfaces = sorted(name for _, name in socket.if_nameindex())
if interfaces != ["lo"]:
    sys.exit(f"refusing to enable Link: this network namespace has {interfaces}, not only lo")
import link
from livegen.midi.link import AbletonLink

# Link keeps the older of two sessions that meet, but not reliably when they are close in age:
# with the peer's session 0.8 s old, 4 of 25 trials had the peer adopt the newcomer's tempo
# instead; at 1.5 s and 2.5 s none of 20 each. The peer founds its session this long before.
SENIORITY = 1.5

def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True

def wrapped(x, q=4.0):
    return x - round(x / q) * q

def same_instant(ours, peer, ahead=0.0):
    # our beat at a monotonic instant and the peer's at the same instant read off its own clock
    at = time.monotonic()
    micros = peer.clock().micros()
    beat, bpm = ours.beat_at(at + ahead)
    theirs = peer.captureAppSessionState().beatAtTime(micros + int(ahead * 1e6), 4.0)
    return beat, theirs, bpm
"""


def _need_link_and_namespace():
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (util-linux, iproute2): no private network to test Link in")
    if importlib.util.find_spec("link") is None:
        if os.environ.get("LIVEGEN_REQUIRE_SHARED") == "1":
            pytest.fail("the LinkPython-extern package (import link) is missing but LIVEGEN_REQUIRE_SHARED=1")
        pytest.skip("LinkPython-extern is not installed (pip install LinkPython-extern)")
    probe = subprocess.run(["unshare", "--net", "--", "sh", "-c", NAMESPACE_SETUP, "true"],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private loopback-only network namespace (needs root or CAP_SYS_ADMIN): "
                    f"{probe.stderr.strip()}")


def run_isolated(body: str, timeout: float = 40.0) -> dict:
    """Run PRELUDE + ``body`` in a loopback-only network namespace; the JSON it prints last."""
    _need_link_and_namespace()
    script = PRELUDE + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run(["unshare", "--net", "--", "sh", "-c", NAMESPACE_SETUP, sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert run.returncode == 0, f"the isolated Link script failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_joins_a_session_and_reports_its_tempo_and_beat():
    result = run_isolated("""
        peer = link.Link(140.0)
        peer.enabled = True
        time.sleep(SENIORITY)
        ours = AbletonLink(100.0)
        t0 = time.monotonic()
        joined = wait_for(lambda: ours.peers >= 1, 5.0)
        join_s = time.monotonic() - t0
        tempo_ok = wait_for(lambda: abs(ours.beat_at(time.monotonic())[1] - 140.0) < 0.01, 3.0)
        samples = []
        for i in range(20):
            samples.append(same_instant(ours, peer, ahead=0.25 * (i % 3)))
            time.sleep(0.05)
        name = ours.name
        ours.close()
        print(json.dumps({"joined": joined, "join_s": join_s, "tempo_ok": tempo_ok, "samples": samples,
                          "name": name, "after_close": ours.beat_at(time.monotonic())}))
    """)
    assert result["joined"], "AbletonLink did not find the other peer within 5 s"
    assert result["tempo_ok"], "AbletonLink did not take the session's tempo (140 bpm) within 3 s"
    assert result["name"] == "the Ableton Link session (1 peer)"
    for beat, theirs, bpm in result["samples"]:
        assert bpm == pytest.approx(140.0, abs=0.01)
        phase = (beat - theirs + 2.0) % 4.0 - 2.0  # beat magnitudes are each peer's own; the bar is shared
        assert abs(phase) < 0.02, f"beat {beat:.4f} vs the peer's {theirs:.4f}"
    assert result["after_close"] is None
    worst = max(abs((b - t + 2.0) % 4.0 - 2.0) for b, t, _ in result["samples"])
    print(f"link: joined in {result['join_s']:.2f} s; phase vs the peer at most {worst:.2e} beats")


def test_set_tempo_changes_the_session_tempo():
    result = run_isolated("""
        peer = link.Link(140.0)
        peer.enabled = True
        time.sleep(SENIORITY)
        ours = AbletonLink(100.0)
        joined = wait_for(lambda: ours.peers >= 1 and abs(ours.tempo - 140.0) < 0.01, 5.0)
        t0 = time.monotonic()
        ours.set_tempo(90.0)
        changed = wait_for(lambda: abs(peer.captureAppSessionState().tempo() - 90.0) < 0.01, 3.0)
        took = time.monotonic() - t0
        beat, theirs, bpm = same_instant(ours, peer)
        ours.close()
        print(json.dumps({"joined": joined, "changed": changed, "took": took, "bpm": bpm,
                          "phase": wrapped(beat - theirs)}))
    """)
    assert result["joined"]
    assert result["changed"], "the other peer's tempo did not become 90 bpm within 3 s"
    assert result["bpm"] == pytest.approx(90.0, abs=0.01)
    assert abs(result["phase"]) < 0.02
    print(f"link: the peer took 90 bpm {result['took'] * 1000:.0f} ms after set_tempo")


@pytest.mark.parametrize("offset", [0.3, 1.9])
def test_tempo_follow_locks_the_engine_to_the_session(offset):
    """A real engine (the shipped DCRNN, no port) at 100 bpm; a peer plays 140 with its beat
    ``offset`` beats behind the engine's at performance time 0. TempoFollow must keep the engine
    within MAX_BEND of 140 from its first update, close the phase error at about MAX_BEND beats
    per beat (a small offset within 2 beats), then hold it under 0.05 beats and settle at 140."""
    result = run_isolated(f"""
        from livegen.models.checkpoint import load_model
        from livegen.engine.engine import Engine, EngineSettings, OutputChoice
        from livegen.engine.tempo_follow import TempoFollow

        peer = link.Link(140.0)
        peer.enabled = True
        time.sleep(SENIORITY)
        ours = AbletonLink(100.0)
        assert wait_for(lambda: ours.peers >= 1 and abs(ours.tempo - 140.0) < 0.01, 5.0)
        engine = Engine(load_model("dcrnn"), OutputChoice(), EngineSettings(seed=1, bpm=100.0), end=30.0)
        engine.start()
        # the peer's bar so that its beat is {offset} behind the engine's (0) at performance time 0
        state = peer.captureAppSessionState()
        state.forceBeatAtTime(4.0 - {offset}, ours.link_micros(engine.start_time), 4.0)
        peer.commitAppSessionState(state)
        assert wait_for(lambda: abs(wrapped(ours.beat_at(engine.start_time)[0] + {offset})) < 0.01, 2.0)
        follow = TempoFollow(engine, ours).start()
        trace = []
        while engine.now() < 0:
            time.sleep(0.005)
        while engine.now() < 12 * 60 / 140:  # 12 beats
            t = engine.now()
            error = wrapped(follow.mirror.beat_at(t) - ours.beat_at(engine.start_time + t)[0])
            trace.append((t, error, engine.controls.bpm))
            time.sleep(0.01)
        follow.stop()
        engine.stop()
        ours.close()
        print(json.dumps({{"trace": trace, "locked": follow.locked, "failed": engine.failed}}))
    """, timeout=60)
    from livegen.engine.tempo_follow import TempoFollow

    assert result["locked"] and not result["failed"]
    beats = [(t * 140 / 60, error, bpm) for t, error, bpm in result["trace"]]
    assert abs(beats[0][1] - offset) < 0.1, f"the follower saw a phase error of {beats[0][1]:.3f} at the start"
    for beat, _, bpm in beats:
        assert 140 * (1 - TempoFollow.MAX_BEND) - 0.01 <= bpm <= 140 * (1 + TempoFollow.MAX_BEND) + 0.01
    in_lock = next(i for i in range(len(beats)) if all(abs(e) < 0.05 for _, e, _ in beats[i:]))
    lock_beats = beats[in_lock][0]
    assert lock_beats <= offset / TempoFollow.MAX_BEND + 1.0, f"phase locked only after {lock_beats:.2f} beats"
    if offset <= 0.3:
        assert lock_beats <= 2.0, f"phase locked only after {lock_beats:.2f} beats"
    last = [bpm for beat, _, bpm in beats if beat >= beats[-1][0] - 2.0]
    assert all(abs(bpm - 140) <= 0.7 for bpm in last), f"tempo over the last 2 beats: {last}"
    tail = [abs(e) for beat, e, _ in beats if beat >= lock_beats + 1.0]
    print(f"link: offset {offset} beats locked (< 0.05) after {lock_beats:.2f} beats; then phase error "
          f"max {max(tail):.4f}, mean {sum(tail) / len(tail):.4f} beats; "
          f"last 2 beats {min(last):.2f}..{max(last):.2f} bpm")


def test_a_missing_package_or_a_bad_tempo_is_a_user_error(monkeypatch):
    from livegen.errors import UserError
    from livegen.midi.link import AbletonLink

    with pytest.raises(UserError, match="outside"):
        AbletonLink(1000.0)  # refused before Link is even imported
    monkeypatch.setitem(sys.modules, "link", None)  # as if LinkPython-extern were not installed
    with pytest.raises(UserError, match=r"^Ableton Link needs LinkPython-extern: pip install 'livegen\[link\]'$"):
        AbletonLink(120.0)
