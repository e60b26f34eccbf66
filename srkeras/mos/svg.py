"""Tiny inline-SVG charts for the self-contained HTML report (no scripts, no external resources)."""

from __future__ import annotations

import math
from html import escape

import numpy as np

FONT = 'font-family="sans-serif" font-size="12"'
LEVEL_COLORS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")  # score 1 (bad) .. 5 (excellent)


def _fin(x) -> bool:
    return x is not None and isinstance(x, int | float | np.floating) and math.isfinite(x)


def _svg(w, h, body, title) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>')


def bar_ci(labels, values, lows, highs, title: str, lo: float = 1.0, hi: float = 5.0, xlabel: str = "MOS") -> str:
    """Horizontal bars (value) with CI whiskers (low..high), one row per label."""
    left, right, row, top = 120, 40, 24, 28
    w, h = 640, top + row * len(labels) + 40
    span = w - left - right
    sx = lambda v: left + (min(max(v, lo), hi) - lo) / (hi - lo) * span  # noqa: E731
    parts = [f'<text x="{left}" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    for t in np.linspace(lo, hi, 5):
        parts.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{h - 36}" stroke="#ddd"/>'
                     f'<text x="{sx(t):.1f}" y="{h - 22}" {FONT} text-anchor="middle">{t:g}</text>')
    for k, (lab, v, a, b) in enumerate(zip(labels, values, lows, highs)):
        y = top + k * row
        parts.append(f'<text x="{left - 6}" y="{y + 15}" {FONT} text-anchor="end">{escape(str(lab))}</text>')
        if _fin(v):
            parts.append(f'<rect x="{left}" y="{y + 4}" width="{sx(v) - left:.1f}" height="{row - 8}" fill="#6baed6"/>')
            parts.append(f'<text x="{sx(v) + 4:.1f}" y="{y + 15}" {FONT}>{v:.2f}</text>' if not _fin(b) else "")
        if _fin(a) and _fin(b):
            c = y + row / 2
            parts.append(f'<line x1="{sx(a):.1f}" y1="{c}" x2="{sx(b):.1f}" y2="{c}" stroke="#08306b" stroke-width="2"/>'
                         f'<line x1="{sx(a):.1f}" y1="{c - 5}" x2="{sx(a):.1f}" y2="{c + 5}" stroke="#08306b"/>'
                         f'<line x1="{sx(b):.1f}" y1="{c - 5}" x2="{sx(b):.1f}" y2="{c + 5}" stroke="#08306b"/>'
                         f'<text x="{sx(b) + 4:.1f}" y="{y + 15}" {FONT}>{v:.2f} [{a:.2f}, {b:.2f}]</text>')
    parts.append(f'<text x="{left + span / 2}" y="{h - 6}" {FONT} text-anchor="middle">{escape(xlabel)}</text>')
    return _svg(w, h, "".join(parts), title)


def scatter(xs, ys, labels, title: str, xlabel: str, ylabel: str) -> str:
    """Labelled scatter plot; non-finite points are skipped (listed in the caption by the caller)."""
    pts = [(x, y, lab) for x, y, lab in zip(xs, ys, labels) if _fin(x) and _fin(y)]
    w, h, m = 520, 380, 56
    if not pts:
        return _svg(w, 40, f'<text x="10" y="24" {FONT}>{escape(title)}: no finite points</text>', title)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x0, x1 = (x0 - 0.5, x1 + 0.5) if x1 == x0 else (x0 - 0.05 * (x1 - x0), x1 + 0.05 * (x1 - x0))
    y0, y1 = (y0 - 0.5, y1 + 0.5) if y1 == y0 else (y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0))
    sx = lambda v: m + (v - x0) / (x1 - x0) * (w - 2 * m)  # noqa: E731
    sy = lambda v: h - m - (v - y0) / (y1 - y0) * (h - 2 * m)  # noqa: E731
    parts = [f'<text x="{m}" y="18" {FONT} font-weight="bold">{escape(title)}</text>',
             f'<rect x="{m}" y="{m}" width="{w - 2 * m}" height="{h - 2 * m}" fill="none" stroke="#999"/>']
    for t in np.linspace(x0, x1, 5):
        parts.append(f'<text x="{sx(t):.1f}" y="{h - m + 16}" {FONT} text-anchor="middle">{t:.3g}</text>')
    for t in np.linspace(y0, y1, 5):
        parts.append(f'<text x="{m - 4}" y="{sy(t) + 4:.1f}" {FONT} text-anchor="end">{t:.3g}</text>')
    for x, y, lab in pts:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="#3182bd" fill-opacity="0.7"/>')
        if lab:
            parts.append(f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 4:.1f}" {FONT}>{escape(str(lab))}</text>')
    parts.append(f'<text x="{w / 2}" y="{h - 12}" {FONT} text-anchor="middle">{escape(xlabel)}</text>'
                 f'<text x="14" y="{h / 2}" {FONT} text-anchor="middle" transform="rotate(-90 14 {h / 2})">'
                 f'{escape(ylabel)}</text>')
    return _svg(w, h, "".join(parts), title)


def stacked_hist(labels, counts, title: str) -> str:
    """Per label a 100% bar split by score level 1..5 (SRGAN Fig. 5 style)."""
    left, row, top, w = 120, 22, 28, 640
    h = top + row * len(labels) + 40
    span = w - left - 40
    parts = [f'<text x="{left}" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    for k, (lab, c) in enumerate(zip(labels, counts)):
        y, tot, x = top + k * row, max(float(np.sum(c)), 1.0), float(left)
        parts.append(f'<text x="{left - 6}" y="{y + 15}" {FONT} text-anchor="end">{escape(str(lab))}</text>')
        for lvl, n in enumerate(c):
            wd = span * n / tot
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{wd:.1f}" height="{row - 6}" '
                         f'fill="{LEVEL_COLORS[lvl]}"><title>score {lvl + 1}: {int(n)} votes</title></rect>')
            x += wd
    for lvl, col in enumerate(LEVEL_COLORS):
        x = left + lvl * 90
        parts.append(f'<rect x="{x}" y="{h - 22}" width="12" height="12" fill="{col}"/>'
                     f'<text x="{x + 16}" y="{h - 12}" {FONT}>score {lvl + 1}</text>')
    return _svg(w, h, "".join(parts), title)


def heatmap(matrix, rows, cols, title: str, fmt, color) -> str:
    """Cell grid: ``fmt(v)`` text and ``color(v)`` fill per cell (v may be NaN)."""
    cell, left, top = 58, 120, 110
    w, h = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    parts = [f'<text x="4" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    for j, c in enumerate(cols):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x}" y="{top - 6}" {FONT} transform="rotate(-45 {x} {top - 6})">{escape(str(c))}</text>')
    for i, r in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" {FONT} text-anchor="end">{escape(str(r))}</text>')
        for j in range(len(cols)):
            v = matrix[i][j]
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{color(v)}"/>'
                         f'<text x="{left + j * cell + cell / 2 - 1}" y="{y + cell / 2 + 4}" {FONT} '
                         f'text-anchor="middle">{escape(fmt(v))}</text>')
    return _svg(w, h, "".join(parts), title)
