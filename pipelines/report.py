"""Statistics report of a MOS study: scores, CIs, screening, subject models, tests, pairs, correlations.

    python -m pipelines.report (--db URL --study NAME | [--ratings-csv FILE] [--pairs-csv FILE])
        [--metrics-csv FILE] --out DIR [--bootstrap 2000] [--seed 0] [--quiet]
        [--plan [--plan-difference 0.3] [--plan-bt-difference 0.5] [--plan-power 0.8] [--plan-alpha 0.05]
         [--plan-sims 300]]

CSV input (at least one rating file): ACR ``rater,method,image,score``, pairs
``rater,image,method_a,method_b,choice`` (choice a, b or tie), optional columns ``dataset,response_ms,
role,repeat,trial``; metrics ``method,image,<metric>...``. See :mod:`srkeras.mos.schema`.
Writes ``summary.json``, ``stimuli.csv``, ``raters.csv``, ``methods.csv``, ``pairs.csv`` and a
self-contained ``report.html`` to ``--out``. With metrics (``--metrics-csv``, or those a study stored:
``prepare_study --metric``), ``summary.json``'s ``metric_ranking``, ``metric_ranking.csv`` and a report
section rank them by how well they agree with MOS (lower-is-better metrics sign-flipped), i.e. which
metric would have replaced the survey best. With ``--db``, ``--metrics-csv`` adds its columns to the
stored ones; on a shared column the file wins (a one-line notice on stderr says so). Metric columns
named like the report's own (``mos``, ``n``...) are refused. ``--db`` must name an existing MOS
database (a mistyped SQLite path is never created) and ``--out`` a folder that can be written; both are
checked before the analysis, and every file is written atomically (no empty ``report.html``).
With ``--plan`` the ratings are a pilot study and no report is written: instead ``plan.json`` and
``plan.csv`` (and a table on stdout) say how many raters (votes per stimulus) and images an ACR study,
and how many answers per method pair a pair study, need to detect a MOS difference of
``--plan-difference`` (a Bradley-Terry difference of ``--plan-bt-difference``) with power
``--plan-power`` at ``--plan-alpha``, by simulation from the pilot's fitted subject model
(:mod:`srkeras.mos.planner`, which names the test).
Exit codes: 0 ok, 2 bad input (the message names the file and line, the database or --out),
1 a write that failed part way (e.g. disk full).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srkeras.files import destination_problem, write_atomically, write_error
from srkeras.mos import analyze, read_acr_csv, read_metrics_csv, read_pairs_csv
from srkeras.mos.files import RATER_COLS, STIMULI_COLS, report_files
from srkeras.mos.pseudonyms import rename_study
from srkeras.mos.schema import merge_metrics, validate_frames
from srkeras.mos.scores import N_BOOT

__all__ = ["RATER_COLS", "STIMULI_COLS", "load", "main", "parse_args", "write"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", help="database URL (with --study)")
    p.add_argument("--study", help="study name in --db")
    p.add_argument("--ratings-csv", type=Path, help="ACR votes: rater,method,image,score[,...]")
    p.add_argument("--pairs-csv", type=Path, help="pair votes: rater,image,method_a,method_b,choice[,...]")
    p.add_argument("--metrics-csv", type=Path, help="objective metrics: method,image,<metric>...")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--bootstrap", type=int, default=N_BOOT, help=f"bootstrap replicates (default {N_BOOT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--plan", action="store_true", help="plan a study from this pilot (no report)")
    p.add_argument("--plan-difference", type=float, default=0.3, help="MOS difference to detect (default 0.3)")
    p.add_argument("--plan-bt-difference", type=float, default=0.5,
                   help="Bradley-Terry (log-odds) difference to detect in pair studies (default 0.5)")
    p.add_argument("--plan-power", type=float, default=0.8, help="power to reach (default 0.8)")
    p.add_argument("--plan-alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    p.add_argument("--plan-sims", type=int, default=300, help="simulated studies per design (default 300)")
    a = p.parse_args(argv)
    if a.db or a.study:
        if not (a.db and a.study):
            p.error("--db and --study go together")
        if a.ratings_csv or a.pairs_csv:
            p.error("give either --db/--study or CSV rating files, not both")
    elif not (a.ratings_csv or a.pairs_csv):
        p.error("give --db URL --study NAME, or at least one of --ratings-csv / --pairs-csv")
    if a.bootstrap < 100:
        p.error("--bootstrap must be >= 100")
    if not (0 < a.plan_power < 1 and 0 < a.plan_alpha < 1 and a.plan_difference > 0 and a.plan_bt_difference > 0
            and a.plan_sims >= 50):
        p.error("--plan-power and --plan-alpha must be in (0, 1), the differences > 0 and --plan-sims >= 50")
    return a


def load(a):
    """(acr, pairs, metrics, completed) validated frames from the CSV files or the database.

    ``completed`` (``{rater: finished}``, for the ``incomplete`` screening rule) is known for a database
    study only; its raters are named by pseudonym (``rater-01``..., :mod:`srkeras.mos.pseudonyms`),
    never by token. CSV raters keep the names their file gives. With ``--db``, ``--metrics-csv`` is merged into the study's stored metrics (the file
    wins on a shared column, with a notice on stderr).
    """
    acr = read_acr_csv(a.ratings_csv) if a.ratings_csv else None
    pairs = read_pairs_csv(a.pairs_csv) if a.pairs_csv else None
    given = read_metrics_csv(a.metrics_csv, on_ignored=lambda cols: print(
        f"note: {a.metrics_csv}: ignoring non-numeric column(s) {', '.join(cols)}", file=sys.stderr)) if a.metrics_csv else None
    if not a.db:
        return acr, pairs, given, None
    from db import open_database, rater_completion, rating_frames  # lazy: only the DB branch needs SQLAlchemy

    db = open_database(a.db, migrate=False, must_exist=True)  # read-only use: never create nor migrate
    try:
        acr, pairs, stored = validate_frames(*rating_frames(db, a.study), f"study {a.study!r}")
        acr, pairs, completed = rename_study(acr, pairs, rater_completion(db, a.study))  # tokens stay in the DB
    finally:
        db.close()
    metrics, replaced = merge_metrics(stored, given)
    if replaced:
        print(f"note: {a.metrics_csv} replaces the stored metric column(s) {', '.join(replaced)}", file=sys.stderr)
    return acr, pairs, metrics, completed


def write(rep, out: Path, title: str) -> None:
    """All report files into ``out`` (CSV cells spreadsheet-safe, see :mod:`srkeras.mos.files`), each
    atomically: a failed write leaves the previous file or none, never a partial or empty one."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in report_files(rep, title).items():
        write_atomically(out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))


