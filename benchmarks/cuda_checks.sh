#!/usr/bin/env bash
# The CUDA checks in one short run, for a lent GPU whose minutes are few:
#   1. eager ratios to base (bf16 autocast, channels-last), ImageNet stem at 64x64, batch 32;
#   2. every variant compiled (torch.compile, inductor) and compared with eager, one process per variant
#      at once, beside one per variant that compiles step 3's graphs into inductor's on-disk caches
#      (compiling the eight one after the other took longer than a lent GPU's minutes);
#   3. the ratios again, compiled (mode default, then reduce-overhead: CUDA graphs).
# Each step has its own time limit, so a stuck one leaves the others their time. Results go to
# $OUT (or benchmarks/results/cuda-run): log.txt, eager.md, compile.md, compiled.md, graphs.md and JSON.
#
#     bash benchmarks/cuda_checks.sh
#     VARIANTS="base dyconv" COMPILE_PRECISION=float64 bash benchmarks/cuda_checks.sh
set -u
OUT=${OUT:-benchmarks/results/cuda-run}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
VARIANTS=${VARIANTS:-$($PY -c "from dynlab import layers; print(*layers.names())")}
COMPILE_PRECISION=${COMPILE_PRECISION:-bf16}  # float64 judges the gradients too (dynlab.kernels.compile_check)
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }

log "start"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$OUT/log.txt" 2>&1
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >>"$OUT/log.txt" 2>&1

log "1. eager"
timeout 120 $PY -m benchmarks steps --device cuda --repeats 7 --warmup 2 --json "$OUT/eager.json" \
    >"$OUT/eager.md" 2>>"$OUT/log.txt"
log "1. done (rc $?)"

log "2. compile checks, and step 3's graphs compiled into inductor's caches (one process each, at once)"
for v in $VARIANTS; do
    TORCHINDUCTOR_COMPILE_THREADS=1 timeout 240 $PY -m benchmarks compile --device cuda --width 64 \
        --batch 32 --precision "$COMPILE_PRECISION" --variants "$v" --jsonl "$OUT/compile.jsonl" >"/tmp/compile_$v.log" 2>&1 &
    TORCHINDUCTOR_COMPILE_THREADS=1 timeout 240 $PY -m benchmarks steps --device cuda --compile --repeats 1 \
        --warmup 1 --no-memory --no-hard-batch1 --variants "$v" >/dev/null 2>&1 &
done
wait
for v in $VARIANTS; do
    { echo "--- compile_check $v"; grep -v -i warn "/tmp/compile_$v.log" | tail -25; } >>"$OUT/log.txt"
done
$PY -m benchmarks compile --table-from "$OUT/compile.jsonl" >"$OUT/compile.md" 2>>"$OUT/log.txt"
log "2. done"

log "3. compiled, mode default"
timeout 200 $PY -m benchmarks steps --device cuda --compile --repeats 7 --warmup 2 --no-hard-batch1 \
    --json "$OUT/compiled.json" >"$OUT/compiled.md" 2>>"$OUT/log.txt"
log "3. done (rc $?)"

log "3b. compiled, mode reduce-overhead"
timeout 150 $PY -m benchmarks steps --device cuda --compile --compile-mode reduce-overhead --repeats 7 \
    --warmup 3 --no-hard-batch1 --no-memory >"$OUT/graphs.md" 2>>"$OUT/log.txt"
log "3b. done (rc $?)"
