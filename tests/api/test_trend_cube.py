"""The trend cube answers exactly what the detail rollups answer (service level, both
databases): the bench's synthetic generator, the cube rebuilt from its rollups, random queries."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy.orm import Session

from bench import seed_rollups
from service.core.db import make_engine
from service.trends.cube import TrendCube, cube_exists, rebuild_cube
from service.trends.schemas import Granularity, TrendFilters, TrendQuery
from service.trends.service import compute_trends, cube_pieces, forget_cube_state

DIMENSION_VALUES = {
    "language": seed_rollups.LANGUAGES,
    "service": seed_rollups.SERVICES,
    "region": seed_rollups.REGIONS,
    "channel": seed_rollups.CHANNELS,
}


def test_cube_and_rollups_agree_on_random_queries(database_url: str) -> None:
    """3,000 synthetic complaints' rollups (bench generator), the cube rebuilt from them, then
    200 random queries (granularity, ranges cutting weeks and months, filters, groups)."""
    seeded = seed_rollups.seed(database_url, complaints=3000, with_complaints=False)
    engine = make_engine(database_url)
    try:
        if not cube_exists(engine):
            TrendCube.__table__.create(engine)
        forget_cube_state()
        tenant_ids = list(seeded["tenants"].values())
        with Session(engine) as session:
            for tenant_id in tenant_ids:
                rebuild_cube(session, tenant_id=tenant_id)
            session.commit()
            rng = random.Random(11)
            sources = set()
            for _ in range(200):
                dim = rng.choice([None, *DIMENSION_VALUES])
                first = seed_rollups.START + timedelta(days=rng.randrange(0, 300))
                last = first + timedelta(days=rng.randrange(0, 120))
                group_by = tuple(
                    d for d in ("tenant", "topic", "sentiment") if rng.random() < 0.3
                ) + ((dim,) if dim and rng.random() < 0.5 else ())
                filters = TrendFilters(
                    tenant_ids=tuple(rng.sample(tenant_ids, rng.randint(1, 2))),
                    date_from=first if rng.random() < 0.8 else None,
                    date_to=last if rng.random() < 0.8 else None,
                    topic=(rng.choice(seed_rollups.TOPICS),) if rng.random() < 0.3 else (),
                    sentiment=("negative",) if rng.random() < 0.2 else (),
                    **(
                        {dim: (rng.choice(DIMENSION_VALUES[dim]),)}
                        if dim and rng.random() < 0.5
                        else {}
                    ),
                )
                query = TrendQuery(filters, rng.choice(list(Granularity)), group_by)
                cube = compute_trends(session, query)
                detail = compute_trends(session, query, use_cube=False)
                sources.add(cube.source)
                assert detail.source == "rollups"
                assert cube.series == detail.series, query
                assert cube.totals == detail.totals
        assert {"cube:", "cube:service", "cube:region"} <= sources
    finally:
        engine.dispose()


def test_ranges_split_into_whole_periods_and_partial_days() -> None:
    d = seed_rollups.START.replace
    month = Granularity.month
    # Whole months only.
    assert cube_pieces(month, d(month=1, day=1), d(month=3, day=31)) == [
        ("month", d(month=1, day=1), d(month=3, day=1))
    ]
    # Partial head and tail read from days; the months between from their grain.
    assert cube_pieces(month, d(month=1, day=9), d(month=3, day=14)) == [
        ("day", d(month=1, day=9), d(month=1, day=31)),
        ("month", d(month=2, day=1), d(month=2, day=1)),
        ("day", d(month=3, day=1), d(month=3, day=14)),
    ]
    # Inside one month: days only. Open ends: the grain alone.
    assert cube_pieces(month, d(month=2, day=3), d(month=2, day=9)) == [
        ("day", d(month=2, day=3), d(month=2, day=9))
    ]
    assert cube_pieces(Granularity.week, None, None) == [("week", None, None)]
    assert cube_pieces(Granularity.day, d(month=2, day=3), None) == [
        ("day", d(month=2, day=3), None)
    ]