def _input_error(e: Exception) -> bool:
    """Bad input said in one line: a rating file, the analysis's refusal, or the database (``db.MosError``)."""
    if isinstance(e, ValueError):
        return True
    from db import MosError  # lazy, as in load(): only the DB branch needs SQLAlchemy

    return isinstance(e, MosError)


def main(argv=None) -> int:
    a = parse_args(argv)
    problem = destination_problem(a.out, folder=True)  # before minutes of bootstrap, not after
    if problem:
        print(f"error: --out {problem}", file=sys.stderr)
        return 2
    if a.plan:
        return _plan(a)
    try:
        acr, pairs, metrics, completed = load(a)
        rep = analyze(acr, pairs, metrics, n_boot=a.bootstrap, seed=a.seed, progress=not a.quiet, completed=completed)
    except Exception as e:
        if not _input_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    title = a.title or (f"MOS report: {a.study}" if a.study else "MOS report")
    try:
        write(rep, a.out, title)
    except OSError as e:
        print(f"error: {write_error(a.out, e)}", file=sys.stderr)
        return 1
    n = rep.counts
    print(f"wrote {a.out}: {n.get('acr_votes', 0)} ACR + {n.get('pair_votes', 0)} pair votes, "
          f"{n.get('raters', 0)} raters ({n.get('rejected', 0)} rejected)")
    return 0


def _plan(a) -> int:
    """``--plan``: the planner's table on stdout, ``plan.json`` and ``plan.csv`` in ``--out``."""
    from srkeras.mos.planner import plan_files

    try:
        acr, pairs, _, _ = load(a)
        files, text = plan_files(acr, pairs, d=a.plan_difference, delta=a.plan_bt_difference, power=a.plan_power,
                                 alpha=a.plan_alpha, n_sim=a.plan_sims, seed=a.seed)
    except Exception as e:
        if not _input_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        a.out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_atomically(a.out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    except OSError as e:
        print(f"error: {write_error(a.out, e)}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
