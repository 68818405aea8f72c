"""The ray backend on a two-node cluster on this machine (``ray.cluster_utils.Cluster``): the driver
joins it by address, actors spread over both nodes, results equal the local backend's, and a node
lost mid-run has its task retried on the other node with the same result. Slow: starting two
raylets costs ~20 s on the 2-core CI machine."""

from __future__ import annotations

import pytest

from zenfx.executor import make_executor

pytestmark = pytest.mark.slow

CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
         "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
         "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"]


def _scores(outcomes):
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return {o.index: o.value["scores"] for o in outcomes}


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # another module's instance: this test needs its own cluster
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c, worker
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def test_two_nodes_same_scores_and_a_lost_node(cluster):
    import ray

    from zenfx.bench import Arch, BenchConfig, score_task, worker_state

    c, worker = cluster
    cfg = BenchConfig("nb201", "cifar10", sample=4, seed=5, proxies=("params", "synflow", "snip"), batch_size=4,
                      resolution=16)
    tasks = [(Arch(i, a, 0.0), cfg.proxies) for i, a in enumerate(CELLS)]
    with make_executor("local", 2, init=worker_state, init_arg=cfg) as ex:
        local = _scores(ex.run(score_task, tasks))
    ex = make_executor("ray", 2, ray_address=c.address, init=worker_state, init_arg=cfg)
    try:
        assert ray.is_initialized() and len([n for n in ray.nodes() if n["Alive"]]) == 2
        assert _scores(ex.run(score_task, tasks)) == local
        outcomes, removed = [], False
        for o in ex.map(score_task, tasks):
            outcomes.append(o)
            if not removed:
                c.remove_node(worker)  # the worker node is lost with whatever it was running
                removed = True
        assert _scores(outcomes) == local
    finally:
        ex.close()
    assert not ray.is_initialized()  # the executor joined the cluster, so it also leaves it
