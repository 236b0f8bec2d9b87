"""What Teach Styles buys on the taught styles, and what it costs on everything else.

Runs the app's own teaching job (:func:`app.teach.pipeline.teach`: measure, fine-tune, export,
measure, as trainer child processes) on ``--groups`` groups of a manifest, one per source where the
manifest has a ``source`` column, so the taught styles are as unlike each other as the set allows.
The job reports P@1 / mAP on the seeded held-out quarter of those groups, before and after. A
user's library holds more than the styles they teach, so the script then scores the base model and
the taught one on the manifest's *other* groups (``python -m trainer eval --split all``): the
general search quality that teaching must not spend.

    python bench/teach_gain.py data/corpus-new/manifest.csv --groups 8 --seeds 1,2,3 \
        --report runs/teach-gain.json

Each seed draws other groups; the JSON holds every run and the means.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.teach.groups import FOLDER, Group  # noqa: E402
from app.teach.pipeline import DEFAULT_STEPS, TeachPlan, teach, trainer_command  # noqa: E402
from core.modelfile import DEFAULT_MODEL  # noqa: E402
from trainer.manifest import Sample, read_manifest, write_manifest  # noqa: E402

MIN_IMAGES = 16


def choose_groups(rows: list[Sample], count: int, seed: int) -> list[str]:
    """``count`` groups of at least MIN_IMAGES images, no two from one source while sources last."""
    sizes: dict[str, int] = defaultdict(int)
    source: dict[str, str] = {}
    for row in rows:
        sizes[row.group] += 1
        source[row.group] = row.source or row.group
    candidates = sorted(g for g, n in sizes.items() if n >= MIN_IMAGES)
    random.Random(seed).shuffle(candidates)
    chosen: list[str] = []
    for group in candidates:
        if source[group] not in {source[c] for c in chosen}:
            chosen.append(group)
    chosen += [g for g in candidates if g not in chosen]
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} groups have {MIN_IMAGES} images or more; asked for {count}")
    return chosen[:count]


def general_figures(model: str, manifest: Path, report: Path) -> dict:
    """P@1 / mAP of ``model`` on ``manifest``, pooled and as the mean over its sources."""
    subprocess.run(trainer_command("eval", "--data", str(manifest), "--split", "all", "--workers", "0",
                                   "--model", model, "--report", str(report)),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = json.loads(report.read_text(encoding="utf-8"))
    out = {"P@1": data["metrics"]["P@1"], "mAP": data["metrics"]["mAP"]}
    if data.get("source_mean"):
        out["source P@1"] = data["source_mean"]["P@1"]
        out["source mAP"] = data["source_mean"]["mAP"]
    return out


def one_run(rows: list[Sample], args: argparse.Namespace, seed: int, work: Path) -> dict:
    chosen = choose_groups(rows, args.groups, seed)
    groups = [Group(name=g, kind=FOLDER, source=g, paths=sorted(r.path for r in rows if r.group == g))
              for g in chosen]
    folder = work / f"seed{seed}"
    folder.mkdir()
    plan = TeachPlan(groups=groups, base=args.model, base_name="base", name=f"taught{seed}", steps=args.steps,
                     device="cpu")
    job = teach(plan, folder, lambda: False)
    try:
        while True:
            next(job)
    except StopIteration as stop:
        outcome = stop.value
    rest = write_manifest(folder / "rest.csv", [r for r in rows if r.group not in set(chosen)], relative=False)
    run = {"seed": seed, "groups": chosen, "held_out_queries": outcome.before.queries,
           "taught before": {"P@1": outcome.before.p_at_1, "mAP": outcome.before.map},
           "taught after": {"P@1": outcome.after.p_at_1, "mAP": outcome.after.map},
           "others before": general_figures(args.model, rest, folder / "rest-before.json"),
           "others after": general_figures(str(outcome.model), rest, folder / "rest-after.json"),
           "seconds": outcome.seconds}
    print(json.dumps(run), flush=True)
    return run


def mean_of(runs: list[dict], key: str) -> dict:
    names = runs[0][key].keys()
    return {name: sum(r[key][name] for r in runs) / len(runs) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, help="CSV path,group[,source]")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="base model (default: the bundled one)")
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    rows = read_manifest(args.manifest)
    with tempfile.TemporaryDirectory(prefix="teach-gain-") as tmp:
        runs = [one_run(rows, args, int(seed), Path(tmp)) for seed in args.seeds.split(",")]
    summary = {key: mean_of(runs, key) for key in ("taught before", "taught after", "others before", "others after")}
    summary["seconds"] = sum(r["seconds"] for r in runs) / len(runs)
    for key, figures in summary.items():
        print(f"{key:14s}", figures if key == "seconds" else " ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    if args.report:
        args.report.write_text(json.dumps({"manifest": str(args.manifest), "model": args.model, "steps": args.steps,
                                           "runs": runs, "mean": summary}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
