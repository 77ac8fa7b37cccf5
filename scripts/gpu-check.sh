#!/usr/bin/env bash
# A check ready for a real GPU: from a release build without debug info,
# stripped, runs `manytask info`, `validate --backend vulkan`,
# `bench --quick --json`, the GEMM and training-step bench rows at the
# MTL shapes (every variant, the shared-memory `tiled` one included, and
# the autotuner's choice), and the default `train`, writing every output
# into OUT_DIR (docs/benchmarks.md, "GPU check").
#
#   scripts/gpu-check.sh OUT_DIR
#
# Environment:
#   MANYTASK_BIN=path    use this binary instead of building one
#   GPU_CHECK_SMALL=1    small settings (a smoke test: one validate family,
#                        a filtered quick bench, train 2 steps, no MTL
#                        rows); the test suite uses it
#   GPU_CHECK_TIMEOUT=s  per-step limit in seconds (default 1800)
# Exit status: 0 when every step succeeded, else 1 (summary.txt says which).
set -u
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
limit=${GPU_CHECK_TIMEOUT:-1800}
small=${GPU_CHECK_SMALL:-0}

if [ -n "${MANYTASK_BIN:-}" ]; then
    bin=$MANYTASK_BIN
else
    # Release, no debug info, stripped; its own target dir so the usual
    # release build (with debug info, for profiling) stays as it is.
    echo "building (release, no debug info, stripped) ..."
    (cd "$root" && CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo build --release --target-dir target/gpu-check) >"$out/build.txt" 2>&1 || {
        echo "build failed: $out/build.txt" >&2
        exit 1
    }
    bin=$root/target/gpu-check/release/manytask
fi

# A fresh autotune table: the run tunes on this adapter, and the table it
# chose is kept with the outputs.
export MANYTASK_CACHE_DIR=$out/autotune-cache
rm -rf "$MANYTASK_CACHE_DIR"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

failed=0
summary=$out/summary.txt
{
    echo "manytask gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "binary: $bin"
    (cd "$root" && git rev-parse HEAD 2>/dev/null) | sed 's/^/commit: /'
    command -v lscpu >/dev/null && lscpu | grep -i 'model name' | sed 's/  */ /g'
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sed 's/^/gpu: /'
} >"$summary"

# step NAME OUTFILE ARGS...: runs the binary, stdout to OUTFILE, stderr
# to OUTFILE.err, and notes the status and seconds in the summary.
step() {
    local name=$1 file=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$bin" "$@" >"$out/$file" 2>"$out/$file.err"
    local rc=$?
    printf '%-22s rc=%-3s %5ss  %s\n' "$name" "$rc" $((SECONDS - t0)) "$file" >>"$summary"
    echo "$name: rc=$rc ($((SECONDS - t0)) s) -> $out/$file"
    [ "$rc" -eq 0 ] || failed=1
}

step info info.txt info
if [ "$small" = 1 ]; then
    # Seconds, not minutes: one conformance family, the quick bench's
    # roofline and one memory row, two training steps.
    step validate validate-vulkan.txt validate --backend vulkan --filter weighting::gram
    step bench-quick bench-quick.jsonl bench --quick --json --backend vulkan --filter adamw
    step train train.txt train --steps 2 --backend vulkan
else
    step validate validate-vulkan.txt validate --backend vulkan
    step bench-quick bench-quick.jsonl bench --quick --json --backend vulkan
    # The MTL shapes: GEMM 512 and 1024 in NN/NT/TN for every variant
    # (`tiled` is the shared-memory one), then the rows that run the
    # autotuned choice: the fused dense layer at the trunk shapes, the
    # batched heads, and whole MTL-MLP training steps.
    step bench-gemm-mtl bench-gemm-mtl.jsonl bench --json --backend vulkan --sizes 512,1024 --filter gemm
    step bench-dense-mtl bench-dense-mtl.jsonl bench --json --backend vulkan --sizes 512 --filter dense
    step bench-heads-mtl bench-heads-mtl.jsonl bench --json --backend vulkan --sizes 512 --filter task_heads
    step bench-train-step bench-train-step.jsonl bench --json --backend vulkan --sizes 512 --filter train_step
    step train train.txt train --backend vulkan
fi
cp "$MANYTASK_CACHE_DIR"/*.tsv "$out/autotune-choices.tsv" 2>/dev/null
echo "outputs in $out (summary.txt)"
exit $failed
