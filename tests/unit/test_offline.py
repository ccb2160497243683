from pathlib import Path

import orjson
import pytest

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
    assert [m["duplicate_of"] for m in written] == [None, None]
    # the bundled model: "no coverage again" is a complaint
    assert written[0]["sentiment"]["label"] == "negative"
    assert sum(written[1]["sentiment"]["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    rejected = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["line"], r["reason"], r["original"]) for r in rejected] == [
        (2, "not_json", "{broken"),
    ]


def test_spikes_command_writes_nab_results(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    rows = ["timestamp,value"]
    for step in range(3 * 288):  # three days of 5-minute counts, a burst on the last day
        day, slot = divmod(step, 288)
        value = 40 + (10 if 96 <= slot < 240 else 0) + (400 if day == 2 and slot == 150 else 0)
        minutes = slot * 5
        rows.append(f"2026-11-0{day + 1} {minutes // 60:02d}:{minutes % 60:02d}:00,{value}")
    series.write_text("\n".join(rows) + "\n")
    output = tmp_path / "scores.csv"
    assert main(["spikes", "--input", str(series), "--output", str(output)]) == 0
    lines = output.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score,label"
    assert len(lines) == len(rows)
    fired = [line.split(",")[0] for line in lines[1:] if line.endswith(",1")]
    assert fired == ["2026-11-03 12:30:00"]
