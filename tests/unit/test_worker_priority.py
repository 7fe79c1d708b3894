"""`sawt worker` lowers its own CPU priority (`SAWT_WORKER_NICE`): analysis is background work
and must not starve the API and the database of shared cores."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from service.cli import app as cli_app
from service.core.config import get_settings


def test_lower_cpu_priority_adds_to_the_niceness_of_the_process() -> None:
    """In a child process: niceness only ever goes up for an unprivileged process."""
    code = (
        "import os; from service.jobs.celery_app import lower_cpu_priority; "
        "before = os.nice(0); returned = lower_cpu_priority(5); print(before, returned, os.nice(0))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    before, returned, after = (int(x) for x in result.stdout.split()[-3:])
    assert returned == after == min(before + 5, 19)


def test_the_worker_command_applies_the_setting_before_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def lower_cpu_priority(increment: int) -> int:
        calls.append(f"nice {increment}")
        return increment

    def run_worker(**_: object) -> int:
        calls.append("run")
        return 0

    monkeypatch.setenv("SAWT_WORKER_NICE", "7")
    monkeypatch.setattr("service.jobs.celery_app.lower_cpu_priority", lower_cpu_priority)
    monkeypatch.setattr("service.jobs.tasks.run_worker", run_worker)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["worker"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert calls == ["nice 7", "run"]
