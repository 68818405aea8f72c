"""The executor's contract on the inline and local backends: completion-order outcomes, warm
per-worker state, errors/timeouts/dead workers as outcomes, Ctrl-C without tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from zenfx.errors import UsageError
from zenfx.executor import TaskOutcome, make_executor
from zenfx.executor.probe import behave, echo, failing_init, init_state, square


@pytest.fixture(scope="module")
def pool():
    """One warm two-worker pool for the module: warmth across map calls is part of the contract."""
    with make_executor("local", 2, init=init_state, init_arg="A") as ex:
        yield ex


def test_outcomes_cover_every_task_with_state_from_init(pool):
    outs = list(pool.map(echo, list(range(8))))
    assert sorted(o.index for o in outs) == list(range(8))
    assert all(isinstance(o, TaskOutcome) and o.status == "ok" and o.error is None for o in outs)
    assert all(o.value["task"] == o.index and o.value["arg"] == "A" for o in outs)
    assert os.getpid() not in {o.value["pid"] for o in outs}
    # warm: the same processes serve the next map, and their per-worker state (a call counter) carried
    # on counting: each worker's counter values over both maps are exactly 1..k
    again = list(pool.map(echo, list(range(4))))
    assert {o.value["pid"] for o in outs + again} <= {w.proc.pid for w in pool._pool}
    for pid in {o.value["pid"] for o in outs + again}:
        calls = sorted(o.value["calls"] for o in outs + again if o.value["pid"] == pid)
        assert calls == list(range(1, len(calls) + 1))


def test_completion_order_not_submission_order(pool):
    outs = list(pool.map(behave, [("sleep", 0.8, "slow"), ("ok", "fast1"), ("ok", "fast2")]))
    assert [o.index for o in outs][-1] == 0  # the slow task finishes last
    assert {o.value for o in outs} == {"slow", "fast1", "fast2"}


def test_failures_are_outcomes_and_the_rest_completes(pool, tmp_path):
    tasks = [("ok", 1), ("raise", "boom\nsecond line"), ("exit", 3), ("die_once", str(tmp_path / "flag"), 7),
             ("unpicklable",), ("ok", 2)]
    outs = {o.index: o for o in pool.map(behave, tasks)}
    assert outs[0].value == 1 and outs[5].value == 2
    assert outs[1].status == "error" and outs[1].error == "ValueError: boom"  # one line
    assert outs[2].status == "error" and "exit code 3" in outs[2].error and outs[2].attempts == 2  # retried once
    assert outs[3].status == "ok" and outs[3].value == 7 and outs[3].attempts == 2  # retry succeeded
    assert outs[4].status == "error" and "could not be sent back" in outs[4].error
    assert [o.value for o in pool.run(square, [3, 4])] == [9, 16]  # the pool is whole again


def test_timeout_recorded_and_worker_replaced(pool):
    t0 = time.perf_counter()
    outs = {o.index: o for o in pool.map(behave, [("sleep", 30, 0), ("ok", 1), ("ok", 2)], timeout=1.0)}
    assert time.perf_counter() - t0 < 10
    assert outs[0].status == "timeout" and "1 s" in outs[0].error and outs[0].seconds >= 1.0
    assert outs[1].value == 1 and outs[2].value == 2
    assert [o.value for o in pool.run(square, [5, 6, 7])] == [25, 36, 49]


def test_stopping_early_leaves_no_stale_results(pool):
    for _o in pool.map(behave, [("ok", "first"), ("sleep", 0.5, "stale"), ("sleep", 0.5, "stale")]):
        break
    assert [o.value for o in pool.run(behave, [("ok", "a"), ("ok", "b")])] == ["a", "b"]


def test_one_torch_thread_per_worker_by_default():
    with make_executor("local", 1) as ex:
        assert ex.run(behave, [("threads",)])[0].value == 1
    with make_executor("local", 1, threads_per_worker=2) as ex:
        assert ex.run(behave, [("threads",)])[0].value == 2


def test_init_failure_is_every_tasks_error_not_a_hang():
    with make_executor("local", 1, init=failing_init, init_arg="no data") as ex:
        outs = ex.run(square, [1, 2])
    assert [o.status for o in outs] == ["error", "error"]
    assert outs[0].error == "worker init failed: RuntimeError: cannot start: no data"


def test_inline_backend_same_contract(tmp_path):
    ex = make_executor("local", 0, init=init_state, init_arg="B")
    assert ex.backend == "inline"
    outs = ex.run(behave, [("ok", 1), ("raise", "bad")]) + ex.run(echo, ["t"])
    assert outs[0].value == 1 and outs[1].error == "ValueError: bad"
    assert outs[2].value["pid"] == os.getpid() and outs[2].value["arg"] == "B"
    assert make_executor("inline", init=failing_init).run(square, [1])[0].error.startswith("worker init failed")


@pytest.mark.parametrize("kwargs", [dict(backend="dask"), dict(workers=-1), dict(threads_per_worker=0)])
def test_bad_arguments_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        make_executor(**kwargs)


def test_ctrl_c_stops_workers_without_tracebacks(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys
        from zenfx.executor import make_executor
        from zenfx.executor.probe import behave, echo
        ex = make_executor("local", 2)
        pids = {o.value["pid"] for o in ex.map(echo, [0, 1, 2, 3])}
        print(" ".join(map(str, sorted(pids))), flush=True)
        try:
            for o in ex.map(behave, [("sleep", 60, i) for i in range(4)]):
                pass
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
    """))
    # SIGINT at its default in the child, as a terminal gives it (a suite run under nohup inherits it ignored)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert pids
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group gets SIGINT
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    time.sleep(0.2)
    for pid in pids:  # the workers are gone (reaped by the driver, not zombies left running)
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]


def _vm_gib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmSize:")) / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_task_over_the_memory_cap_fails_alone_and_the_worker_goes_on():
    """The audit's guard on a shared machine: MemoryError in the task's own outcome, no OOM killer."""
    cap = _vm_gib() + 1.0  # a forked worker maps what this process maps; 1 GiB more is the room
    with make_executor("local", 1, memory_limit_gb=cap) as ex:
        outs = ex.run(behave, [("alloc", 2.0), ("alloc", 0.25), ("ok", 7)])
    assert outs[0].status == "error" and outs[0].error.startswith("MemoryError")
    assert outs[1].ok and outs[1].value == 2**28 and outs[2].value == 7
