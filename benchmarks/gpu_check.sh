#!/usr/bin/env bash
# rvs-mi on Dr.Jit's CUDA backend: the test suite and the scale benchmarks, summed up in one table.
#
#   benchmarks/gpu_check.sh            # on a machine with an NVIDIA GPU, after `make setup`
#   benchmarks/gpu_check.sh --quick    # the smaller benchmark sizes
#   VARIANT=llvm_ad_rgb benchmarks/gpu_check.sh --quick    # the same steps on the CPU
#
# Each step's full output is in $OUT (default out/gpu_check); the table lists each step's status,
# wall time and last line, followed by the benchmarks' own tables. Exit status 2 when the variant
# cannot be used on this machine, 1 when a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export RVS_MI_VARIANT=${VARIANT:-cuda_ad_rgb}
OUT=${OUT:-out/gpu_check}
QUICK=""
STEPS=900
if [ "${1:-}" = "--quick" ]; then QUICK="--quick"; STEPS=300; fi
mkdir -p "$OUT"
if ! "$PY" -c "import rvs_mi, drjit as dr; rvs_mi.init('$RVS_MI_VARIANT'); import mitsuba as mi; dr.eval(dr.zeros(mi.Float, 4))" \
        > "$OUT/variant.txt" 2>&1; then
    echo "gpu_check: the $RVS_MI_VARIANT variant is not usable here: $(tail -n 1 "$OUT/variant.txt")" >&2
    exit 2
fi

TABLE="$OUT/table.md"
printf '| step (%s) | status | wall | last line |\n|---|---|---|---|\n' "$RVS_MI_VARIANT" > "$TABLE"
FAILED=0
run() {
    local name=$1 start status
    shift
    start=$(date +%s)
    if "$@" > "$OUT/$name.txt" 2>&1; then status=ok; else status="failed ($?)"; FAILED=1; fi
    printf '| %s | %s | %d s | %s |\n' "$name" "$status" "$(( $(date +%s) - start ))" \
        "$(grep -v '^\s*$' "$OUT/$name.txt" | tail -n 1 | tr '|' '/')" >> "$TABLE"
}

run tests "$PY" -m pytest -q tests
run bench_passes "$PY" benchmarks/bench_passes.py $QUICK
run bench_nerf "$PY" benchmarks/bench_nerf.py --data "$OUT/nerf_data" --steps "$STEPS" --out "$OUT/nerf"
run bench_tab12_neural "$PY" benchmarks/bench_tab12.py --neural --res 128 --steps "$STEPS"
run bench_freeze "$PY" benchmarks/bench_freeze.py
run bench_sdf_anchor "$PY" benchmarks/bench_sdf_anchor.py

cat "$TABLE"
for name in bench_passes bench_nerf bench_tab12_neural bench_freeze bench_sdf_anchor; do
    printf '\n%s:\n' "$name"
    grep '^|' "$OUT/$name.txt"
done
exit $FAILED
