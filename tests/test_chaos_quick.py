"""The quick chaos run: worker kills, a Redis crash, provider faults, lost replies, a balance
outage and a balance too small for one batch lose nothing and duplicate nothing unannounced,
for sends through the Python API, through a plain Celery app naming no queue, and for campaign
batches."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hudhud_bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_quick_chaos_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    chaos = _chaos()
    summary = chaos.run(quick=True, keep=tmp_path / "chaos")
    line = chaos.summary_line(summary)
    print(line)
    assert summary["sent"] == 300, line
    assert summary["kills"] == 3 and summary["redis_kills"] == 1, line
    assert summary["lost"] == 0, f"{line} lost: {summary['lost_ids']} (logs in {summary['workdir']})"
    assert summary["duplicated"] == 0, f"{line} duplicated: {summary['duplicated_ids']}"
    assert summary["failed_sent"] == 0, f"{line} failed yet sent: {summary['failed_sent_ids']}"
    assert summary["foreign"] > 0 and summary["keyed_twice"] > 0, line
    assert summary["batches"] == 8 and summary["batch_recipients"] == 800, line
    assert summary["in_doubt"] > 0, f"{line}: the lost replies were met"
    assert summary["waited_for_top_up"] > 0, f"{line}: a batch met the short balance"
    assert summary["unmatched_sends"] == 0, line
