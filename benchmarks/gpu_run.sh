#!/usr/bin/env bash
# On the GPU machine, from the repository root with .gpu/ from benchmarks/gpu_kit.sh beside
# it: the engine's CUDA tests, the probe and the sentiment benchmark, in one go (a lent GPU
# is billed from its start, so one call should do all of it). Output goes to $1 (default
# .gpu/out): each step's log and sentiment_cuda.json.
#
#   benchmarks/gpu_run.sh [output folder]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-.gpu/out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIPELINE_SHARED_DATA="$PWD/.gpu/data"
python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu-site .gpu/wheels/*.whl || exit 3
export PYTHONPATH="/tmp/gpu-site:$PWD"
mkdir -p models/build/sentiment-default
cp -n .gpu/sentiment-default/* models/build/sentiment-default/
nvidia-smi -L | tee "$out/gpu.txt"
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/unit/stages/test_sentiment_cuda.py \
    tests/unit/stages/test_sentiment_tokens.py tests/unit/stages/test_sentiment_carried.py 2>&1 | tail -15 | tee "$out/pytest.log"
timeout 150 python3 -m benchmarks.sentiment_probe 2>&1 | grep -v "Loading weights" \
    | tee "$out/probe.log"
timeout 420 python3 -m benchmarks.sentiment --device cuda --random-weights --naive-n 128 \
    --sweep 512,2048 2>&1 | grep -v "Loading weights\|Writing model" | tee "$out/bench.log"
# only a file this run wrote (the committed one is older than gpu.txt)
if [ -n "$(find benchmarks/results/sentiment_cuda.json -newer "$out/gpu.txt" 2>/dev/null)" ]; then
    cp benchmarks/results/sentiment_cuda.json "$out/"
fi
