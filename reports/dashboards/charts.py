"""Small server-side charts: each function returns an inline SVG string (no JavaScript, no CDN).

Values are floats for drawing only; the figures printed next to them are passed in already
formatted from the exact Decimal amounts. Every text is escaped.
"""

import math
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = [
    "#4f46e5",
    "#0ea5e9",
    "#10b981",
    "#f59e0b",
    "#ec4899",
    "#8b5cf6",
    "#14b8a6",
    "#f97316",
    "#64748b",
    "#84cc16",
]
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
OVER = "#dc2626"
FONT = 'font-family="Inter, system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def money_short(value) -> str:
    """$1.2k, $28k, $950 for axis ticks."""
    value = float(value)
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 1000:
        return f"${value / 1000:.1f}k".replace(".0k", "k")
    if abs(value) >= 10 or value == 0:
        return f"${value:.0f}"
    return f"${value:.2f}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _svg(width: int, height: int, body: list[str], title: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every interpolated text below went through escape()
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" {FONT}>'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x, y, text, *, size=12, fill=INK, anchor="start", weight="400") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" '
        f'text-anchor="{anchor}" font-weight="{weight}">{escape(text)}</text>'
    )


def hbar_chart(items: list[dict], *, title: str, width: int = 1150, label_width: int = 210):
    """Horizontal bars. Item: label, value, display (text at the bar's end), optional marker
    (e.g. the budget, drawn as a tick), marker_label, color, href."""
    value_width, row, top = 150, 30, 8
    plot = width - label_width - value_width
    height = top + row * max(len(items), 1) + 8
    if not items:
        return _svg(width, 40, [_text(0, 24, "Nothing this month.", fill=MUTED)], title)
    peak = max([float(i["value"]) for i in items] + [float(i.get("marker") or 0) for i in items])
    peak = peak or 1.0
    body = []
    for n, item in enumerate(items):
        y = top + n * row
        bar = max(float(item["value"]) / peak * plot, 0)
        fill = item.get("color") or color(n)
        label = _text(label_width - 10, y + 19, item["label"], anchor="end")
        if item.get("href"):
            label = f'<a href="{escape(item["href"])}">{label}</a>'
        body.append(label)
        body.append(
            f'<rect x="{label_width}" y="{y + 6}" width="{plot}" height="18" rx="4" fill="#f3f4f6"/>'
        )
        body.append(
            f'<rect x="{label_width}" y="{y + 6}" width="{bar:.1f}" height="18" rx="4" '
            f'fill="{fill}"><title>{escape(item["label"])}: {escape(item["display"])}</title></rect>'
        )
        if item.get("marker"):
            mx = label_width + float(item["marker"]) / peak * plot
            body.append(
                f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{y + 2}" y2="{y + 28}" stroke="{INK}" '
                f'stroke-width="2"><title>{escape(item.get("marker_label", ""))}</title></line>'
            )
        body.append(
            _text(
                label_width + plot + 10,
                y + 19,
                item["display"],
                fill=item.get("display_color", INK),
                weight="600",
            )
        )
    return _svg(width, height, body, title)


def column_chart(
    labels: list[str],
    series: list[dict],
    *,
    title: str,
    width: int = 1150,
    height: int = 240,
    label_every: int = 1,
    y_format=money_short,
):
    """Vertical (grouped) columns. Series: name, values (floats), color; label_every thins x labels."""
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([float(v) for s in series for v in s["values"]] + [0.0])
    ticks = nice_ticks(peak)
    scale = plot_h / ticks[-1]
    body = _grid(ticks, scale, left, width - right, top + plot_h, y_format)
    slot = plot_w / max(len(labels), 1)
    bar_w = slot * 0.75 / max(len(series), 1)
    for n, label in enumerate(labels):
        x0 = left + n * slot + slot * 0.125
        for k, s in enumerate(series):
            value = float(s["values"][n])
            h = value * scale
            fill = s.get("colors", [None] * len(labels))[n] or s.get("color") or color(k)
            tip = f"{label} {s['name']}: {s.get('displays', [y_format(value)] * len(labels))[n]}"
            body.append(
                f'<rect x="{x0 + k * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" rx="2" fill="{fill}">'
                f"<title>{escape(tip)}</title></rect>"
            )
        if n % label_every == 0:
            body.append(
                _text(
                    left + n * slot + slot / 2,
                    height - 8,
                    label,
                    size=11,
                    fill=MUTED,
                    anchor="middle",
                )
            )
    return _svg(width, height, body, title)


