"""`sawt discover INPUT -o OUTPUT`: emerging themes in a JSONL/CSV file of complaints.

Writes OUTPUT (one JSONL line per input row: ``{"id", "theme"}``, plus ``"error"`` for rows that
could not be used) and ``<OUTPUT stem>.themes.json`` beside it: the ``ThemeSet`` (keywords,
representative complaints, suggested taxonomy topic, centroids, topics over time). Pass that
file back with ``--previous`` next time so that themes found again keep their ids.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console

if TYPE_CHECKING:
    from models.encoder.encoder import BaseEncoder

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_TOPICS_DIR = REPO_ROOT / "datasets" / "seed_topics"
MAX_TEXT_CHARS = 10_000
err = Console(stderr=True)


def read_rows(path: Path, input_format: str | None = None) -> list[dict[str, Any] | str]:
    """Records of a JSONL or CSV file, or an error message in place of an unreadable row."""
    fmt = (input_format or path.suffix.lstrip(".")).lower()
    fmt = "jsonl" if fmt == "ndjson" else fmt
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format '{fmt}': use --format jsonl or csv")
    rows: list[dict[str, Any] | str] = []
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        if fmt == "csv":
            for record in csv.DictReader(handle):
                malformed = None in record
                rows.append("more fields than the header" if malformed else dict(record))
            return rows
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append(f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            rows.append(record if isinstance(record, dict) else "each line must be a JSON object")
    return rows


def encode_texts(
    encoder: BaseEncoder, texts: Sequence[str], batch_size: int = 32, chunk: int = 512
) -> npt.NDArray[np.float32]:
    """Encode in chunks, with a progress bar when stderr is a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    parts: list[npt.NDArray[np.float32]] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("encoding", total=len(texts))
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            parts.append(encoder.encode(part, batch_size=batch_size))
            progress.advance(task, len(part))
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


def themes_path(output: Path) -> Path:
    """``<OUTPUT stem>.themes.json`` beside OUTPUT."""
    return output.with_name(f"{output.stem}.themes.json")


def discover(
    input_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL: one {id, theme} per row")],
    min_theme_size: Annotated[
        int | None, typer.Option(min=2, help="Fewest complaints in a theme (default: n/500, >= 10)")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="THEMES.json of an earlier run: keeps ids"),
    ] = None,
    text_field: Annotated[str, typer.Option(help="Field holding the complaint text")] = "text",
    id_field: Annotated[
        str, typer.Option(help="Field holding the id (else the row number)")
    ] = "id",
    time_field: Annotated[
        str | None, typer.Option(help="Field holding an ISO 8601 timestamp (topics over time)")
    ] = None,
    language_field: Annotated[
        str, typer.Option(help="Field with a language tag, used when present")
    ] = "language",
    granularity: Annotated[
        str, typer.Option(help="Period of topics over time: day | week | month")
    ] = "week",
    input_format: Annotated[
        str | None, typer.Option("--format", help="jsonl | csv (default: by extension)")
    ] = None,
    taxonomy: Annotated[
        bool, typer.Option(help="Suggest the nearest taxonomy topic (seed set) for each theme")
    ] = True,
    model_dir: Annotated[
        Path | None, typer.Option(help="Rebuilt encoder directory (default: the cache)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Encoder batch size")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed (same input + seed: same themes)")] = 0,
) -> None:
    """Discover emerging themes in a file of complaints (BERTopic, ids stable across runs)."""
    from models.discovery import ThemeDiscoverer, ThemeSet, topic_centroids_from_seed
    from models.encoder import build
    from models.encoder.encoder import Encoder
    from models.text.redact import redact

    if granularity not in ("day", "week", "month"):
        err.print(
            f"[red]error:[/red] --granularity must be day, week or month, not {granularity!r}"
        )
        raise typer.Exit(2)
    try:
        rows = read_rows(input_path, input_format)
        earlier = ThemeSet.load(previous) if previous is not None else None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc

    # Decide per row: usable (text, id, time, language) or an error line.
    ids: list[str] = []
    errors: dict[int, str] = {}
    usable: list[int] = []
    texts: list[str] = []
    times: list[Any] = []
    languages: list[str | None] = []
    for row, record in enumerate(rows):
        if isinstance(record, str):
            ids.append(str(row + 1))
            errors[row] = record
            continue
        rid = record.get(id_field)
        ids.append(str(rid) if rid not in (None, "") else str(row + 1))
        text = str(record.get(text_field) or "").strip()
        if not text:
            errors[row] = f"field '{text_field}' is empty or missing"
            continue
        if time_field is not None and not record.get(time_field):
            errors[row] = f"field '{time_field}' is empty or missing"
            continue
        usable.append(row)
        # Redacted before anything else, as in the analysis pipeline: themes.json quotes
        # representative complaints, and personal data must not reach it.
        texts.append(redact(text[:MAX_TEXT_CHARS]).text)
        times.append(record.get(time_field) if time_field is not None else None)
        language = record.get(language_field)
        languages.append(str(language) if language else None)
    if not usable:
        err.print(f"[red]error:[/red] no row of {input_path} has a non-empty '{text_field}'")
        raise typer.Exit(1)

    try:
        encoder = Encoder(model_dir)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    embeddings = encode_texts(encoder, texts, batch_size=batch_size)
    centroids = None
    if taxonomy and SEED_TOPICS_DIR.is_dir():
        centroids = topic_centroids_from_seed(
            encoder, SEED_TOPICS_DIR, cache_dir=build.default_cache_dir() / "discovery"
        )
    elif taxonomy:
        err.print(f"[yellow]warning:[/yellow] no seed topics at {SEED_TOPICS_DIR}: no suggestions")

    discoverer = ThemeDiscoverer(
        min_theme_size=min_theme_size,
        topic_centroids=centroids,
        granularity=granularity,  # type: ignore[arg-type]
        random_state=seed,
    )
    try:
        discoverer.fit(
            texts,
            embeddings,
            timestamps=times if time_field is not None else None,
            previous=earlier,
            ids=[ids[row] for row in usable],
            languages=languages if all(languages) else None,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc

    theme_of = dict(zip(usable, discoverer.theme_ids_, strict=True))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as out:
        for row, rid in enumerate(ids):
            line: dict[str, Any] = {"id": rid, "theme": theme_of.get(row)}
            if row in errors:
                line["error"] = errors[row]
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    discoverer.themes_.save(themes_path(output))
    found = discoverer.themes_
    new = sum(t.is_new for t in found.themes)
    err.print(
        f"{len(found.themes)} themes ({new} new), {found.n_outliers} outliers, "
        f"{len(errors)} rows skipped → {output}, {themes_path(output)}"
    )
