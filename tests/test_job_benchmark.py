"""benchmarks/job.py --quick keeps working: every line of the whole-job benchmark runs and the sides did the same work.

Only structural facts are asserted (what would be wrong if the benchmark were broken), never a timing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest

from conftest import COCO_DIR, ROOT, require_shared

pytest.importorskip("transformers")
pytest.importorskip("cv2")

SCRIPT = ROOT / "benchmarks" / "job.py"
LINES = ("a", "b", "a-hog", "c", "d", "e-1", "e-5")


def _stages() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("job_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.STAGES


def _rows(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the markdown table under `## ...heading`, by their first cell."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[2:]}  # after the header and ---


def _number(cell: str) -> float:
    return float(re.match(r"[-+0-9.e]+", cell).group())


@pytest.mark.slow
def test_job_benchmark_quick(tmp_path):
    require_shared(COCO_DIR / "test_coco.json")
    out, raw = tmp_path / "report.md", tmp_path / "raw.json"
    committed = ROOT / "benchmarks" / "JOB_RESULTS.md"
    before = committed.read_bytes() if committed.exists() else None
    command = [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--json", str(raw)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (committed.read_bytes() if committed.exists() else None) == before  # --quick writes only --out

    text = out.read_text()
    assert "Command: `python benchmarks/job.py --quick" in text
    assert re.search(r"\| load average \(start -> end\) \| [0-9.]+ / .* -> [0-9.]+ / ", text)
    targets = _rows(text, "## Targets")
    assert len(targets) == 2 and all(row[-1] in ("met", "missed") for row in targets.values())

    lines = _rows(text, "## tiny simple: the lines")
    assert set(lines) == set(LINES)
    for key, (_, images, people, wall, rate, ratio, _) in lines.items():
        assert int(images) > 0 and int(people) > 0, key
        assert _number(wall) > 0 and _number(rate) > 0 and _number(ratio) > 0, key

    stages = _rows(text, "## tiny simple: (d) the job's stages")
    assert list(stages) == [*_stages(), "**sum**"]
    result = json.loads(raw.read_text())["tiny"]
    assert list(result["stages"]) == list(_stages())
    assert all(seconds > 0 for seconds in result["stages"].values())
    assert result["lines"]["d"]["seconds"] == pytest.approx(sum(result["stages"].values()))
    assert result["lines"]["a"]["images"] == result["lines"]["b"]["images"] == 24

    # The same work: (a)'s predictions.json holds one person per given box, and (b) (transformers, same
    # checkpoint and boxes) and (d) (vitpose's stages) found the same people. (d) equals (a) up to float rounding;
    # (b) crops and decodes differently (scipy crops, another DARK blur), which random weights turn into pixels, so
    # its positions agree in the median and its keypoint scores (heatmap maxima) closely.
    given = result["crops"]
    for against in ("vs_transformers", "vs_stages"):
        v = result[against]
        assert v["people"] == v["other_people"] == v["common"] == v["given"] == given, against
    assert result["vs_stages"]["max_px"] < 1.0
    assert result["vs_stages"]["score_max"] < 1e-2
    assert result["vs_transformers"]["median_px"] < 5.0
    assert result["vs_transformers"]["score_median"] < 0.02
    agreement = _rows(text, "## tiny simple: agreement")
    assert set(agreement) == {"(b) transformers", "(d) the stages"}
