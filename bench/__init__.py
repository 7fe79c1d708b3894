"""Benchmarks (`python -m bench.<name>`); each reports ratios against a same-run baseline.

Load generators are floods by design: per-key rate limits are off for them (and for the servers
they start, which inherit the environment)."""

import os

os.environ.setdefault("SAWT_RATE_LIMIT_PER_MINUTE", "0")
