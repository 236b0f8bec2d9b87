"""Soak test: the ``aladin`` command killed, starved, raced and fed damaged files, on a library it builds
from its own generated art; prints one row per case and exits 1 if any case failed.

Usage:
    .venv/bin/python bench/soak.py [--rounds 10] [--images 400] [--seconds-per-case 300] [--out DIR]
        [--keep] [--cases "bad arguments,two indexers"] [--seed 0]

Every case runs the real command line as child processes (the bundled model, on the CPU) and reads the
outcome back through ``core`` (``Library``: status, stored vectors, image paths), comparing searches
with exact search over the stored vectors and stored vectors with ``aladin embed``. What the columns
count is in :mod:`bench.soak_cases`. Each case stops at ``--seconds-per-case`` and kills whatever it
started; ``--out`` (default: a new temp folder) is removed at the end unless ``--keep``.

Linux only: leaked processes are found in /proc. Run as root, the read-only case drops to uid 65534
with ``setpriv``, since root ignores permission bits.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.soak_cases import CASES, EXIT_GRACE_S, PER_STYLE, CaseTimeout, Outcome, Soak  # noqa: E402

COLUMNS = ("case", "rounds", "pass/fail", "lost", "doubled", "mismatched", "leaked processes", "seconds")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="kill -9 rounds of indexing (half as many for search "
                                                          "and moodboards)")
    p.add_argument("--images", type=int, default=400, help="generated images in the base library")
    p.add_argument("--seconds-per-case", type=float, default=300.0, help="time limit of each case (and of setup)")
    p.add_argument("--out", type=Path, default=None, help="an empty or new folder (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the folder: libraries, art and every command's output")
    p.add_argument("--cases", default=None, help=f"comma-separated subset of: {', '.join(CASES)}")
    p.add_argument("--seed", type=int, default=0, help="seeds kill timing and the files moved")
    args = p.parse_args(argv)
    if args.cases is not None:
        args.cases = [c.strip() for c in args.cases.split(",")]
        unknown = [c for c in args.cases if c not in CASES]
        if unknown:
            p.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    if args.rounds < 1 or args.images < 2 * PER_STYLE:
        p.error(f"--rounds must be at least 1 and --images at least {2 * PER_STYLE} (two styles)")
    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        p.error(f"{args.out} is not empty; the soak removes its folder at the end")
    return args


def run_case(soak: Soak, name: str, seconds: float) -> tuple[Outcome, float]:
    """One case within its time; an error in the soak itself fails the case with its traceback."""
    outcome = Outcome()
    start = time.monotonic()
    soak.begin(seconds)
    try:
        CASES[name](soak, outcome)
    except CaseTimeout as exc:
        outcome.problems.append(f"{exc} after {seconds:.0f} s")
    except Exception:
        outcome.problems.append("the soak itself failed:\n" + traceback.format_exc())
    finally:
        soak.cleanup()
    outcome.leaked += len(soak.leaked)
    outcome.problems += [f"still running {EXIT_GRACE_S:.0f} s after its parent ended: {cmd}" for cmd in soak.leaked]
    return outcome, time.monotonic() - start


def verdict(o: Outcome) -> str:
    return f"skip ({o.skipped})" if o.skipped else "pass" if o.passed else "FAIL"


def table(rows: list[tuple[str, Outcome, float]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, o, seconds in rows:
        lines.append(f"| {name} | {o.rounds} | {verdict(o)} | {o.lost} | {o.doubled} | {o.mismatched} | {o.leaked} "
                     f"| {seconds:.1f} |")
    return "\n".join(lines)


def details(rows: list[tuple[str, Outcome, float]]) -> str:
    """Problems of failed cases, then what the others noted."""
    out = []
    for name, o, _ in rows:
        out += [f"- {name}: PROBLEM: {p}" for p in o.problems]
    for name, o, _ in rows:
        out += [f"- {name}: {n}" for n in o.notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="aladin-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    soak = Soak(out.resolve(), args.images, args.rounds, args.seed)
    start = time.monotonic()
    rows: list[tuple[str, Outcome, float]] = []
    try:
        soak.begin(args.seconds_per_case)
        try:
            soak.setup()
        except (CaseTimeout, RuntimeError) as exc:
            print(f"soak: setup failed: {exc}", file=sys.stderr)
            return 1
        setup_s = time.monotonic() - start
        for name in args.cases or CASES:
            outcome, seconds = run_case(soak, name, args.seconds_per_case)
            rows.append((name, outcome, seconds))
            print(f"{name}: {verdict(outcome)} ({seconds:.1f} s)", file=sys.stderr, flush=True)
    finally:
        soak.cleanup()
        if args.keep:
            print(f"kept {out}", file=sys.stderr)
        else:
            shutil.rmtree(out, ignore_errors=True)
    print(table(rows))
    print(f"\n{args.images} images, {args.rounds} kill rounds; setup {setup_s:.1f} s, "
          f"wall time {time.monotonic() - start:.1f} s\n")
    print(details(rows))
    return 1 if any(not o.passed and not o.skipped for _, o, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
