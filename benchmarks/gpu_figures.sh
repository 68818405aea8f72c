#!/usr/bin/env bash
# The GPU figures of the score and cost benchmarks in one short run, for a lent GPU machine whose
# image already holds torch/torchvision/timm/typer/rich but cannot reach a package index: zenfx is
# laid out on PYTHONPATH exactly as pyproject.toml installs it (cli/ -> zenfx.cli, zoo/ -> zenfx.zoo).
# Every step has its own time limit and logs under $OUT, so one failing step never hides the rest.
#
#     OUT=/tmp/gpu bash benchmarks/gpu_figures.sh
set -u
OUT=${OUT:-/tmp/zenfx-gpu}
. "$(dirname "$0")/gpu_lib.sh"

step env 45 python3 -c "import torch, torchvision, timm, zenfx; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__, 'zenfx', zenfx.__version__); print(torch.cuda.get_device_name(0))"
step score_fp32 50 python3 -P -m zenfx.cli score torchvision.models.resnet50 --device cuda --json
step score_fp16 40 python3 -P -m zenfx.cli score torchvision.models.resnet50 --device cuda --dtype float16 --proxy zen,phi
step bench_score_fp32 110 python3 benchmarks/bench_score.py --device cuda --dtype float32 --runs 10 --repeat 8 --json "$OUT/bench_score_fp32.json"
step bench_score_fp16 100 python3 benchmarks/bench_score.py --device cuda --dtype float16 --runs 10 --repeat 8 --json "$OUT/bench_score_fp16.json"
step report 40 python3 -P -m zenfx.cli report torchvision.models.resnet50 --latency --device cuda --batch-size 16
step report_fp16 30 python3 -P -m zenfx.cli report torchvision.models.resnet50 --latency --device cuda --dtype float16 --batch-size 16
step predictor 170 python3 benchmarks/bench_latency_predictor.py --device cuda --fresh --resolution 224 \
    --op-min-run-time 0.01 --min-run-time 0.2 --json-out "$OUT/predictor.json"
rm -rf "$OUT/cache"
