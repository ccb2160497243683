from pathlib import Path

import orjson

from pipeline.cli import main


def test_process_gives_one_line_per_input_line(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    good = {
        "id": "1", "text": "Acme Mobile sin cobertura otra vez", "source": "twitter",
        "created_at": "2026-11-22T10:00:00Z", "author": {"id": "u1"},
    }
    source.write_bytes(b"\n".join([
        orjson.dumps(good), b"{broken", orjson.dumps({**good, "id": "2", "text": "hola"}),
    ]) + b"\n")
    output, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    assert main([
        "process", "--input", str(source), "--output", str(output), "--rejects", str(rejects),
    ]) == 0
    written = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert [(m["id"], m["brands"]) for m in written] == [("1", ["acme-mobile"]), ("2", [])]
    rejected = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["line"], r["reason"], r["original"]) for r in rejected] == [
        (2, "not_json", "{broken"),
    ]
