"""benchmarks/serve_load.py --quick keeps working: real `vitpose serve` processes, real HTTP, every answer checked.

Only structural facts are asserted (what would be wrong if the load test were broken), never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "serve_load.py"


def _stamp(path: Path) -> tuple[int, int] | None:
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


@pytest.mark.slow
def test_serve_load_quick(tmp_path, coco_dir):
    out, raw = tmp_path / "report.md", tmp_path / "raw.json"
    logs = tmp_path / "logs"
    committed = ROOT / "benchmarks" / "SERVE_RESULTS.md"
    before = _stamp(committed)
    image = coco_dir / "000000000785.jpg"
    command = [sys.executable, str(SCRIPT), "--quick", "--image", str(image), "--out", str(out), "--json", str(raw)]
    done = subprocess.run([*command, "--logs", str(logs)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads(raw.read_text())
    scenarios = result["scenarios"]
    names = {s["name"] for s in scenarios}
    assert {"1 client", "4 clients", "16 clients", "16 clients, max-batch 1"} <= names
    for s in scenarios:
        assert s["lost"] == 0 and s["wrong"] == 0, s["problems"]
        assert s["sent"] == s["ok"] + s["refused"] > 0
        assert sum(s["statuses"].values()) == s["sent"]
        assert s["ok"] == len(s["latencies_ms"]) > 0
        assert all(v > 0 for v in s["latencies_ms"] + s["refused_latencies_ms"])
        assert all(v > 0 for v in s["timings"]["total_ms"])
        assert s["nothing_lost"] is True
        assert s["rss_start"] > 0 and s["rss_max"] >= s["rss_start"]
        if s["batches"] is not None:  # the server's /metrics: one crop run per 200 answer, none for a refusal
            assert s["batches"]["crops"] == s["ok"] and s["batches"]["calls"] >= 1
        if not s["name"].startswith("overload"):
            assert s["refused"] == 0 and set(s["statuses"]) == {"200"}
    (over,) = [s for s in scenarios if s["name"].startswith("overload")]
    assert set(over["statuses"]) == {"200", "503"}  # refusals only 503 (and there were some)
    assert over["refused"] >= 1 and over["ok"] >= 1
    assert over["clients"] == 4 * result["settings"]["queue_size"]
    assert result["after_overload"]["readyz"]["pending"] == 0  # every admitted request finished
    assert result["all_nothing_lost"] is True
    for server in result["servers"].values():  # SIGTERM stopped each one
        assert server["exit_code"] is not None and not server["killed"]
    assert len(result["targets"]) == 4 and all(t["state"] in ("met", "missed") for t in result["targets"])

    report = out.read_text()
    assert report.startswith("# vitpose serve: load test and benchmark")
    assert "Command: `python benchmarks/serve_load.py --quick" in report
    for heading in ("## Targets", "## Scenarios", "## Target B", "## Target C"):
        assert heading in report
    assert "| scenario | server options | clients |" in report
    rows = [line for line in report.splitlines() if line.startswith("| 1 client |") or line.startswith("| overload")]
    assert len(rows) == 2
    assert _stamp(committed) == before  # --out: the committed report is left alone
    assert len(list(logs.glob("server-*.log"))) == 3
