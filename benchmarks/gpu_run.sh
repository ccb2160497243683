#!/usr/bin/env bash
# On the GPU machine, from the repository root with .gpu/ from benchmarks/gpu_kit.sh beside
# it: the engine's CUDA tests and the sentiment benchmark, in one go of at most ~9 minutes (a
# lent GPU is billed from its start, so one call should do all of it). Each step has its own
# timeout and its own results file, so a step that runs out of time loses only its rows;
# the last step joins them into benchmarks/results/sentiment_cuda.json (GPU model, date,
# versions). Output goes to $1 (default .gpu/out): each step's log and the JSON files.
#
#   benchmarks/gpu_run.sh [output folder]
#
# The steps (seconds): CUDA tests 80 (the compile test left to the benchmark's compile row,
# which compares scores too); naive, engine from text, engine fed with carried ids, the feed
# before #35, stages 160; 1/2/4 engine processes and the batcher 130; torch.compile 120
# (about 8.5 minutes in all).
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
rm -f benchmarks/results/sentiment_cuda_{core,engines,compile}.json
bench() {  # bench SECONDS NAME ARGS...: one part of the benchmark, its own log and JSON
    local seconds=$1 name=$2
    shift 2
    timeout "$seconds" python3 -m benchmarks.sentiment --device cuda --random-weights \
        --out "sentiment_cuda_$name" "$@" 2>&1 | grep -v "Loading weights\|Writing model" \
        | tee "$out/bench_$name.log"
    cp "benchmarks/results/sentiment_cuda_$name.json" "$out/" 2>/dev/null
}
timeout 80 python3 -m pytest -q -p no:cacheprovider tests/unit/stages/test_sentiment_cuda.py \
    -k "not compiled" 2>&1 | tail -15 | tee "$out/pytest.log"
bench 160 core --naive-n 128 --groups naive,feed,engine,stages
bench 130 engines --groups engines,batcher --engines 1,2,4
bench 120 compile --groups compile
timeout 20 python3 -m benchmarks.sentiment --merge \
    sentiment_cuda_core,sentiment_cuda_engines,sentiment_cuda_compile --out sentiment_cuda \
    | tee "$out/merge.log"
cp benchmarks/results/sentiment_cuda.json "$out/"
