"""Latency over time for the soak report: per second, the median, the 99th percentile and
the maximum latency of the answered requests (log scale), with the fault windows shaded and
the reloads marked. Drawn as SVG by hand (no plotting library is needed), then rendered to
PNG by librsvg's `rsvg-convert` (Debian's librsvg2-bin, which `make test` and `make soak` install)."""

import math
import shutil
import subprocess
from pathlib import Path

COLOURS = {"redis_kill": "#f4a3a3", "redis_pause": "#f7c98b", "upstream_slow": "#b9d7f0", "upstream_reset": "#c9b6e4",
           "upstream_kill": "#a8d8b9"}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_svg(path: Path, records, events, load_started, seconds) -> None:
    bins = {}
    for rec in records:
        if rec[6] == -1:
            continue
        second = int(rec[4] - load_started)
        bins.setdefault(second, []).append((rec[5] - rec[4]) * 1000.0)
    width, height, left, right, top, bottom = 1100, 420, 60, 170, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = math.log10(0.5), math.log10(20000.0)

    def x(t):
        return left + plot_w * max(0.0, min(1.0, t / seconds))

    def y(ms):
        return top + plot_h * (1 - (math.log10(max(0.5, min(ms, 20000.0))) - lo) / (hi - lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">Latency over time (ms, log scale): p50, p99, max per second; '
           'shaded: fault windows; dashed: reloads</text>']
    for kind, start, end, _ in events:
        if kind in COLOURS:
            x0, x1 = x(start - load_started), x(end - load_started)
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" height="{plot_h}" '
                       f'fill="{COLOURS[kind]}" opacity="0.7"><title>{kind}</title></rect>')
        elif kind.startswith("reload"):
            xr = x(start - load_started)
            colour = "#c00" if kind == "reload_invalid" else "#888"
            out.append(f'<line x1="{xr:.1f}" y1="{top}" x2="{xr:.1f}" y2="{top + plot_h}" stroke="{colour}" '
                       'stroke-dasharray="3,3"/>')
    for ms in (1, 10, 100, 1000, 10000):
        out.append(f'<line x1="{left}" y1="{y(ms):.1f}" x2="{left + plot_w}" y2="{y(ms):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms}</text>')
    step = 10 if seconds <= 120 else 60
    for t in range(0, int(seconds) + 1, step):
        out.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{t}s</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    for name, q, colour in (("p50", 0.5, "#1f77b4"), ("p99", 0.99, "#ff7f0e"), ("max", 1.0, "#d62728")):
        points = " ".join(f"{x(s + 0.5):.1f},{y(percentile(v, q)):.1f}" for s, v in sorted(bins.items()))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    legend = [("p50", "#1f77b4"), ("p99", "#ff7f0e"), ("max", "#d62728")] + list(COLOURS.items())
    for i, (name, colour) in enumerate(legend):
        ly = top + 10 + i * 18
        out.append(f'<rect x="{left + plot_w + 15}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{left + plot_w + 32}" y="{ly + 1}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def render_png(svg: Path, png: Path) -> None:
    """Renders the SVG to PNG with rsvg-convert; raises when the tool is missing or fails, so a
    report never silently lacks its picture."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        raise RuntimeError("rsvg-convert not found: install Debian's librsvg2-bin (make soak does)")
    subprocess.run([tool, "--format", "png", "--output", str(png), str(svg)], check=True, timeout=60,
                   capture_output=True)
