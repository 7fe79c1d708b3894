"""Seed a database with what 1,000,000 analysed complaints leave behind: rollups (and, optionally,
the complaints, analyses and topic rows they came from, for drill-downs and scan baselines).

The complaints are synthetic but shaped like real traffic: 12 months with a weekly rhythm and a
slow upward trend, a few tenants of unequal size, skewed (Zipf-like) services, regions, channels,
languages and topics, 0-3 topics per complaint, mostly negative sentiment. The rollup rows are
computed from those complaints exactly as `service.trends.rollups` would, so their number and
spread are what a real 1M-complaint load produces.

    python -m bench.seed_rollups --database-url sqlite:///var/bench/trends.db --complaints 1000000
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, func, insert, select, text

from service.batches.models import Batch
from service.batches.service import COMPLAINT_COLUMNS
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.migrate import upgrade
from service.tenants.models import Tenant
from service.trends.models import ALL_TOPICS

START = date(2025, 1, 1)
DAYS = 365
TENANTS = ("bench-interior", "bench-health", "bench-finance", "bench-education")
TENANT_SHARES = (0.4, 0.3, 0.2, 0.1)
SENTIMENTS = ("negative", "neutral", "positive")
SENTIMENT_SHARES = (0.58, 0.27, 0.15)
LANGUAGES = ("ary", "ar", "fr", "ary-Latn", "en", "zgh", "und")
LANGUAGE_SHARES = (0.32, 0.22, 0.24, 0.12, 0.04, 0.03, 0.03)
SERVICES = (
    "civil_registry", "health", "tax", "justice", "education", "transport",
    "water_power", "police", "land_registry", "customs", "social_security", "urbanism",
)  # fmt: skip
REGIONS = (
    "Casablanca-Settat", "Rabat-Salé-Kénitra", "Fès-Meknès", "Marrakech-Safi",
    "Tanger-Tétouan-Al Hoceïma", "Souss-Massa", "Oriental", "Béni Mellal-Khénifra",
    "Drâa-Tafilalet", "Guelmim-Oued Noun", "Laâyoune-Sakia El Hamra", "Dakhla-Oued Ed-Dahab",
)  # fmt: skip
CHANNELS = ("web", "app", "phone", "counter", "email")
CHANNEL_SHARES = (0.35, 0.25, 0.2, 0.12, 0.08)
TOPICS = (
    "delays", "digital_services", "staff_conduct", "procedures", "information", "fees",
    "access", "infrastructure", "corruption", "praise", "suggestion",
)  # fmt: skip
TOPIC_COUNT_SHARES = (0.08, 0.55, 0.30, 0.07)  # complaints with 0, 1, 2, 3 topics
MISSING_SERVICE, MISSING_REGION = 0.03, 0.05
BATCH_ID = "bench-seed"
MODEL_VERSION = "bench=synthetic"


def zipf(n: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


@dataclass
class Synthetic:
    """One row per complaint (integer codes into the tuples above); topics as a 0/1 matrix."""

    tenant: np.ndarray
    day: np.ndarray  # days since START
    second: np.ndarray  # seconds into the day
    sentiment: np.ndarray
    language: np.ndarray
    service: np.ndarray  # -1: missing
    region: np.ndarray  # -1: missing
    channel: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    topics: np.ndarray  # (n, len(TOPICS)) bool

    @property
    def size(self) -> int:
        return len(self.tenant)


def synthesize(n: int, *, seed: int = 0) -> Synthetic:
    rng = np.random.default_rng(seed)
    days = np.arange(DAYS)
    weekly = np.where(np.isin((days + START.weekday()) % 7, (5, 6)), 0.55, 1.0)
    trend = 1.0 + 0.5 * days / DAYS
    day_p = weekly * trend
    sentiment = rng.choice(3, n, p=SENTIMENT_SHARES)
    service = rng.choice(len(SERVICES), n, p=zipf(len(SERVICES), 1.0))
    service[rng.random(n) < MISSING_SERVICE] = -1
    region = rng.choice(len(REGIONS), n, p=zipf(len(REGIONS), 0.8))
    region[rng.random(n) < MISSING_REGION] = -1
    positive = np.where(sentiment == 2, rng.beta(6, 2, n), rng.beta(1, 6, n))
    negative = np.where(sentiment == 0, rng.beta(6, 2, n), rng.beta(1, 6, n)) * (1 - positive)
    # 0-3 distinct topics each, drawn by weight (Gumbel top-k).
    k = rng.choice(4, n, p=TOPIC_COUNT_SHARES)
    keys = np.log(zipf(len(TOPICS), 0.9))[None, :] + rng.gumbel(size=(n, len(TOPICS)))
    ranks = np.argsort(np.argsort(-keys, axis=1), axis=1)
    return Synthetic(
        tenant=rng.choice(len(TENANTS), n, p=TENANT_SHARES),
        day=rng.choice(DAYS, n, p=day_p / day_p.sum()),
        second=rng.integers(0, 86_400, n),
        sentiment=sentiment,
        language=rng.choice(len(LANGUAGES), n, p=LANGUAGE_SHARES),
        service=service,
        region=region,
        channel=rng.choice(len(CHANNELS), n, p=CHANNEL_SHARES),
        positive=np.round(positive, 4),
        negative=np.round(negative, 4),
        topics=ranks < k[:, None],
    )


def _label(codes: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    table = np.array([*names, ""], dtype=object)  # code -1 → "" (missing)
    return table[codes]


def rollup_frame(synth: Synthetic, tenant_ids: list[int]) -> pd.DataFrame:
    """The rollup rows these complaints produce: one per (tenant, day, topic, ... , channel)."""
    base = pd.DataFrame(
        {
            "tenant": synth.tenant,
            "day": synth.day,
            "sentiment": synth.sentiment,
            "language": synth.language,
            "service": synth.service,
            "region": synth.region,
            "channel": synth.channel,
            "positive": synth.positive,
            "negative": synth.negative,
        }
    )
    keys = ["tenant", "day", "topic", "sentiment", "language", "service", "region", "channel"]
    frames = [base.assign(topic=-1)]
    rows, cols = np.nonzero(synth.topics)
    frames.append(base.iloc[rows].assign(topic=cols))
    grouped = (
        pd.concat(frames, ignore_index=True)
        .groupby(keys, sort=True)
        .agg(
            count=("positive", "size"),
            positive_score_sum=("positive", "sum"),
            negative_score_sum=("negative", "sum"),
        )
        .reset_index()
    )
    out = pd.DataFrame(
        {
            "tenant_id": np.asarray(tenant_ids)[grouped["tenant"].to_numpy()],
            "day": [START + timedelta(days=int(d)) for d in grouped["day"].to_numpy()],
            "topic": np.array([*TOPICS, ALL_TOPICS], dtype=object)[grouped["topic"].to_numpy()],
            "sentiment": _label(grouped["sentiment"].to_numpy(), SENTIMENTS),
            "language": _label(grouped["language"].to_numpy(), LANGUAGES),
            "service": _label(grouped["service"].to_numpy(), SERVICES),
            "region": _label(grouped["region"].to_numpy(), REGIONS),
            "channel": _label(grouped["channel"].to_numpy(), CHANNELS),
            "count": grouped["count"].to_numpy(),
            "positive_score_sum": grouped["positive_score_sum"].round(4).to_numpy(),
            "negative_score_sum": grouped["negative_score_sum"].round(4).to_numpy(),
        }
    )
    return out


def _copy_rows(engine: Engine, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Fastest bulk load each database offers: COPY on PostgreSQL, executemany on SQLite."""
    with engine.begin() as connection:
        raw: Any = connection.connection.driver_connection
        if engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{c}"' for c in columns)
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            quoted = ", ".join(f'"{c}"' for c in columns)
            raw.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", rows)


