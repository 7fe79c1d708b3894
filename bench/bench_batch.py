"""Foundation figures, in one process and one run: how long `POST /v1/batches` of 10,000
complaints takes to answer, how many complaints per second the in-process runner analyses, and
peak RSS. The same batch runs under two serving configurations, so their ratio is same-run:
`encoder=none` (TF-IDF heads only, no stored embeddings) is the baseline for the default
`onnx-int8` (embeddings stored for discovery and tenant topics). The promoted heads read
embeddings, so the baseline serves a copy of the registry with the TF-IDF versions promoted.

    python -m bench.bench_batch [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from models.registry import DEFAULT_ROOT, Registry
from models.seed import load_seed_rows
from service.core.config import EncoderBackend, Environment, Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.migrate import upgrade
from service.main import create_app
from service.tenants.models import Role
from service.tenants.service import create_key


def database_with_key(settings: Settings) -> tuple[Engine, str]:
    """A migrated database at ``settings.database_url`` and a ministry key of tenant `bench`."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        key = create_key(
            session, role=Role.ministry, pepper=settings.secret_key, tenant_name="bench"
        ).plaintext
    return engine, key


def text_only_registry(workdir: Path) -> Path:
    """A copy of the shipped registry whose promoted heads read text only (the newest TF-IDF
    version of each task), for the `encoder=none` baseline."""
    root = workdir / "text-only-models"
    shutil.copytree(DEFAULT_ROOT, root)
    registry = Registry(root)
    for task in ("sentiment", "topics"):
        text_only = sorted(m.version for m in registry.versions(task) if m.kind.startswith("tfidf"))
        if not text_only:
            raise SystemExit(f"no TF-IDF {task} version in {DEFAULT_ROOT} for the baseline")
        registry.promote(task, text_only[-1], force=True)
    return root


def run(encoder: str, n: int, workdir: Path) -> dict[str, float]:
    url = f"sqlite:///{workdir / f'bench-{encoder}.db'}"
    model_dir = text_only_registry(workdir) if encoder == "none" else None
    settings = Settings(
        database_url=url,
        encoder=EncoderBackend(encoder),
        environment=Environment.test,
        model_dir=model_dir,
    )
    engine, key = database_with_key(settings)
    rows = load_seed_rows(split=None)
    body = {
        "complaints": [
            {"id": f"b{i}", "text": rows[i % len(rows)]["text"], "service": "health"}
            for i in range(n)
        ]
    }
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings)) as client:
        start = time.perf_counter()
        response = client.post("/v1/batches", json=body, headers=headers)
        answered = time.perf_counter() - start
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]
        while client.get(f"/v1/batches/{batch_id}", headers=headers).json()["status"] != "done":
            time.sleep(0.2)
        total = time.perf_counter() - start
    engine.dispose()
    return {"post_seconds": answered, "analysed_per_second": n / (total - answered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for encoder in ("none", "onnx-int8"):
            results[encoder] = run(encoder, args.n, Path(tmp))
            print(encoder, json.dumps(results[encoder]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = results["onnx-int8"]["analysed_per_second"] / results["none"]["analysed_per_second"]
    print(f"\n| serving config | POST {args.n} answered (s) | analysed/s |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['post_seconds']:.2f} | {r['analysed_per_second']:.0f} |")
    print(f"\nonnx-int8 / none analysed/s: {ratio:.2f}; peak RSS of the process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
