#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md and the CUDA tests, in one command on a one-GPU machine:
#
#   bash benchmarks/gpu.sh                 # logs under $OUT (default gpu-results/), one file per step
#   bash benchmarks/gpu.sh peer cuda_tests # only the steps named
#
# Each step has its own time limit (seconds, in the order run; a step that overruns is cut and the next
# one starts) and all of them together at most $BUDGET seconds (default 500: with a machine's start, a
# 15-minute lease keeps room for a short rerun), most important first. The order follows what the first
# GPU run (H200, BENCHMARKS.md) left open: eager steps there were measured and bound by the host, so
# first the compiled ones (full fine-tuning's too, for the ratio), then our training loop compiled with
# its varying batch shapes, evaluation with packed batches, the CUDA tests that run did not reach, three training processes sharing the
# GPU (examples/s summed against one), the grid cost, CUDA graphs.
# For a GPU machine without internet whose Python lacks this stack, first, where pip can reach the
# registry and this stack is installed (the versions are taken from it):
#
#   bash benchmarks/gpu.sh fetch           # wheels for CPython 3.12 x86-64 into .whl/ (git-ignored)
#
# and carry .whl/ along: the run installs them into /tmp/site and puts them first on the path.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}  # the README's venv

if [ "${1:-}" = fetch ]; then
  set -e
  mkdir -p .whl
  pkgs=(transformers tokenizers huggingface_hub adapters peft datasets dill multiprocess flask itsdangerous blinker)
  pins=$("$PY" -m pip show "${pkgs[@]}" | awk '/^Name:/{n=$2} /^Version:/{print n "==" $2}')
  [ "$(wc -w <<<"$pins")" -eq "${#pkgs[@]}" ] || { echo "$PY lacks some of: ${pkgs[*]}" >&2; exit 1; }
  plats=(); for n in 17 24 27 28 31 34; do plats+=(--platform "manylinux_2_${n}_x86_64"); done
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plats[@]}" --platform manylinux2014_x86_64 -d .whl $pins
  "$PY" -m pip wheel -q --no-deps -w .whl "seqeval==$("$PY" -m pip show seqeval | awk '/^Version:/{print $2}')"
  ls .whl
  exit 0
fi

STEPS=" train_step peer evaluate cuda_tests shared grid_cost cudagraphs host retrieval all_tests "
for name in "$@"; do  # before anything runs or is written: a typo names no step
  if [[ "$STEPS" != *" $name "* ]]; then
    echo "usage: bash benchmarks/gpu.sh [fetch | STEP ...]; steps, in the order run:$STEPS" >&2
    [[ "$name" = -h || "$name" = --help ]] && exit 0 || exit 2
  fi
done

OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the wheels in .whl/ failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/host.txt" 2>&1
"$PY" -c "import torch, transformers, adapters, peft; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'adapters', adapters.__version__, 'peft', peft.__version__)" | tee -a "$OUT/host.txt" || exit 1

BUDGET=${BUDGET:-500}
ONLY=" $* "
step() {  # step NAME SECONDS COMMAND...: run it with a limit, its output added to $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]] && return
  local left=$((BUDGET - SECONDS))
  [ "$limit" -gt "$left" ] && limit=$left
  [ "$limit" -lt 20 ] && { echo "== $name: skipped, $left s of the budget left"; return; }
  echo "== $name ($limit s): $*"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt" | tail -n 25
  echo "== $name: exit ${PIPESTATUS[0]}"
}

step train_step 170 "$PY" benchmarks/train_step.py --size large --device cuda --batch 32 --seq 128 --steps 10 \
  --warmup 3 --methods seq_bn+bf16base+compile,full+compile,lora_peft+bf16base+compile
step peer 150 "$PY" benchmarks/peer.py --size large --device cuda --max-steps 60 --warmup 20 --compile --lr 1e-4
step evaluate 45 "$PY" benchmarks/evaluate.py --size large --device cuda --examples 2000 --batch 64 --repeat 3
step cuda_tests 120 "$PY" -m pytest -q -x -p no:cacheprovider --durations=0 tests/test_cuda.py \
  -k "peft or pinned or mining"
shared="$PY benchmarks/train_step.py --size large --device cuda --batch 32 --seq 128 --steps 10 --warmup 3 \
  --methods seq_bn+bf16base"  # one process, then three at once on the same GPU (grid --devices 0,0,0)
step shared 150 bash -c "$shared && echo '-- three at once' && { $shared & $shared & $shared & wait; }"
step grid_cost 60 "$PY" benchmarks/grid_cost.py --size large --device cuda --batch 32 --seq 256 --steps 5
step cudagraphs 150 "$PY" benchmarks/train_step.py --size large --device cuda --batch 32 --seq 128 --steps 10 \
  --warmup 3 --methods seq_bn+bf16base+cudagraphs,stack+bf16base+compile
step host 60 "$PY" benchmarks/host_overhead.py --size large --device cuda --methods full,seq_bn+bf16base,seq_bn+bf16base+compile
step retrieval 60 "$PY" benchmarks/retrieval.py --n 400000 --chunks 8192 --device cuda --repeat 2
step all_tests 600 "$PY" -m pytest -q -p no:cacheprovider
