"""Answers a pair study needs under balanced and active sampling (issue 20), by simulation.

    python -m benchmarks.bench_active_sampling [--seeds 40] [--images 6] [--answers 40 60 80 100 ...]
        [--strength -4 -2 0 0.4 0.8 1.2 2 4] [--markdown] [--svg docs/active_sampling.svg]
    python -m benchmarks.bench_active_sampling --acr [--seeds 40]

Simulated Bradley-Terry raters (P(i beats j) = 1 / (1 + exp(s_j - s_i))) answer a pair study of the
methods of ``--strength`` (default: 8 methods, the anchors far out, four test methods 0.4 apart) on
``--images`` images (:func:`srkeras.mos.active.simulate_sampling`). Accuracy is Kendall's tau between the
true order and the pooled Bradley-Terry fit (the report's), averaged over ``--seeds`` fixed seeds, per
number of answers, for: ``balanced`` (the default assignment's cyclic Latin order), ``active`` (the
default criterion, one rater at a time), ``active x4`` (four raters choosing at once, each seeing the
others' open comparisons: a stale choice) and ``ASAP eig`` (the reference criterion). The last lines say
how many answers each needs to reach balanced sampling's accuracy at its largest and half-largest counts.
``--acr``: votes an ACR study needs until every MOS 95 % half-width is <= 0.3, balanced against adaptive.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

DEFAULT_STRENGTH = (-4.0, -2.0, 0.0, 0.4, 0.8, 1.2, 2.0, 4.0)
DEFAULT_ANSWERS = (40, 60, 80, 100, 120, 160, 200, 300, 400)
#: (label, sampling, parallel raters, criterion)
ARMS = (("balanced", "balanced", 1, "order"), ("active", "active", 1, "order"),
        ("active x4", "active", 4, "order"), ("ASAP eig", "active", 1, "eig"))


def curves(strength, images: int, answers, seeds: int) -> dict[str, np.ndarray]:
    """{arm label: (seeds, len(answers)) Kendall taus}."""
    from srkeras.mos.active import simulate_sampling

    out = {}
    for label, sampling, parallel, criterion in ARMS:
        t = time.perf_counter()
        out[label] = np.array([simulate_sampling(strength, images, list(answers), sampling, seed=k,
                                                 parallel=parallel, criterion=criterion) for k in range(seeds)])
        print(f"# {label}: {time.perf_counter() - t:.0f} s", flush=True)
    return out


def needed(taus: np.ndarray, answers, level: float) -> int | None:
    """Fewest answers (of ``answers``) whose mean tau reaches ``level``; None if none does."""
    mean = taus.mean(0)
    hit = [n for n, m in zip(answers, mean) if m >= level - 1e-12]
    return hit[0] if hit else None


def table(res: dict[str, np.ndarray], answers, markdown: bool) -> list[str]:
    labels = list(res)
    if markdown:
        lines = ["| answers | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
        for k, n in enumerate(answers):
            cells = [f"{res[x][:, k].mean():.3f} ± {res[x][:, k].std(ddof=1) / np.sqrt(len(res[x])):.3f}" for x in labels]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    else:
        lines = [f"{'answers':>8}" + "".join(f"{x:>16}" for x in labels)]
        for k, n in enumerate(answers):
            lines.append(f"{n:>8}" + "".join(f"{res[x][:, k].mean():>16.3f}" for x in labels))
    bal = res["balanced"].mean(0)
    for n in (answers[-1], answers[len(answers) // 2]):
        level = bal[list(answers).index(n)]
        need = {x: needed(res[x], answers, level) for x in labels if x != "balanced"}
        lines.append(f"balanced after {n} answers: tau {level:.3f}; reached by "
                     + ", ".join(f"{x} after {v if v is not None else '>' + str(answers[-1])}" for x, v in need.items()))
    return lines


COLORS = ("#444444", "#1a9641", "#a6d96a", "#d7191c")


def line_chart(answers, means: dict[str, list[float]], title: str) -> str:
    """An inline SVG: mean Kendall tau against answers (log2 x axis), one line per arm."""
    w, h, left, right, top, bottom = 560, 320, 50, 130, 30, 40
    xs = np.log2(np.asarray(answers, float))
    lo = min(min(v) for v in means.values())
    lo = np.floor(lo * 20) / 20
    sx = lambda a: left + (np.log2(a) - xs[0]) / (xs[-1] - xs[0]) * (w - left - right)  # noqa: E731
    sy = lambda t: top + (1.0 - t) / (1.0 - lo) * (h - top - bottom)  # noqa: E731
    parts = [f'<text x="{left}" y="18" font-family="sans-serif" font-size="13" font-weight="bold">{title}</text>']
    for t in np.arange(lo, 1.0001, 0.05):
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" font-family="sans-serif" font-size="11" '
                     f'text-anchor="end">{t:.2f}</text>')
    for a in answers:
        parts.append(f'<text x="{sx(a):.1f}" y="{h - bottom + 16}" font-family="sans-serif" font-size="11" '
                     f'text-anchor="middle">{a}</text>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 6}" font-family="sans-serif" font-size="11" '
                 'text-anchor="middle">answers (log scale)</text>')
    for k, (label, m) in enumerate(means.items()):
        pts = " ".join(f"{sx(a):.1f},{sy(t):.1f}" for a, t in zip(answers, m))
        c = COLORS[k % len(COLORS)]
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        parts.append(f'<text x="{w - right + 8}" y="{top + 16 * k + 10}" font-family="sans-serif" font-size="12" '
                     f'fill="{c}">{label}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
            + "".join(parts) + "</svg>\n")


def acr_votes_needed(sd, quality, target: float, min_votes: int, adaptive: bool, seed: int) -> int:
    """Votes until every stimulus's Student-t 95 % MOS half-width is <= ``target`` (at least ``min_votes``
    each): ``adaptive`` gives the next vote to the widest interval (as ``--sampling adaptive``),
    otherwise every stimulus gets one more vote per round (balanced). Votes: clip(round(q + N(0, sd)), 1, 5)."""
    from srkeras.mos.active import mos_half_width

    rng = np.random.default_rng(seed)
    votes: list[list[float]] = [[] for _ in sd]

    def vote(i):
        votes[i].append(float(np.clip(np.rint(quality[i] + rng.normal(0, sd[i])), 1, 5)))

    def widths():
        n = np.array([len(v) for v in votes])
        s = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in votes])
        return np.where(n < min_votes, np.inf, mos_half_width(n, s))

    while (w := widths()).max() > target:
        for i in ([int(np.argmax(w))] if adaptive else range(len(sd))):
            vote(i)
    return sum(len(v) for v in votes)


def acr_table(seeds: int, target: float = 0.3) -> list[str]:
    """Votes to reach ``target`` on 8 methods x 6 images (anchors sd 0.5, test methods sd 0.6-1.1)."""
    rng = np.random.default_rng(1234)
    quality = np.repeat([1.2, 1.8, 2.3, 2.6, 2.9, 3.3, 3.7, 4.4], 6) + rng.normal(0, 0.2, 48)
    sd = np.repeat([0.5, 0.6, 0.8, 0.9, 1.0, 1.1, 0.9, 0.5], 6)
    res = {a: [acr_votes_needed(sd, quality, target, 5, a, k) for k in range(seeds)] for a in (False, True)}
    return [f"ACR, 48 stimuli, target half-width {target}: balanced {np.mean(res[False]):.0f} votes, "
            f"adaptive {np.mean(res[True]):.0f} votes ({np.mean(res[True]) / np.mean(res[False]):.0%})"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_active_sampling", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--answers", type=int, nargs="+", default=list(DEFAULT_ANSWERS))
    p.add_argument("--strength", type=float, nargs="+", default=list(DEFAULT_STRENGTH))
    p.add_argument("--markdown", action="store_true", help="a Markdown table (mean ± standard error)")
    p.add_argument("--svg", help="also write the curves as an SVG chart to this file")
    p.add_argument("--acr", action="store_true", help="only the ACR table: votes to a target half-width 0.3")
    a = p.parse_args(argv)
    answers = sorted(set(a.answers))
    if a.acr:
        print("\n".join(acr_table(a.seeds)))
        return 0
    print(f"# {len(a.strength)} methods (BT strengths {a.strength}), {a.images} images, {a.seeds} seeds")
    res = curves(a.strength, a.images, answers, a.seeds)
    print("\n".join(table(res, answers, a.markdown)))
    if a.svg:
        title = f"Kendall tau to the true order ({len(a.strength)} methods, {a.images} images, {a.seeds} seeds)"
        with open(a.svg, "w", encoding="utf-8") as f:
            f.write(line_chart(answers, {k: list(v.mean(0)) for k, v in res.items()}, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
