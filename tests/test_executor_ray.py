"""The ray backend against a real local Ray: the executor contract, identical results to the local
backend (audit rows, benchmark scores), a killed actor's task retried with the same result, GPUs
per worker, and the one-line error when Ray is not installed.

Ray takes ~10 s to start on the 2-core CI machine: one instance serves the whole module (and every
test that starts it is slow-marked, so the fast suite never pays it); the blocked-import test needs
no Ray at all.
"""

from __future__ import annotations

import sys

import pytest

from zenfx.errors import UsageError
from zenfx.executor import make_executor
from zenfx.executor.probe import behave, echo, init_state

NB201_CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
               "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
               "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
               "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|",
               "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
               "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"]
AUDIT_MODELS = ["torchvision:resnet18", "torchvision:alexnet", "torchvision:mobilenet_v2", "torchvision:densenet121",
                "torchvision:squeezenet1_0"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray (2 CPUs, 2 declared GPUs for the num_gpus test) for the module."""
    ray = pytest.importorskip("ray")
    from zenfx.executor.ray_backend import quiet_driver

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    quiet_driver()
    yield ray
    ray.shutdown()


def _bench_tasks():
    from zenfx.bench import Arch, BenchConfig

    cfg = BenchConfig("nb201", "cifar10", sample=len(NB201_CELLS), seed=3, proxies=("params", "synflow", "snip"),
                      batch_size=4, resolution=16)
    return cfg, [(Arch(i, a, 0.0), cfg.proxies) for i, a in enumerate(NB201_CELLS)]


def _scores(outcomes):
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return {o.index: o.value["scores"] for o in outcomes}


def test_missing_ray_is_a_one_line_usage_error(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match=r"pip install zenfx\[ray\]") as exc:
        make_executor("ray", 2)
    assert exc.value.exit_code == 2 and "\n" not in str(exc.value)
    code, _, err = cli("audit", "torchvision:resnet18", "--backend", "ray")
    assert code == 2 and "pip install zenfx[ray]" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "nasbench201.csv").write_text("index,arch_str,cifar10_test\n" + "".join(
        f"{i},{a},{90 + i}\n" for i, a in enumerate(NB201_CELLS)))
    code, _, err = cli("bench", "proxies", "--backend", "ray", "--truth", str(tmp_path), "--sample", "2",
                       "--proxies", "params")
    assert code == 2 and "pip install zenfx[ray]" in err


def test_unreachable_cluster_is_a_quick_one_line_error(cli):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already up in this process")
    with pytest.raises(UsageError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:1"):
        make_executor("ray", 1, ray_address="127.0.0.1:1")  # Ray alone would retry for minutes
    code, _, err = cli("audit", "torchvision:resnet18", "--backend", "ray", "--ray-address", "127.0.0.1:1")
    assert code == 2 and "cannot reach" in err and not ray.is_initialized()


@pytest.mark.slow
def test_ray_backend_contract(ray_cluster, tmp_path):
    with make_executor("ray", 2, init=init_state, init_arg="R") as ex:
        assert ex.backend == "ray" and ex.workers == 2
        outs = list(ex.map(echo, list(range(6))))
        assert sorted(o.index for o in outs) == list(range(6)) and {o.value["arg"] for o in outs} == {"R"}
        pids = {o.value["pid"] for o in outs}
        again = list(ex.map(echo, [0, 1]))  # long-lived actors: the same processes, counters kept
        assert {o.value["pid"] for o in again} <= pids and max(o.value["calls"] for o in again) >= 3
        tasks = [("ok", 1), ("raise", "boom"), ("exit", 3), ("die_once", str(tmp_path / "flag"), 7),
                 ("sleep", 60, 0)]
        got = {o.index: o for o in ex.map(behave, tasks, timeout=8)}
        assert got[0].value == 1 and got[1].error == "ValueError: boom"
        assert got[2].status == "error" and got[2].attempts == 2 and "died" in got[2].error
        assert got[3].value == 7 and got[3].attempts == 2  # retried on another actor
        assert got[4].status == "timeout" and got[4].seconds >= 8
        # the pool is whole again; one torch thread per actor (no timeout: a fresh actor imports torch)
        assert [o.value for o in ex.run(behave, [("ok", "a"), ("threads",)])] == ["a", 1]


@pytest.mark.slow
def test_ray_scores_equal_local_and_survive_a_killed_actor(ray_cluster):
    from zenfx.bench import score_task, worker_state

    cfg, tasks = _bench_tasks()
    with make_executor("local", 2, init=worker_state, init_arg=cfg) as ex:
        local = _scores(ex.run(score_task, tasks))
    with make_executor("ray", 2, init=worker_state, init_arg=cfg) as ex:
        assert _scores(ex.run(score_task, tasks)) == local  # bit-identical: same seeds, one thread each
        outcomes, killed = [], False
        for o in ex.map(score_task, tasks):
            outcomes.append(o)
            if not killed:  # kill a busy actor mid-run, as a lost node would
                busy = next(s for s in ex._slots if s.job is not None)
                ray_cluster.kill(busy.handle, no_restart=True)
                killed = True
        assert killed and any(o.attempts == 2 for o in outcomes)
        assert _scores(outcomes) == local


@pytest.mark.slow
def test_audit_rows_on_ray_equal_local(ray_cluster, tmp_path):
    from zenfx.audit import audit_models

    def rows(backend):
        s = audit_models(AUDIT_MODELS, jobs=2, backend=backend, csv_path=str(tmp_path / f"{backend}.csv"))
        return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in s.rows), key=lambda r: r["name"])

    local, ray_rows = rows("local"), rows("ray")
    assert ray_rows == local and len(local) == len(AUDIT_MODELS)
    assert {r["verdict"] for r in local} >= {"convertible", "not_convertible"}
    strip = [",".join(line.split(",")[:-2]) for line in (tmp_path / "ray.csv").read_text().splitlines()]
    strip_local = [",".join(line.split(",")[:-2]) for line in (tmp_path / "local.csv").read_text().splitlines()]
    assert sorted(strip) == sorted(strip_local)  # the same CSV up to row order and timings


@pytest.mark.slow
def test_audit_cli_on_ray_json_stays_clean(ray_cluster, cli):
    import json

    code, out, _ = cli("audit", "torchvision:resnet18", "torchvision:alexnet", "--backend", "ray", "--jobs", "2",
                       "--json")
    assert code == 0
    assert json.loads(out)["summary"]["by_verdict"]["convertible"] == 2


@pytest.mark.slow
def test_one_gpu_per_worker(ray_cluster):
    with make_executor("ray", 2, num_gpus_per_worker=1) as ex:
        ids = [o.value for o in ex.run(behave, [("gpu_ids",), ("gpu_ids",), ("gpu_ids",), ("gpu_ids",)])]
        assert all(len(i) == 1 for i in ids)  # each worker sees exactly one GPU
        assert ray_cluster.available_resources().get("GPU", 0) == 0  # two workers hold the two GPUs
    with make_executor("ray", 3, num_gpus_per_worker=1) as ex:  # a third actor would wait for ever
        assert (ex.requested, ex.workers) == (3, 2)
    with pytest.raises(UsageError, match="has 2 GPUs"):
        make_executor("ray", 1, num_gpus_per_worker=4)


@pytest.mark.slow
def test_search_on_cuda_gives_each_ray_worker_a_gpu_and_checks_it_there(ray_cluster, tmp_path):
    """The module's Ray declares 2 GPUs this machine does not have. `--device cuda` on Ray: the
    driver does not check CUDA itself (the GPUs are the workers'), 2 of the 3 workers asked for
    start (one GPU each), and the workers' own device check stops the run with one line."""
    import torch

    from zenfx.search import search

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the workers' check would pass")
    said: list[str] = []
    with pytest.raises(UsageError, match=r"seed cannot be scored: worker init failed: .*CUDA is not available"):
        search("zoo:cifar_resnet_basic", out=tmp_path / "g", backend="ray", workers=3, device="cuda", candidates=4,
               resolution=32, batch_size=8, population=8, round_size=4, num_classes=10, plots=False,
               notify=said.append)
    assert any("2 of 3 workers started" in m for m in said), said


def _actor_pids(busy_only: bool) -> list[int]:
    """Processes Ray titled after our actor class (``ray::_Actor.run`` while a task runs)."""
    import os

    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            title = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::_Actor" + (".run" if busy_only else "")):
            pids.append(int(p))
    return pids


@pytest.mark.slow
def test_search_history_identical_on_local_and_ray_even_with_an_actor_killed(ray_cluster, tmp_path):
    import os
    import signal
    import threading

    from zenfx.search import search

    common = dict(resolution=32, batch_size=8, population=8, round_size=4, budget_params="200k", seed=3,
                  num_classes=10, candidates=12, plots=False, export=False, workers=2)
    search("zoo:cifar_resnet_basic", out=tmp_path / "local", backend="local", **common)
    search("zoo:cifar_resnet_basic", out=tmp_path / "ray", backend="ray", **common)
    ref = (tmp_path / "local" / "history.jsonl").read_bytes()
    assert (tmp_path / "ray" / "history.jsonl").read_bytes() == ref

    killed: list[int] = []
    stop = threading.Event()

    def kill_one_busy_actor() -> None:  # SIGKILL, as a crash or a lost node would, mid-task
        while not stop.is_set() and not killed:
            for pid in _actor_pids(busy_only=True):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            stop.wait(0.02)

    t = threading.Thread(target=kill_one_busy_actor, daemon=True)
    t.start()
    try:
        search("zoo:cifar_resnet_basic", out=tmp_path / "killed", backend="ray", **common)
    finally:
        stop.set()
        t.join(5)
    assert killed
    assert (tmp_path / "killed" / "history.jsonl").read_bytes() == ref


def test_a_refused_auth_token_is_told_apart_from_an_unreachable_cluster():
    """Ray 2.60's `ray start` requires a token; a driver without it gets a ConnectionError whose
    cause chain holds an AuthenticationError (seen on a real head node, docs/cluster.md)."""
    from zenfx.executor.ray_backend import _auth_refused

    class AuthenticationError(Exception):
        pass

    try:
        try:
            try:
                raise AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing")
            except AuthenticationError as inner:
                raise RuntimeError("Failed to connect to GCS") from inner
        except RuntimeError as mid:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from mid
    except ConnectionError as exc:
        assert _auth_refused(exc)
    assert not _auth_refused(ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379"))


@pytest.mark.slow
def test_a_ray_worker_has_the_memory_cap_on_top_of_rays_own_mappings(ray_cluster):
    """An actor maps Ray's object store (GiBs of address space) before any task: its cap counts on
    top of that, so 1 GiB lets a 0.25 GiB task run and fails a 2 GiB one with MemoryError."""
    with make_executor("ray", 1, memory_limit_gb=1.0) as ex:
        outs = ex.run(behave, [("alloc", 2.0), ("alloc", 0.25), ("ok", 7)])
    assert outs[0].status == "error" and outs[0].error.startswith("MemoryError")
    assert outs[1].ok and outs[1].value == 2**28 and outs[2].value == 7



@pytest.mark.slow
def test_bench_on_cuda_checks_the_device_on_each_ray_worker(ray_cluster, tmp_path):
    """`bench proxies --device cuda --backend ray`: a GPU per actor (the module's Ray declares two
    this machine lacks), the device checked on the worker, one line when it is not there."""
    from pathlib import Path

    import torch

    from zenfx.bench import BenchConfig, run_bench

    truth = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if torch.cuda.is_available() or not (truth / "nasbench201.csv").is_file():
        pytest.skip("needs a machine without a GPU and the NB201 ground truth")
    cfg = BenchConfig("nb201", "cifar10", sample=2, proxies=("params",), batch_size=4, device="cuda")
    with pytest.raises(UsageError, match=r"workers cannot score: worker init failed: .*CUDA is not available"):
        run_bench(cfg, truth, out=tmp_path / "b", jobs=2, backend="ray")


@pytest.mark.slow
def test_cli_search_on_a_ray_it_starts_itself(zenfx_exe, tmp_path):
    """`zenfx search --backend ray` without an address: the command starts a private Ray before its
    own set-up (workers pre-importing torch, zenfx, torchvision), runs, stops it, and gives the
    local backend's history; --json stays one clean document on stdout."""
    import json
    import subprocess

    common = ["search", "zoo:cifar_resnet_basic", "-r", "32", "-b", "8", "-P", "8", "--round", "4",
              "--budget-params", "200k", "--seed", "3", "--num-classes", "10", "--candidates", "8", "--workers", "2",
              "--no-plots", "--json"]
    runs = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        proc = subprocess.run([zenfx_exe, *common, "--backend", backend, "--out", str(out)], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["counters"]["proposed"] == 8
        runs[backend] = (out / "history.jsonl").read_bytes()
    assert runs["ray"] == runs["local"]


def _user_backbone(folder):
    """A copy of examples/my_backbone.py: a user's FILE seed (a zoo seed would hide identity bugs)."""
    import shutil
    from pathlib import Path

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "my_backbone.py"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "my_backbone.py", path)
    return path


FILE_SEARCH = dict(resolution=32, batch_size=8, population=8, round_size=4, budget_params="150k", seed=3,
                   num_classes=10, candidates=12, plots=False, export=False, workers=2)


@pytest.mark.slow
def test_file_seed_search_history_identical_on_local_and_ray(ray_cluster, tmp_path):
    from zenfx.search import search

    spec = f"{_user_backbone(tmp_path / 'nets')}:build"
    local = search(spec, out=tmp_path / "local", backend="local", **FILE_SEARCH)
    ray_res = search(spec, out=tmp_path / "ray", backend="ray", **FILE_SEARCH)
    assert local.failures["failed"] == 0 and ray_res.failures["failed"] == 0
    assert (tmp_path / "ray" / "history.jsonl").read_bytes() == (tmp_path / "local" / "history.jsonl").read_bytes()


@pytest.mark.slow
def test_ray_workers_that_cannot_read_the_seed_file_still_score_every_candidate(ray_cluster, tmp_path):
    """The driver read the seed from a temporary folder that is gone before the workers start: the
    file's source travels with the run's settings, so every candidate is still scored."""
    import shutil

    from zenfx.genome import Genome, build
    from zenfx.loading import parse_input_size
    from zenfx.search import search

    spec = f"{_user_backbone(tmp_path / 'gone')}:build"
    genome = Genome(spec, input_size=parse_input_size(None, 32))
    build(genome, device="meta")  # the driver has read the file ...
    shutil.rmtree(tmp_path / "gone")  # ... which is gone before any worker starts
    res = search(genome, out=tmp_path / "ray", backend="ray", **{k: v for k, v in FILE_SEARCH.items()
                                                                 if k != "resolution"})
    assert res.failures["failed"] == 0 and res.counters["scored"] + res.counters["rejected"] == 12
    same = f"{_user_backbone(tmp_path / 'copy')}:build"  # the same content elsewhere, searched locally
    ref = search(same, out=tmp_path / "local", backend="local", **FILE_SEARCH)
    assert res.best_score == ref.best_score


@pytest.mark.slow
def test_a_module_path_seed_missing_on_the_workers_is_one_clear_error(ray_cluster, tmp_path, monkeypatch):
    """A package importable only in the driver (on its sys.path, not installed on the workers): the run
    stops at worker start with one line naming the import, never a run of failed candidates."""
    import shutil

    from zenfx.search import search

    shutil.copy(_user_backbone(tmp_path / "src"), tmp_path / "src" / "zenfx_driver_only_nets.py")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    with pytest.raises(UsageError, match="cannot be built on this worker.*zenfx_driver_only_nets"):
        search("zenfx_driver_only_nets.build", out=tmp_path / "ray", backend="ray", **FILE_SEARCH)
