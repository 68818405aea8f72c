"""How close ``zenfx score`` gets to the method's floor, measured in one run.

For each model, resolution and batch size it prints:

* ``floor``: median wall time of the two bare forward passes Zen needs (f(x), then f(x+γε)) on
  the very graph zen scores, same device, dtype, train-mode BN, Gaussian weights, no autograd;
* ``zen/repeat``: median wall time per repeat of ``zenfx.score(prepared, "zen")`` (weight init,
  BN reset, input draws, both passes, reduction and the host read-back included);
* ``ratio``: zen/repeat divided by floor, medians (goal: at most 1.10); ``min/min``: the same
  with the fastest run of each, the steadier estimate on a machine shared with other work;
* ``amort.``: a ``--repeat``-repeat call's time per repeat divided by floor (medians);
* ``mat s`` and ``fresh``: materialising the graph on the device (deepcopy, recompile, allocation),
  which the first score call on a ``Prepared`` pays once (later calls reuse the copy), and
  (mat + zen/repeat) / floor, a one-repeat score of a candidate never scored before;
* ``init s`` / ``draw s``: what zen does besides the passes, timed alone: the Gaussian weight
  init and drawing x and x+γε;
* ``prep``: load, trace and VCNN conversion time of ``zenfx.scoring.prepare`` (the second call
  in the process; the first also pays torch's lazy imports, printed as ``cold t+c``) and
  ``(trace+convert)/score``, where score is the wall time of a default ``zenfx score`` call
  (``--repeat`` times the per-repeat time) and of a single repeat (goal: at most 0.10).

    ./dev python benchmarks/bench_score.py                          # resnet18/50, 224, batch 16 and 64, CPU
    ./dev python benchmarks/bench_score.py --device cuda --dtype float16
    ./dev python benchmarks/bench_score.py --models torchvision:resnet18 --batch 16 --runs 3 --json out.json

The Zen-NAS paper reports 0.012 s (ResNet-18) and 0.037 s (ResNet-50) per score on a V100 for
batch 16 at 224.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time

import torch


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_one(model: str, resolution: int, batch: int, device: str, dtype: str, runs: int, repeat: int) -> dict:
    import zenfx
    from zenfx.devices import parse_device, parse_dtype, require_runnable
    from zenfx.proxies.zen import gaussian_init_
    from zenfx.scoring import materialise as materialise_copy
    from zenfx.scoring import prepare

    dev = parse_device(device)
    dt = parse_dtype(dtype)
    require_runnable(dev, dt)
    t = time.perf_counter()
    cold = prepare(model, "zen", resolution=resolution)  # first in the process: lazy torch imports
    cold_wall = time.perf_counter() - t
    t = time.perf_counter()
    prep = prepare(model, "zen", resolution=resolution)  # what a search loop pays per candidate
    prep_wall = time.perf_counter() - t
    gm = prep.graph("vcnn")

    # The floor: the same graph, materialised the same way, two bare forwards.
    floor_net = copy.deepcopy(gm)
    floor_net = floor_net.to_empty(device=dev) if prep.on_meta else floor_net.to(dev)
    floor_net = floor_net.to(dtype=dt)
    gaussian_init_(floor_net, torch.Generator(device=dev).manual_seed(0))
    for m in floor_net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    floor_net.train()
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.randn((batch, 3, resolution, resolution), generator=g, device=dev).to(dt)
    x2 = (x.float() + 0.01 * torch.randn(x.shape, generator=g, device=dev)).to(dt)

    def floor() -> float:
        _sync(dev)
        t0 = time.perf_counter()
        with torch.no_grad():
            floor_net(x)
            floor_net(x2)
        _sync(dev)
        return time.perf_counter() - t0

    def zen(n: int) -> float:
        res = zenfx.score(prep, "zen", batch_size=batch, repeat=n, device=dev, dtype=dt, seed=0)
        return res["zen"].seconds

    def parts() -> tuple[float, float]:
        """The two things zen does besides the passes: weight init, and drawing x, x+γε."""
        from zenfx.proxies.base import ProxyContext
        from zenfx.proxies.zen import zen_inputs

        ctx = ProxyContext(input_size=(3, resolution, resolution), batch_size=batch, device=dev, dtype=dt)
        gen = ctx.generator(0, dev)
        _sync(dev)
        t0 = time.perf_counter()
        gaussian_init_(floor_net, gen)
        _sync(dev)
        t1 = time.perf_counter()
        zen_inputs(ctx, gen)
        _sync(dev)
        return t1 - t0, time.perf_counter() - t1

    floor()  # warm-up (allocator, kernels, first-touch)
    zen(1)
    def materialise() -> float:
        _sync(dev)
        t0 = time.perf_counter()
        materialise_copy(gm, prep.on_meta, dev, dt)
        _sync(dev)
        return time.perf_counter() - t0

    floors, zens, inits, draws, amort, mats = [], [], [], [], [], []
    for k in range(runs):  # interleaved, order alternating, so that outside load hits both alike
        if k % 2:
            zens.append(zen(1))
            floors.append(floor())
        else:
            floors.append(floor())
            zens.append(zen(1))
        amort.append(zen(repeat) / repeat)
        mats.append(materialise())
        i, d = parts()
        inits.append(i)
        draws.append(d)
    f, z = statistics.median(floors), statistics.median(zens)
    full = repeat * z  # a default call: --repeat repeats (the one-off materialisation is in z already)
    tc = prep.timings.get("trace", 0.0) + prep.timings.get("convert", 0.0)
    return {
        "model": model, "resolution": resolution, "batch": batch, "device": str(dev),
        "dtype": str(dt).replace("torch.", ""),
        "threads": torch.get_num_threads(), "runs": runs,
        "floor_s": f, "zen_per_repeat_s": z, "ratio": z / f, "ratio_of_minima": min(zens) / min(floors),
        "zen_amortised_per_repeat_s": statistics.median(amort), "ratio_amortised": statistics.median(amort) / f,
        "materialise_s": statistics.median(mats), "ratio_fresh": (statistics.median(mats) + z) / f,
        "init_s": statistics.median(inits), "inputs_s": statistics.median(draws),
        "load_avg": os.getloadavg()[0],
        "floor_all": floors, "zen_all": zens,
        "load_s": prep.timings.get("load", 0.0), "trace_s": prep.timings.get("trace", 0.0),
        "convert_s": prep.timings.get("convert", 0.0), "prepare_wall_s": prep_wall, "on_meta": prep.on_meta,
        "cold": dict(cold.timings), "cold_prepare_wall_s": cold_wall,
        "score_default_s": full, "default_repeat": repeat,
        "prep_over_score_default": tc / full, "prep_over_score_1": tc / z,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="torchvision.models.resnet18,torchvision.models.resnet50")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--batch", default="16,64", help="comma-separated batch sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--repeat", type=int, default=4, help="repeats of the default score call")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (printed)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    hdr = (f"{'model':<10} {'res':>4} {'batch':>5} {'floor s':>9} {'zen s/rep':>9} {'ratio':>6} {'min/min':>7} "
           f"{'amort.':>6} {'mat s':>7} {'fresh':>6} "
           f"{'init s':>7} {'draw s':>7} "
           f"{'load s':>7} {'trace s':>7} {'conv s':>7} {'(t+c)/score':>11} {'(t+c)/1rep':>10} {'cold t+c':>8}")
    print(hdr)
    rows = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        for batch in [int(b) for b in args.batch.split(",")]:
            r = bench_one(model, args.resolution, batch, args.device, args.dtype, args.runs, args.repeat)
            rows.append(r)
            short = model.rsplit(".", 1)[-1].split(":")[-1]
            print(f"{short:<10} {r['resolution']:>4} {r['batch']:>5} {r['floor_s']:>9.4f} "
                  f"{r['zen_per_repeat_s']:>9.4f} {r['ratio']:>6.3f} {r['ratio_of_minima']:>7.3f} "
                  f"{r['ratio_amortised']:>6.3f} {r['materialise_s']:>7.4f} {r['ratio_fresh']:>6.3f} "
                  f"{r['init_s']:>7.4f} {r['inputs_s']:>7.4f} {r['load_s']:>7.3f} {r['trace_s']:>7.3f} "
                  f"{r['convert_s']:>7.3f} "
                  f"{r['prep_over_score_default']:>11.3f} {r['prep_over_score_1']:>10.3f} "
                  f"{r['cold'].get('trace', 0.0) + r['cold'].get('convert', 0.0):>8.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    from zenfx.errors import ZenfxError

    try:
        sys.exit(main())
    except ZenfxError as exc:  # a bad --models entry and the like: one line, as the CLI says it
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
