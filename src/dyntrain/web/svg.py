"""Server-rendered SVG pictures: confusion matrix (clickable cells), line charts, score bars.

Plain strings, escaped here, scaled by ``viewBox`` so they fit a phone as well as a desktop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

__all__ = ["confusion_matrix", "line_chart", "score_bars", "predicted_vs_actual"]

_FONT = 'font-family="system-ui, sans-serif"'
GOOD, BAD, NEUTRAL = "22,128,61", "200,40,40", "#f1f3f5"
PALETTE = ["#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626"]


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _short(label: str, n: int = 16) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def confusion_matrix(labels: Sequence[str], cm: Sequence[Sequence[int]], href: Callable[[int, int], str],
                     selected: tuple[int, int] | None = None) -> Markup:
    """Rows are the true class, columns what the model said; each cell links to its examples.

    >>> "<svg" in confusion_matrix(["a", "b"], [[3, 1], [0, 4]], lambda i, j: f"?cell={i}-{j}")
    True
    """
    n = len(labels)
    cell = 88 if n <= 3 else 72 if n <= 5 else max(30, 440 // n)
    longest = max((len(_short(lab)) for lab in labels), default=4)
    left = 44 + longest * 8
    top = 40 + int(longest * 5.8)
    width, height = left + n * cell + 12, top + n * cell + 12
    parts = [f'<svg class="matrix" viewBox="0 0 {width} {height}" width="{width}" role="group" '
             f'aria-labelledby="cm-title" {_FONT} font-size="13">',
             '<title id="cm-title">Confusion matrix: rows are the real class, columns what the model said. '
             'Select a cell to see its examples.</title>',
             f'<text x="{left + n * cell / 2}" y="14" text-anchor="middle" font-weight="600">What the model said →</text>',
             f'<text transform="translate(14 {top + n * cell / 2}) rotate(-90)" text-anchor="middle" '
             f'font-weight="600">Real class →</text>']
    for j, lab in enumerate(labels):
        x = left + j * cell + cell / 2
        parts.append(f'<text transform="translate({x + 4} {top - 8}) rotate(-45)" text-anchor="start">'
                     f'<title>{_e(lab)}</title>{_e(_short(lab))}</text>')
    for i, lab in enumerate(labels):
        y = top + i * cell + cell / 2 + 4
        parts.append(f'<text x="{left - 8}" y="{y}" text-anchor="end"><title>{_e(lab)}</title>{_e(_short(lab))}</text>')
    for i in range(n):
        row_total = sum(cm[i]) or 1
        for j in range(n):
            count = int(cm[i][j])
            share = count / row_total
            if count == 0:
                fill, ink = NEUTRAL, "#555"
            else:
                alpha = 0.18 + 0.72 * share
                fill = f"rgba({GOOD if i == j else BAD},{alpha:.2f})"
                ink = "#fff" if alpha > 0.55 else "#111"
            x, y = left + j * cell, top + i * cell
            what = (f"{labels[i]} recognised correctly" if i == j else f"{labels[i]} taken for {labels[j]}")
            label = f"{what}: {count} ({share * 100:.0f}% of {labels[i]}). Show examples."
            is_sel = selected == (i, j)
            current = ' aria-current="true"' if is_sel else ""
            stroke = 'stroke="#111" stroke-width="3"' if is_sel else 'stroke="#fff" stroke-width="2"'
            parts.append(
                f'<a href="{_e(href(i, j))}" class="cm-cell" data-true="{_e(labels[i])}" data-predicted="{_e(labels[j])}" '
                f'aria-label="{_e(label)}"{current}>'
                f'<title>{_e(label)}</title>'
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="4" fill="{fill}" {stroke}/>'
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 5}" text-anchor="middle" font-size="{16 if cell >= 64 else 14 if cell >= 48 else 11}" '
                f'fill="{ink}" font-weight="600">{count}</text></a>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / n
    return [lo + k * step for k in range(n + 1)]


def _fmt(v: float) -> str:
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def line_chart(series: Sequence[dict[str, Any]], *, title: str, x_label: str, y_label: str,
               y_min: float | None = None, y_max: float | None = None, percent: bool = False,
               width: int = 560, height: int = 240) -> Markup:
    """Lines over a shared x axis. ``series``: [{"name", "points": [(x, y), ...]}].

    >>> "polyline" in line_chart([{"name": "loss", "points": [(1, .9), (2, .5)]}], title="t", x_label="epoch",
    ...                          y_label="loss")
    True
    """
    pts = [p for s in series for p in s["points"] if p[1] is not None]
    if not pts:
        return Markup("")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_min is None else y_min
    y1 = max(ys) if y_max is None else y_max
    if y1 <= y0:
        y1 = y0 + 1
    if x1 <= x0:
        x1 = x0 + 1
    left, right, top, bottom = 52, 14, 30, 42
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    def fmt(v: float) -> str:
        return f"{v * 100:.0f}%" if percent else _fmt(v)

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" aria-label="{_e(title)}" {_FONT} '
           f'font-size="11"><title>{_e(title)}</title>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="#555">{fmt(t)}</text>')
    xt = sorted(set(xs))
    step = max(1, len(xt) // 8)
    for x in xt[::step]:
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#555">{_fmt(x)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#999"/>'
               f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>'
               f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" fill="#333">{_e(x_label)}</text>'
               f'<text transform="translate(12 {top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">'
               f'{_e(y_label)}</text>')
    lx = left
    for k, s in enumerate(series):
        color = s.get("color") or PALETTE[k % len(PALETTE)]
        points = [(x, y) for x, y in s["points"] if y is not None]
        if not points:
            continue
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in points if len(points) <= 40 else []:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">'
                       f'<title>{_e(s["name"])} at {_fmt(x)}: {fmt(y)}</title></circle>')
        out.append(f'<rect x="{lx}" y="8" width="12" height="4" fill="{color}"/>'
                   f'<text x="{lx + 16}" y="14" fill="#333">{_e(s["name"])}</text>')
        lx += 24 + 7 * len(s["name"])
    out.append("</svg>")
    return Markup("".join(out))


def score_bars(rows: Sequence[dict[str, Any]], *, title: str, width: int = 560, percent: bool = True) -> Markup:
    """Horizontal bars with ±sd whiskers; rows: {"name", "value", "sd", "highlight"}.

    ``percent``: scores in 0–1 shown as percentages. Otherwise a score up to 1 that may be
    negative (R²), shown as it is: the axis then starts at the lowest score, and a bar below
    zero grows leftwards from the zero line in red.

    >>> "rect" in score_bars([{"name": "a", "value": .8, "sd": .1, "highlight": True}], title="t")
    True
    >>> ">-0.25<" in score_bars([{"name": "a", "value": -.25}], title="R²", percent=False)
    True
    """
    if not rows:
        return Markup("")
    values = [r["value"] - (r.get("sd") or 0) for r in rows if r.get("value") is not None]
    lo = 0.0 if percent else min([0.0, *values])
    hi = 1.0
    bar_h, gap, left, right = 20, 10, 8, 60
    label_h = 20
    height = len(rows) * (bar_h + gap + label_h) + 10
    pw = width - left - right

    def bx(v: float) -> float:
        return left + (min(hi, max(lo, v)) - lo) / (hi - lo) * pw

    out = [f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="{width}" role="img" aria-label="{_e(title)}" {_FONT} '
           f'font-size="15"><title>{_e(title)}</title>']
    y = 4
    for r in rows:
        v = r.get("value")
        bold = ' font-weight="700"' if r.get("highlight") else ""
        out.append(f'<text x="{left}" y="{y + 15}" fill="#222"{bold}><title>{_e(r["name"])}</title>'
                   f'{_e(_short(r["name"], 56))}</text>')
        y += label_h
        out.append(f'<rect x="{left}" y="{y}" width="{pw}" height="{bar_h}" fill="#f1f3f5" rx="3"/>')
        if v is None:
            out.append(f'<text x="{left + 6}" y="{y + 15}" fill="#b91c1c">failed</text>')
        else:
            color = "#dc2626" if v < 0 else "#16a34a" if r.get("highlight") else "#60a5fa"
            a, b = sorted((bx(0.0), bx(v)))
            out.append(f'<rect x="{a:.1f}" y="{y}" width="{max(1.0, b - a):.1f}" height="{bar_h}" fill="{color}" rx="3"/>')
            sd = r.get("sd") or 0
            if sd:
                out.append(f'<line x1="{bx(v - sd):.1f}" x2="{bx(v + sd):.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" '
                           'stroke="#111" stroke-width="1.5"/>')
            if lo < 0:
                out.append(f'<line x1="{bx(0.0):.1f}" x2="{bx(0.0):.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" stroke="#111"/>')
            shown = f"{v * 100:.0f}%" if percent else f"{v:.2f}"
            out.append(f'<text x="{left + pw + 6}" y="{y + 15}" fill="#222">{shown}</text>')
        y += bar_h + gap
    out.append("</svg>")
    return Markup("".join(out))


def predicted_vs_actual(points: Sequence[dict[str, Any]], *, title: str, size: int = 420) -> Markup:
    """A regression model's predictions against the true values, with the y = x line a
    perfect model would sit on. ``points``: [{"true", "predicted"}, ...].

    >>> "<circle" in predicted_vs_actual([{"true": 1, "predicted": 1.2}, {"true": 3, "predicted": 2.5}], title="t")
    True
    """
    pts = [(float(p["true"]), float(p["predicted"])) for p in points]
    if not pts:
        return Markup("")
    # Round ticks around the values; the axes start at zero or above when every value does.
    ticks = nice_ticks(min(min(t, p) for t, p in pts), max(max(t, p) for t, p in pts))
    lo, hi = ticks[0], ticks[-1]
    labels = [axis_number(t) for t in ticks]
    # wide enough for the longest tick label and the rotated axis title beside it
    left, right, top, bottom = 30 + 7 * max(len(x) for x in labels), 14, 14, 42
    pw = size - left - right

    def px(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    def py(v: float) -> float:
        return top + (1 - (v - lo) / (hi - lo)) * pw

    height = top + pw + bottom
    out = [f'<svg class="chart scatter" viewBox="0 0 {size} {height}" width="{size}" role="img" '
           f'aria-label="{_e(title)}" {_FONT} font-size="11"><title>{_e(title)}</title>']
    for t, label in zip(ticks, labels):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="#555">{label}</text>'
                   f'<text x="{px(t):.1f}" y="{top + pw + 16}" text-anchor="middle" fill="#555">{label}</text>')
    out.append(f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" stroke="#16a34a" '
               f'stroke-width="1.5" stroke-dasharray="5 4"><title>perfect predictions</title></line>'
               f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + pw}" stroke="#999"/>'
               f'<line x1="{left}" x2="{left + pw}" y1="{top + pw}" y2="{top + pw}" stroke="#999"/>'
               f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" fill="#333">true value</text>'
               f'<text transform="translate(12 {top + pw / 2}) rotate(-90)" text-anchor="middle" fill="#333">'
               f'predicted value</text>')
    for t, p in pts:
        out.append(f'<circle cx="{px(t):.1f}" cy="{py(p):.1f}" r="3.5" fill="#2563eb" fill-opacity="0.65">'
                   f'<title>true {_short_num(t)}, predicted {_short_num(p)}</title></circle>')
    out.append("</svg>")
    return Markup("".join(out))


def _short_num(v: float) -> str:
    from .views import number

    return number(v)


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round steps (1, 2 or 5 × a power of ten) covering [lo, hi]; never below zero
    when ``lo`` is not.

    >>> nice_ticks(0.3, 3493300.0)
    [0.0, 1000000.0, 2000000.0, 3000000.0, 4000000.0]
    >>> nice_ticks(-2.5, 7.0)
    [-5.0, 0.0, 5.0, 10.0]
    """
    import math

    if hi <= lo:  # one value: a unit around it
        lo, hi = (max(0.0, lo - 1) if lo >= 0 else lo - 1), hi + 1
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start, stop = math.floor(lo / step), math.ceil(hi / step)
    return [float(round(k * step, 12)) for k in range(start, stop + 1)]


def axis_number(v: float) -> str:
    """A tick label, short and never in scientific notation: 3,500,000 → '3.5M', 12,000 → '12k'.

    >>> axis_number(3500000.0), axis_number(12000.0), axis_number(0.25), axis_number(-1500.0)
    ('3.5M', '12k', '0.25', '-1,500')
    """
    for above, size, suffix in ((1e12, 1e12, "T"), (1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(v) >= above:
            return f"{v / size:.3g}{suffix}" if abs(v / size) < 1000 else f"{v / size:,.0f}{suffix}"
    return _short_num(v)
