#!/usr/bin/env bash
# Assemble, in .gpu/ (ignored by git), what the GPU checks need on a machine that has torch,
# transformers, tokenizers, numpy and pytest but none of this project's other dependencies,
# no network and no ../shared: the bundled model's config and tokenizer (the checks use
# random weights of its shape), the XLM-T val splits, and wheels of the pure-Python-side
# dependencies for that machine's Python. Then run benchmarks/gpu_run.sh there.
#
#   benchmarks/gpu_kit.sh [python version of the GPU machine, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
python_version="${1:-3.12}"
kit=.gpu
model=models/build/sentiment-default
data="${PIPELINE_SHARED_DATA:-../shared/data}"
[ -f "$model/tokenizer.json" ] || { echo "build the model first: make setup" >&2; exit 1; }
rm -rf "$kit" && mkdir -p "$kit/sentiment-default" "$kit/wheels"
cp "$model"/{config.json,tokenizer.json,tokenizer_config.json} "$kit/sentiment-default/"
for folder in "$data"/sentiment/xlmt/*/; do
    language=$(basename "$folder")
    mkdir -p "$kit/data/sentiment/xlmt/$language"
    cp "$folder"/val_text.txt "$folder"/val_labels.txt "$kit/data/sentiment/xlmt/$language/"
done
# the versions installed here, so that the GPU machine runs what CI tests
for package in pydantic pydantic-core pydantic-settings python-dotenv annotated-types \
        typing-inspection typing-extensions orjson msgspec; do
    version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$package'))")
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version "$python_version" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$kit/wheels" "$package==$version"
done
du -sh "$kit"
