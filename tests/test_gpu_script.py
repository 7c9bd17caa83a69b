"""benchmarks/gpu.py --quick keeps working: the GPU benchmark's every line, run on the CPU with tiny models, fills
its table with real numbers. Only what would be wrong if the script were broken is asserted, never a timing."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("transformers")

SCRIPT = ROOT / "benchmarks" / "gpu.py"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in NUMBER.findall(text)]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[str, str, list[list[str]]]:
    """(stdout, the --out file, the table's rows as cells) of one --quick run."""
    out = tmp_path_factory.mktemp("gpu") / "GPU_RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    rows = [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in text.splitlines()
        if re.match(r"\| \d+ \|", line)
    ]
    return done.stdout, text, rows


def section(rows: list[list[str]], number: int) -> list[list[str]]:
    return [row for row in rows if row[0] == str(number)]


@pytest.mark.slow
def test_one_table_on_stdout_and_in_the_file(report):
    stdout, text, rows = report
    assert stdout == text
    assert text.count("| # | measurement | result |") == 1
    assert "torch " in text and "device: cpu" in text  # the machine header
    assert {row[0] for row in rows} == {"1", "2", "3", "4", "5", "6", "7"}


@pytest.mark.slow
def test_every_line_ran(report):
    _, _, rows = report
    broken = [row for row in rows if row[2].startswith(("failed", "skipped"))]
    assert not broken, broken


@pytest.mark.slow
def test_crops_on_the_device_match_the_cv2_crops(report):
    _, _, rows = report
    (row,) = section(rows, 1)
    largest, mean = numbers(row[2])[:2]
    assert math.isfinite(largest) and 0 <= mean <= largest <= 2.0  # grey levels: within one of cv2 (documented)


@pytest.mark.slow
def test_drift_lines(report):
    _, _, rows = report
    drift = section(rows, 2)
    assert [row[1].split()[0] for row in drift] == ["bf16"]
    heatmap, largest, mean = numbers(drift[0][2])[:3]
    assert all(math.isfinite(v) and v >= 0 for v in (heatmap, largest, mean))
    assert heatmap < 100 and mean <= largest


@pytest.mark.slow
def test_network_lines_have_rates(report):
    _, _, rows = report
    network = section(rows, 3)
    for dtype in ("fp32", "bf16"):
        for batch in (1, 8):
            (row,) = [r for r in network if r[1] == f"network, tiny, {dtype}, batch {batch}"]
            assert numbers(row[2])[0] > 0 and "crops/s" in row[2]
    compiled = [row for row in network if "torch.compile" in row[1]]
    assert len(compiled) == 2 and all(numbers(row[2])[0] > 0 and "compile" in row[4] for row in compiled)


@pytest.mark.slow
def test_comparisons_have_rates(report):
    _, _, rows = report
    for number, unit in ((4, "crops/s"), (5, "images/s"), (6, "images/s")):
        lines = [row for row in section(rows, number) if not row[1].startswith("target")]
        assert lines and all(unit in row[2] and numbers(row[2])[0] > 0 for row in lines), lines
    predict = [row for row in section(rows, 6) if "vitpose predict" in row[1] and "target" not in row[1]]
    assert len(predict) == 1 and "--dtype" in predict[0][4]  # the --dtype passed, or why not
