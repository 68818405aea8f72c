# Sourced by benchmarks/gpu_figures.sh and benchmarks/gpu_search.sh (set OUT first; STEP_TAIL: how
# many log lines a step echoes, default 40). A lent GPU machine's image holds torch/torchvision/timm/
# typer/rich but cannot reach a package index, so zenfx is laid out on PYTHONPATH exactly as
# pyproject.toml installs it (cli/ -> zenfx.cli, zoo/ -> zenfx.zoo); `python3 -P` keeps the
# checkout's own zenfx/ (without cli/, zoo/) from shadowing the laid-out one.
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
SITE=$(mktemp -d)
cp -r zenfx "$SITE/zenfx" && cp -r cli "$SITE/zenfx/cli" && cp -r zoo "$SITE/zenfx/zoo"
export PYTHONPATH="$SITE"
export ZENFX_CACHE_DIR="$OUT/cache"

step() {  # step NAME SECONDS CMD...: run, log to $OUT/NAME.log, say how it ended
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "--- $name: rc $rc, $((SECONDS - t0)) s"
    tail -n "${STEP_TAIL:-40}" "$OUT/$name.log"
}
