"""A PNG of the training curves (loss and validation AP per epoch), drawn with Pillow (no matplotlib needed)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = ["plot_history"]

_W, _H = 520, 380
_MARGIN_L, _MARGIN_R, _MARGIN_T, _MARGIN_B = 70, 20, 36, 50
_COLORS = {
    "loss": (31, 119, 180),
    "AP": (214, 39, 40),
    "AR": (44, 160, 44),
    "gt_loss": (255, 127, 14),
    "distill_loss": (148, 103, 189),
}


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.0e}"
    return f"{v:g}"


def _panel(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    log_y: bool,
    y_range: tuple[float, float] | None,
    font: Any,
    legend_bottom: bool = False,
) -> Image.Image:
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = _MARGIN_L, _MARGIN_T, _W - _MARGIN_R, _H - _MARGIN_B
    draw.text((_W // 2 - 4 * len(title), 10), title, fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline="black")
    points = [(x, y) for pts in series.values() for x, y in pts if math.isfinite(y) and (not log_y or y > 0)]
    if not points:
        draw.text((x0 + 10, (y0 + y1) // 2), "no data yet", fill="gray", font=font)
        return img
    xs = [p[0] for p in points]
    ys = [math.log10(p[1]) if log_y else p[1] for p in points]
    xlo, xhi = min(xs), max(xs)
    if xhi == xlo:
        xlo, xhi = xlo - 0.5, xhi + 0.5
    if y_range is not None:
        ylo, yhi = y_range
    else:
        ylo, yhi = min(ys), max(ys)
        if yhi == ylo:
            ylo, yhi = ylo - 0.5, yhi + 0.5
        pad = 0.05 * (yhi - ylo)
        ylo, yhi = ylo - pad, yhi + pad
        if log_y:
            ylo, yhi = math.floor(ylo), math.ceil(yhi)

    def to_px(x: float, y: float) -> tuple[float, float]:
        yy = math.log10(y) if log_y else y
        return (x0 + (x - xlo) / (xhi - xlo) * (x1 - x0), y1 - (yy - ylo) / (yhi - ylo) * (y1 - y0))

    for t in _nice_ticks(xlo, xhi):
        if float(t).is_integer() or xhi - xlo < 5:
            px = x0 + (t - xlo) / (xhi - xlo) * (x1 - x0)
            draw.line((px, y1, px, y1 + 4), fill="black")
            draw.line((px, y0, px, y1), fill=(235, 235, 235))
            draw.text((px - 3 * len(_fmt(t)), y1 + 8), _fmt(t), fill="black", font=font)
    yticks = [float(v) for v in range(int(ylo), int(yhi) + 1)] if log_y else _nice_ticks(ylo, yhi)
    for t in yticks:
        py = y1 - (t - ylo) / (yhi - ylo) * (y1 - y0)
        label = _fmt(10**t) if log_y else _fmt(t)
        draw.line((x0 - 4, py, x0, py), fill="black")
        draw.line((x0, py, x1, py), fill=(235, 235, 235))
        draw.text((x0 - 8 - 6 * len(label), py - 6), label, fill="black", font=font)
    draw.text(((x0 + x1) // 2 - 15, y1 + 26), "epoch", fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline="black")  # over the grid lines
    lx = min(x1 - 70, x1 - 30 - 6 * max(len(name) for name in series))  # the legend, wide enough for its names
    for i, (name, pts) in enumerate(series.items()):
        color = _COLORS.get(name, (100, 100, 100))
        pix = [to_px(x, y) for x, y in pts if math.isfinite(y) and (not log_y or y > 0)]
        if len(pix) > 1:
            draw.line(pix, fill=color, width=2)
        for px, py in pix if len(pix) <= 60 else pix[-1:]:
            draw.ellipse((px - 2.5, py - 2.5, px + 2.5, py + 2.5), fill=color)
        ly = (y1 - 16 * (len(series) - i) - 4) if legend_bottom else (y0 + 8 + 16 * i)
        draw.line((lx, ly + 6, lx + 20, ly + 6), fill=color, width=2)
        draw.text((lx + 25, ly), name, fill="black", font=font)
    return img


def plot_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write a PNG with the training loss (log scale) and, where there is validation, AP and AR per epoch.

    history: one mapping per epoch with `epoch`, `loss` and optionally `AP`, `AR`; columns named `*_loss` (the
    parts a loss function logs, e.g. `vitpose distill`'s `gt_loss` and `distill_loss`) are drawn beside the loss.
    Others are ignored.
    """
    font = ImageFont.load_default()
    parts = sorted({k for r in history for k in r if k.endswith("_loss")})
    losses = {
        name: [(float(r["epoch"]), float(r[name])) for r in history if r.get(name) not in (None, "")]
        for name in ["loss", *parts]
    }
    metrics = {
        key: [(float(r["epoch"]), float(r[key])) for r in history if r.get(key) not in (None, "")]
        for key in ("AP", "AR")
    }
    left = _panel("training loss", losses, log_y=True, y_range=None, font=font)
    right = _panel(
        "validation", {k: v for k, v in metrics.items() if v}, log_y=False, y_range=(0.0, 1.0), font=font,
        legend_bottom=True,
    )  # fmt: skip
    canvas = Image.new("RGB", (2 * _W, _H), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (_W, 0))
    tmp = f"{os.fspath(path)}.tmp.png"
    canvas.save(tmp)
    os.replace(tmp, path)