def _tenants(engine: Engine) -> list[int]:
    with session_scope(make_session_factory(engine)) as session:
        ids = []
        for name in TENANTS:
            tenant = session.scalar(select(Tenant).where(Tenant.name == name))
            if tenant is None:
                tenant = Tenant(name=name)
                session.add(tenant)
                session.flush()
            ids.append(tenant.id)
        return ids


def _clear(engine: Engine, tenant_ids: list[int]) -> None:
    with engine.begin() as connection:
        for table in ("analysis_topics", "analyses", "complaints", "rollups", "batches"):
            column = "tenant_id" if table != "analysis_topics" else None
            if column:
                connection.execute(
                    text(
                        f"DELETE FROM {table} WHERE tenant_id IN ({','.join(map(str, tenant_ids))})"
                    )
                )
            else:
                connection.execute(
                    text(
                        "DELETE FROM analysis_topics WHERE complaint_id IN "
                        "(SELECT id FROM complaints WHERE tenant_id IN "
                        f"({','.join(map(str, tenant_ids))}))"
                    )
                )


def _seed_complaints(engine: Engine, synth: Synthetic, tenant_ids: list[int]) -> None:
    with engine.begin() as connection:
        connection.execute(delete(Batch).where(Batch.id == BATCH_ID))
        connection.execute(
            insert(Batch).values(
                id=BATCH_ID, tenant_id=tenant_ids[0], source_format="json", status="done"
            )
        )
        first_id = (connection.scalar(text("SELECT max(id) FROM complaints")) or 0) + 1
    n = synth.size
    ids = np.arange(first_id, first_id + n)
    tenants = np.asarray(tenant_ids)[synth.tenant]
    services = _label(synth.service, SERVICES)
    regions = _label(synth.region, REGIONS)
    channels = _label(synth.channel, CHANNELS)
    sentiments = _label(synth.sentiment, SENTIMENTS)
    languages = _label(synth.language, LANGUAGES)
    base = pd.Timestamp(START)
    stamps = (
        base + pd.to_timedelta(synth.day, unit="D") + pd.to_timedelta(synth.second, unit="s")
    ).strftime("%Y-%m-%d %H:%M:%S.000000")
    if engine.dialect.name == "postgresql":
        stamps = stamps + "+00:00"
    topic_names = np.array(TOPICS, dtype=object)
    complaint_rows = [
        (
            int(ids[i]),
            int(tenants[i]),
            BATCH_ID,
            f"bench-{ids[i]}",
            f"Réclamation synthétique {ids[i]} ({topic_names[synth.topics[i]].tolist()})",
            "[]",
            channels[i],
            services[i] or None,
            regions[i] or None,
            stamps[i],
            stamps[i],
            "{}",
            "analysed",
        )
        for i in range(n)
    ]
    _copy_rows(engine, "complaints", list(COMPLAINT_COLUMNS), complaint_rows)
    del complaint_rows
    analysis_rows = [
        (
            int(ids[i]),
            int(ids[i]),
            int(tenants[i]),
            MODEL_VERSION,
            languages[i],
            "Latn" if languages[i] in ("fr", "en", "ary-Latn") else "Arab",
            "[]",
            sentiments[i],
            json.dumps(
                {
                    "negative": float(synth.negative[i]),
                    "neutral": round(1 - synth.positive[i] - synth.negative[i], 4),
                    "positive": float(synth.positive[i]),
                }
            ),
            json.dumps([{"id": t, "score": 0.9} for t in topic_names[synth.topics[i]]]),
            stamps[i],
        )
        for i in range(n)
    ]
    _copy_rows(
        engine,
        "analyses",
        [
            "id",
            "complaint_id",
            "tenant_id",
            "model_version",
            "language",
            "script",
            "language_mix",
            "sentiment",
            "sentiment_scores",
            "topics",
            "created_at",
        ],
        analysis_rows,
    )
    del analysis_rows
    rows, cols = np.nonzero(synth.topics)
    topic_rows = [
        (int(ids[r]), TOPICS[c], int(ids[r]), 0.9) for r, c in zip(rows, cols, strict=True)
    ]
    _copy_rows(
        engine, "analysis_topics", ["analysis_id", "topic", "complaint_id", "score"], topic_rows
    )
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for table in ("complaints", "analyses"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )


