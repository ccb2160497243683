from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main
from pipeline.config import Settings
from pipeline.offline import load_into_store, process_file
from pipeline.stages.alerts.record import OPENED, UPDATED
from pipeline.store.client import ListeningStore
from pipeline.store.incidents import incident_record
from pipeline.store.queries import BoundQuery
from tests.incident_alerts import incident

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


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


def test_process_with_carried_token_ids_scores_as_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "in.jsonl"
    texts = ["Acme Mobile sin cobertura otra vez", "me encanta acme", "acme ok", "😍😍"]
    source.write_bytes(b"\n".join(orjson.dumps({
        "id": str(n), "text": text, "source": "twitter",
        "created_at": "2026-11-22T10:00:00Z", "author": {"id": "u1"},
    }) for n, text in enumerate(texts)) + b"\n")

    def process(carry: str) -> list[dict[str, object]]:
        monkeypatch.setenv("PIPELINE_SENTIMENT_CARRY_TOKENS", carry)
        output = tmp_path / f"out-{carry}.jsonl"
        assert main(["process", "--input", str(source), "--output", str(output),
                     "--rejects", str(tmp_path / "rejects.jsonl")]) == 0
        return [orjson.loads(line) for line in output.read_bytes().splitlines()]

    carried, plain = process("true"), process("false")
    assert [m["sentiment"] for m in carried] == [m["sentiment"] for m in plain]
    assert not any("sentiment_tokens" in m for m in carried)  # used, then dropped


def test_process_says_which_mentions_need_a_reply(tmp_path: Path) -> None:
    question = {
        "id": "q", "text": "@acmemobile ¿cuándo llega la fibra a mi barrio?", "source": "twitter",
        "created_at": "2026-11-22T10:00:00Z", "author": {"id": "u1"},
    }
    copy = {**question, "id": "q-copy", "created_at": "2026-11-22T10:01:00Z",
            "author": {"id": "u2"}}
    quiet = {**question, "id": "quiet", "text": "hoy hace sol en la playa"}
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in (question, copy, quiet)))
    output, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    assert main([
        "process", "--input", str(source), "--output", str(output), "--rejects", str(rejects),
    ]) == 0
    written = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    # every line says it, null included; the copy of a question is answered at its first copy
    assert [(m["id"], m["duplicate_of"], m["needs_reply"]) for m in written] == [
        ("q", None, "question"), ("q-copy", "q", None), ("quiet", None, None)]



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


def test_loading_a_file_of_mentions_and_alerts_adds_each_once(
        chdb_store_url: str, tmp_path: Path) -> None:
    # fixed dates: a retention of ten years keeps them whatever today is
    settings = Settings(store_url=chdb_store_url, store_retention_days=3650)
    store = ListeningStore.open(settings, database="unit_offline_load")
    opened, updated = incident("telvia", NOW, (OPENED, UPDATED))
    mention = {"id": "tw:1", "text": "Telvia otra vez sin servicio", "brands": ["telvia"],
               "created_at": NOW.isoformat()}
    lines = [mention, opened, updated, updated, {**updated, "status": "closed"}]
    exported = tmp_path / "exported.jsonl"
    exported.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines) + b"{oops\n")
    first = load_into_store(settings, store, exported, batch_size=4)
    second = load_into_store(settings, store, exported, batch_size=4)
    assert (first.lines, first.added, first.alerts_added, first.alerts_stored) == (6, 1, 2, 2)
    assert [(line, reason.split(":")[0]) for line, reason in first.rejects] == [
        (5, "wrong_type"), (6, "not_json")]
    assert (second.added, second.stored, second.alerts_added, second.alerts_stored) == (
        0, 1, 0, 2)
    assert store.incident(opened["incident_id"]) == {
        "incident": incident_record(updated, opened["window_end"], 2),
        "history": [opened, updated]}


def test_loading_reports_the_lines_the_store_refuses_and_loads_the_rest(
        chdb_store_url: str, tmp_path: Path) -> None:
    settings = Settings(store_url=chdb_store_url, store_retention_days=3650)
    store = ListeningStore.open(settings, database="unit_offline_refused")
    # a store that refuses what the row encoder accepts: a constraint of its own
    store.command(f"ALTER TABLE {store.table} ADD CONSTRAINT few_likes CHECK likes < 1000")
    mentions = [{"id": f"tw:{n}", "text": "Telvia otra vez sin servicio", "brands": ["telvia"],
                 "created_at": NOW.isoformat(), "engagement": {"likes": likes}}
                for n, likes in enumerate([3, 5000, 7, 12])]
    exported = tmp_path / "exported.jsonl"
    exported.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in mentions))
    first = load_into_store(settings, store, exported, batch_size=10)
    second = load_into_store(settings, store, exported, batch_size=10)
    assert (first.lines, first.added, first.stored) == (4, 3, 3)
    assert [(line, reason.split(":")[0]) for line, reason in first.rejects] == [
        (2, "store_rejected")]
    assert "few_likes" in first.rejects[0][1]
    assert store.mention_ids() == {"tw:0", "tw:2", "tw:3"}
    assert (second.added, second.stored, second.rejected) == (0, 3, 1)


def test_process_with_a_store_writes_what_it_outputs_there_once(
        chdb_store_url: str, tmp_path: Path) -> None:
    # no model: the store's rows, not the scores, are under test
    settings = Settings(store_url=chdb_store_url, store_retention_days=3650,
                        stages=("ingest", "dedup"), store_batch_size=2)
    store = ListeningStore.open(settings, database="unit_offline_process")
    source = tmp_path / "in.jsonl"
    text = "Telvia otra vez sin servicio en Madrid"
    source.write_bytes(b"".join(orjson.dumps(
        {"id": f"tw:{n}", "text": text if n != 1 else f"RT @u0: {text}", "source": "twitter",
         "created_at": NOW.isoformat(), "author": {"id": f"u{n}"}}) + b"\n" for n in range(3)))
    output, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    for _ in range(2):
        summary = process_file(settings, source, output, rejects, batch_size=2, store=store)
        assert (summary.written, summary.rejected) == (3, 0)
    written = [orjson.loads(line)["id"] for line in output.read_bytes().splitlines()]
    assert store.mention_ids() == set(written) and store.count() == 3
    [(original_author,)] = store.query(BoundQuery(
        f"SELECT original_author FROM {store.table} FINAL WHERE id = 'tw:1'"))
    assert original_author == "u0"