def line_chart(
    labels: list[str],
    series: list[dict],
    *,
    title: str,
    width: int = 1150,
    height: int = 260,
    label_every: int = 1,
    y_format=money_short,
):
    """Lines over shared x labels. Series: name, values (float or None for no point), color,
    dashed (bool), width."""
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([float(v) for s in series for v in s["values"] if v is not None] + [0.0])
    ticks = nice_ticks(peak)
    scale = plot_h / ticks[-1]
    body = _grid(ticks, scale, left, width - right, top + plot_h, y_format)
    step = plot_w / max(len(labels) - 1, 1)
    for k, s in enumerate(series):
        points = [
            (left + n * step, top + plot_h - float(v) * scale)
            for n, v in enumerate(s["values"])
            if v is not None
        ]
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 5"' if s.get("dashed") else ""
        stroke = s.get("color") or color(k)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{stroke}" '
            f'stroke-width="{s.get("width", 2.5)}" stroke-linejoin="round" stroke-linecap="round"{dash}>'
            f"<title>{escape(s['name'])}</title></polyline>"
        )
        if s.get("end_dot"):
            x, y = points[-1]
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{stroke}"/>')
    for n, label in enumerate(labels):
        if n % label_every == 0 or n == len(labels) - 1:
            body.append(
                _text(left + n * step, height - 8, label, size=11, fill=MUTED, anchor="middle")
            )
    return _svg(width, height, body, title)


def _grid(ticks, scale, x0, x1, base, y_format) -> list[str]:
    body = []
    for tick in ticks:
        y = base - tick * scale
        body.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(x0 - 8, y + 4, y_format(tick), size=11, fill=MUTED, anchor="end"))
    return body


def percent(value: Decimal, places: int = 0) -> str:
    return f"{float(value) * 100:.{places}f} %"


def donut_chart(
    items: list[dict], *, title: str, width: int = 545, center: str = "", sub: str = ""
):
    """A ring split by item (label, value, display, color) with its legend on the right."""
    if not any(float(i["value"]) for i in items):
        return _svg(width, 40, [_text(0, 24, "Nothing this month.", fill=MUTED)], title)
    radius, ring, cx = 82, 26, 100
    height = max(2 * radius + 24, 24 * len(items) + 16)
    cy = height / 2
    total = sum(float(i["value"]) for i in items) or 1.0
    body, angle = [], -math.pi / 2
    for n, item in enumerate(items):
        sweep = float(item["value"]) / total * 2 * math.pi
        fill = item.get("color") or color(n)
        tip = f"<title>{escape(item['label'])}: {escape(item['display'])}</title>"
        if sweep >= 2 * math.pi - 1e-6:
            body.append(
                f'<circle cx="{cx}" cy="{cy}" r="{radius - ring / 2}" fill="none" '
                f'stroke="{fill}" stroke-width="{ring}">{tip}</circle>'
            )
        elif sweep > 0:
            end = angle + sweep
            x1, y1 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
            x2, y2 = cx + radius * math.cos(end), cy + radius * math.sin(end)
            r2 = radius - ring
            x3, y3 = cx + r2 * math.cos(end), cy + r2 * math.sin(end)
            x4, y4 = cx + r2 * math.cos(angle), cy + r2 * math.sin(angle)
            large = 1 if sweep > math.pi else 0
            body.append(
                f'<path d="M{x1:.2f},{y1:.2f} A{radius},{radius} 0 {large} 1 {x2:.2f},{y2:.2f} '
                f'L{x3:.2f},{y3:.2f} A{r2},{r2} 0 {large} 0 {x4:.2f},{y4:.2f} Z" fill="{fill}" '
                f'stroke="#fff" stroke-width="1.5">{tip}</path>'
            )
        angle += sweep
    if center:
        body.append(_text(cx, cy + 4, center, size=20, anchor="middle", weight="650"))
    if sub:
        body.append(_text(cx, cy + 22, sub, size=11, fill=MUTED, anchor="middle"))
    top = cy - (24 * len(items)) / 2 + 16
    for n, item in enumerate(items):
        y = top + n * 24
        fill = item.get("color") or color(n)
        body.append(f'<rect x="215" y="{y - 10:.1f}" width="12" height="12" rx="3" fill="{fill}"/>')
        body.append(_text(235, y, item["label"], size=13))
        body.append(_text(width - 4, y, item["display"], size=13, anchor="end", weight="600"))
    return _svg(width, height, body, title)
