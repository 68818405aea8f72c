#!/usr/bin/env bash
# The search on a GPU, measured in one run of under 8 minutes (issue 21, item 5), for a lent GPU
# machine whose image holds torch/torchvision/timm/typer/rich but cannot reach a package index: zenfx
# is laid out on PYTHONPATH as pyproject.toml installs it (cli/ -> zenfx.cli, zoo/ -> zenfx.zoo), as
# benchmarks/gpu_figures.sh does. Each step has its own time limit and log under $OUT.
#
#     OUT=/tmp/gpu-search bash benchmarks/gpu_search.sh          # MINUTES=2 by default per search
#
# 1. the CIFAR-1M search of docs/search.md (one-block Bottleneck seed, params <= 1M, depth <= 98,
#    batch 64, P=512) with --device cuda for $MINUTES minutes, 2 worker processes on the one GPU;
# 2. the same for an ImageNet seed at 224 (torchvision efficientnet_b0, MACs <= 400M, batch 16);
# 3. for each: candidates per second, the proxy's share of the workers' time, best vs seed
#    (benchmarks/search_summary.py), and the score-vs-two-forwards ratio of the run's best network
#    (benchmarks/bench_score.py: zen per repeat / two bare forwards, goal <= 1.10).
# Budget: 2 x ($MINUTES min + ~40 s start and seed) + 2 x ~30 s ratio runs: ~6.5 min with MINUTES=2.
# Nothing on the CPU path depends on this script.
set -u
OUT=${OUT:-/tmp/zenfx-gpu-search}
MINUTES=${MINUTES:-2}
STEP_TAIL=25
LIMIT=$((MINUTES * 60 + 60))
. "$(dirname "$0")/gpu_lib.sh"

step env 45 python3 -c "import torch, torchvision, timm, zenfx; print('torch', torch.__version__, 'zenfx', zenfx.__version__, torch.cuda.get_device_name(0))"
step cifar1m "$LIMIT" python3 -P -m zenfx.cli search zoo:cifar_resnet_bottleneck -r 32 --budget-params 1M \
    --max-depth 98 -b 64 -P 512 --candidates 0 --time-limit "${MINUTES}m" --workers 2 --device cuda --seed 0 \
    --no-plots --out "$OUT/cifar1m"
step cifar1m_summary 30 python3 benchmarks/search_summary.py "$OUT/cifar1m"
step cifar1m_ratio 60 python3 benchmarks/bench_score.py --models "$OUT/cifar1m/best.json" --resolution 32 \
    --batch 64 --device cuda --runs 10 --repeat 8 --json "$OUT/cifar1m_ratio.json"
step imagenet "$LIMIT" python3 -P -m zenfx.cli search torchvision.models.efficientnet_b0 -r 224 --budget-macs 400M \
    -b 16 -P 64 --candidates 0 --time-limit "${MINUTES}m" --workers 2 --device cuda --seed 0 --no-plots \
    --out "$OUT/imagenet"
step imagenet_summary 30 python3 benchmarks/search_summary.py "$OUT/imagenet"
step imagenet_ratio 60 python3 benchmarks/bench_score.py --models "$OUT/imagenet/best.json" --resolution 224 \
    --batch 16 --device cuda --runs 10 --repeat 8 --json "$OUT/imagenet_ratio.json"
rm -rf "$OUT/cache"
