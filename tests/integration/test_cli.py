"""The `sawt` command line: analyze (streaming JSONL/CSV), keys, models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.core.config import get_settings
from tests.conftest import SAMPLE_TEXTS

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SAWT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_analyze_jsonl_writes_one_line_per_input(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate(SAMPLE_TEXTS)
    ]
    lines.insert(3, "{not json")
    lines.insert(5, json.dumps({"id": "empty", "text": "  "}))
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"

    result = runner.invoke(app, ["analyze", str(source), "-o", str(output)])

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    good = [r for r in rows if "error" not in r]
    assert len(good) == len(SAMPLE_TEXTS)
    for row in good:
        assert {"id", "language", "sentiment", "topics", "redactions"} <= set(row)
        assert row["sentiment"]["label"] in {"negative", "neutral", "positive"}
    errors = [r for r in rows if "error" in r]
    assert {e["row"] for e in errors} == {4, 6}
    pii = next(r for r in good if r["id"] == 7)
    assert "phone" in pii["redactions"] and "06 12" not in pii["text"]


def test_analyze_csv(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "id,text,service\na,Le guichet est fermé,health\nb,الماء مقطوع منذ يومين,utilities\n",
        encoding="utf-8",
    )
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["analyze", str(source), "-o", str(output)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["language"] == "fr" and rows[1]["language"] in {"ar", "ary"}


def test_keys_create_prints_the_key_alone_on_the_last_line() -> None:
    result = runner.invoke(app, ["keys", "create", "--tenant", "interior", "--role", "ministry"])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("sawt_") and " " not in last
    listed = runner.invoke(app, ["keys", "list"])
    assert "interior" in listed.stdout


def test_ministry_key_without_tenant_is_refused() -> None:
    result = runner.invoke(app, ["keys", "create", "--role", "ministry"])
    assert result.exit_code == 2
    assert "--tenant" in result.output


def test_models_list_shows_promoted_versions() -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    for task in ("sentiment", "topics", "langid"):
        assert task in result.stdout
