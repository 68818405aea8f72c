#!/usr/bin/env bash
# The GPU figures of the score and cost benchmarks in one short run, for a lent GPU machine whose
# image already holds torch/torchvision/timm/typer/rich but cannot reach a package index: zenfx is
# laid out on PYTHONPATH exactly as pyproject.toml installs it (cli/ -> zenfx.cli, zoo/ -> zenfx.zoo).
# Every step has its own time limit and logs under $OUT, so one failing step never hides the rest.
#
#     OUT=/tmp/gpu bash benchmarks/gpu_figures.sh
set -u
OUT=${OUT:-/tmp/zenfx-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
SITE=$(mktemp -d)
cp -r zenfx "$SITE/zenfx" && cp -r cli "$SITE/zenfx/cli" && cp -r zoo "$SITE/zenfx/zoo"
# python3 -P: the checkout's own zenfx/ (without cli/, zoo/) must not shadow the laid-out one
export PYTHONPATH="$SITE"
export ZENFX_CACHE_DIR="$OUT/cache"

step() {  # step NAME SECONDS CMD...: run, log to $OUT/NAME.log, say how it ended
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "--- $name: rc $rc, $((SECONDS - t0)) s"
    tail -n 40 "$OUT/$name.log"
}

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