def seed(
    database_url: str, *, complaints: int = 1_000_000, with_complaints: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Replace the bench tenants' data with synthetic complaints; returns what was written."""
    started = time.perf_counter()
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        tenant_ids = _tenants(engine)
        _clear(engine, tenant_ids)
        synth = synthesize(complaints, seed=seed)
        frame = rollup_frame(synth, tenant_ids)
        _copy_rows(
            engine,
            "rollups",
            list(frame.columns),
            list(frame.itertuples(index=False, name=None)),
        )
        if with_complaints:
            _seed_complaints(engine, synth, tenant_ids)
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
            stored = connection.scalar(select(func.count()).select_from(text("rollups")))
    finally:
        engine.dispose()
    return {
        "complaints": complaints,
        "with_complaints": with_complaints,
        "rollup_rows": len(frame),
        "rollup_rows_all_topics": int((frame["topic"] == ALL_TOPICS).sum()),
        "rollup_rows_stored": int(stored or 0),
        "tenants": dict(zip(TENANTS, tenant_ids, strict=True)),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--complaints", type=int, default=1_000_000)
    parser.add_argument("--rollups-only", action="store_true", help="skip complaint rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = seed(
        args.database_url,
        complaints=args.complaints,
        with_complaints=not args.rollups_only,
        seed=args.seed,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
