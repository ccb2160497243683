"""``mentions process`` writes ``sentiment_by_brand`` on mentions naming several brands."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline.cli import main


def test_process_writes_a_label_per_brand_for_mentions_naming_several(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    texts = ["Me pasé de Telvia a Acme Mobile y qué diferencia, por fin cobertura",
             "Acme Mobile sin cobertura otra vez"]
    source.write_bytes(b"\n".join(orjson.dumps({
        "id": str(n), "text": text, "source": "twitter",
        "created_at": "2026-11-22T10:00:00Z", "author": {"id": "u1"},
    }) for n, text in enumerate(texts)) + b"\n")
    output = tmp_path / "out.jsonl"
    assert main(["process", "--input", str(source), "--output", str(output),
                 "--rejects", str(tmp_path / "rejects.jsonl")]) == 0
    several, single = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert sorted(several["brands"]) == ["acme-mobile", "telvia"]
    by_brand = several["sentiment_by_brand"]
    # "from Telvia to Acme": the switch decides each brand's side
    assert {b: r["label"] for b, r in by_brand.items()} == {"acme-mobile": "positive",
                                                           "telvia": "negative"}
    assert several["sentiment"]["label"] in ("negative", "neutral", "positive")
    assert "sentiment_by_brand" not in single
