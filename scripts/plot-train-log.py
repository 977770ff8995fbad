#!/usr/bin/env python3
"""Plots a tpdiff-train log (train_log.csv) as an SVG: loss per stage, smoothed, against clips
seen. Standard library only.  usage: plot-train-log.py LOG.csv OUT.svg [TITLE]"""
import csv
import math
import sys


def main():
    log, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else log
    rows = list(csv.DictReader(open(log)))
    series = {}
    for r in rows:
        series.setdefault(int(r["stage"]), []).append((int(r["clips"]), float(r["loss"])))
    w, h, left, bottom, top, right = 720, 360, 60, 40, 40, 120
    max_clips = max(int(r["clips"]) for r in rows)
    lo, hi = math.log10(1e-3), math.log10(0.5)
    def xy(c, l):
        x = left + (w - left - right) * c / max_clips
        y = top + (h - top - bottom) * (hi - math.log10(max(l, 1e-3))) / (hi - lo)
        return x, y
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="24" font-size="15" font-weight="bold">{title}</text>']
    for decade in (1e-3, 1e-2, 1e-1):
        _, y = xy(0, decade)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w-right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left-8}" y="{y+4:.1f}" text-anchor="end">{decade:g}</text>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        x, _ = xy(max_clips * frac, 1e-3)
        parts.append(f'<text x="{x:.1f}" y="{h-bottom+16}" text-anchor="middle">{int(max_clips*frac/1000)}k</text>')
    parts.append(f'<text x="{(w-right+left)/2}" y="{h-6}" text-anchor="middle">clips seen</text>')
    colors = {1: "#4C78A8", 2: "#F58518", 3: "#54A24B", 4: "#E45756", 5: "#72B7B2"}
    for i, (stage, pts) in enumerate(sorted(series.items())):
        smooth, ema = [], None
        for c, l in pts:
            ema = l if ema is None else 0.95 * ema + 0.05 * l
            smooth.append(xy(c, ema))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in smooth)
        parts.append(f'<polyline fill="none" stroke="{colors.get(stage, "#333")}" stroke-width="1.6" points="{path}"/>')
        parts.append(f'<text x="{w-right+10}" y="{top+20+18*i}" fill="{colors.get(stage, "#333")}">stage {stage} loss</text>')
    parts.append("</svg>")
    open(out, "w").write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
