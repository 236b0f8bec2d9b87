"""``python -m trainer crossval``: leave-one-source-out, the out-of-domain measure of issue 10.

A group split shares every source between training and test, so its P@1 says
how well a model knows the sources it trained on. Here each fold holds one
source S out entirely: it trains on every other source but a validation
source V, keeps ``best.pt`` by P@1 on V, and evaluates on S alone as the
gallery (:func:`trainer.evaluate.evaluate` with ``--sources S``) three
subjects: the trained model, the HSV colour histogram, and the untrained
network at the model's input size. A model that learned style beats both
baselines on S; one that learned its sources does not.

Validation: V is the source after S in the sorted list of the manifest's
sources (wrapping round). A third unseen source, rather than a group split of
the training sources, makes early stopping and the best checkpoint reward what
carries to unseen art, which is what the fold measures; an in-domain split
rewards the source-specific shortcuts (a game's palette, a wallpaper set's
photographs) that S cannot. Rotating V instead of fixing one keeps every
source in training for all but two folds, and in a full run makes each
source the validation set of exactly one fold.

Each fold's run lives in ``OUT/<source>/``. A fold with ``fold.json`` is done
and is neither trained nor evaluated again; an unfinished one resumes from its
``last.pt``; so an interrupted crossval continues where it stopped. The report,
every fold and the unweighted mean over folds, is ``OUT/report.json``.

``--model MODEL`` trains nothing: it evaluates an existing model source by
source against the same baselines. That is how the shipped model is measured
out of domain, on sources it never saw (it trained on every corpus source, so
on the corpus itself these figures are in-domain).

Checkpoints and the untrained network are standardised with statistics fitted
on S's own codes (``eval --standardise auto``), as validation does; a model
file uses its own statistics, as the app does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from core.files import write_text_atomic
from core.modelfile import BUILTINS
from trainer.errors import DataError
from trainer.evaluate import add_data_arguments, add_subject_arguments, evaluate, load_subject
from trainer.manifest import at_consensus, read_manifest
from trainer.metrics import mean_over
from trainer.splits import of_sources, source_names
from trainer.train import Trainer, add_options, changed_settings, config_dict

SUBJECTS = ("model", "colour", "untrained")
# Options crossval sets for every fold itself; a copy among the training options would be ambiguous.
RESERVED = ("--data", "--out", "--val-sources", "--test-sources", "--resume", "--max-minutes", "--consensus",
            "--device", "--workers")
REPORT = "report.json"
FOLD = "fold.json"
DESCRIPTION = """\
Leave-one-source-out: for each source S, train on every other source except a validation
source V (the next source in sorted order), early-stop on V, and evaluate on S alone: the
model, the colour histogram and the untrained network. Options after -- go to every fold's
`train` (e.g. -- --input-size 96 --groups-per-batch 64 --steps 3000). Fold runs live in
OUT/<source>/ and a rerun skips finished folds; the report is OUT/report.json. With --model,
nothing is trained: that model is evaluated source by source against the same baselines."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossval", help="leave-one-source-out: out-of-domain P@k against colour and untrained",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST",
                   help="manifest CSV with a source column (e.g. data/corpus/manifest.csv)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="fold run folders and report.json")
    p.add_argument("--sources", type=source_names, default=None, metavar="A,B",
                   help="folds for these sources only (default: every source); the others still train")
    p.add_argument("--minutes-per-fold", type=float, default=0, metavar="MIN",
                   help="stop each fold's training after this long (train --max-minutes; 0: no limit)")
    p.add_argument("--model", default=None, metavar="PATH|NAME",
                   help="train nothing: evaluate this model file or checkpoint source by source")
    p.add_argument("--consensus", type=int, default=None, metavar="N", help="BAM-FG-C_N rows only")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=None, help="decoding processes (0: in-process)")
    p.add_argument("train_options", nargs="*", metavar="-- TRAIN_OPTIONS",
                   help="options for every fold's train, after -- (crossval itself sets " + ", ".join(RESERVED) + ")")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = crossval(args)
    print(f"{'source':<16} {'model P@1':>9} {'colour':>7} {'untrained':>9}   {'model mAP':>9} {'colour':>7} "
          f"{'untrained':>9}")
    for row in [*report["folds"], {"source": "mean", **report["mean"]}]:
        p1 = "".join(f" {row[s]['P@1']:>{w}.3f}" for s, w in zip(SUBJECTS, (9, 7, 9)))
        ap = "".join(f" {row[s]['mAP']:>{w}.3f}" for s, w in zip(SUBJECTS, (9, 7, 9)))
        print(f"{row['source']:<16}{p1}  {ap}")
    print(f"report: {args.out / REPORT}")
    return 0


def crossval(args: argparse.Namespace) -> dict:
    """Run (or resume) every fold and write the report.

    Raises:
        DataError: no source column, an unknown source, training options that
            crossval sets itself, or a fold folder trained with other settings.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DataError("crossval runs its folds one after another in one process; start it without torchrun")
    samples = at_consensus(read_manifest(args.data), args.consensus)
    sources = sorted({s.source for s in samples} - {""})
    if not sources:
        raise DataError(f"{args.data}: no source column; crossval holds out whole sources")
    folds = sorted(set(args.sources)) if args.sources else sources
    of_sources(samples, folds)  # an unknown name is an error, not an empty fold
    report: dict = {"data": str(args.data), "consensus": args.consensus}
    if args.model is not None:
        if args.train_options:
            raise DataError("--model evaluates an existing model; drop the training options after --")
        model = load_subject(args.model)
        untrained = _untrained(model.info.config.variant)
        rows = [{"source": s, **_measure(args, s, args.model, untrained, model.info.config.input_size)}
                for s in folds]
        report.update(mode="model", model=args.model)
    else:
        if len(sources) < 2:
            raise DataError(f"{args.data} has one source; a fold needs another to validate on")
        rows = [_fold(args, s, sources[(sources.index(s) + 1) % len(sources)]) for s in folds]
        report.update(mode="train", train_options=args.train_options, minutes_per_fold=args.minutes_per_fold,
                      validation="the next source in sorted order, held out of training")
    report["folds"] = rows
    report["mean"] = {subject: mean_over([r[subject] for r in rows]) for subject in SUBJECTS}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / REPORT, json.dumps(report, indent=1))
    return report


def _untrained(variant: str) -> str:
    name = f"untrained-{variant}"
    if name not in BUILTINS:
        raise DataError(f"crossval compares with the untrained ALADIN network; a {variant} model has none")
    return name


def fold_folder(out: Path, source: str) -> Path:
    return out / re.sub(r"[^\w.-]", "_", source)


def _fold(args: argparse.Namespace, source: str, val_source: str) -> dict:
    """Train (or resume) the fold that holds ``source`` out, then measure it; a finished fold is read back."""
    folder = fold_folder(args.out, source)
    train_args = fold_train_args(args, folder, source, val_source)
    if (folder / "config.json").is_file():
        changed = changed_settings(json.loads((folder / "config.json").read_text()), config_dict(train_args))
        if changed:
            raise DataError(f"{folder} holds a fold trained with other settings ({', '.join(changed)}); "
                            "use a new --out")
    if (folder / FOLD).is_file():
        return json.loads((folder / FOLD).read_text())
    if not (folder / "summary.json").is_file():
        print(f"crossval: {source}: training without it, validating on {val_source}", file=sys.stderr)
        train_args.resume = "auto" if (folder / "last.pt").is_file() else None
        Trainer(train_args).fit()
    summary = json.loads((folder / "summary.json").read_text())
    checkpoint = folder / "best.pt" if (folder / "best.pt").is_file() else folder / "last.pt"
    row = {"source": source, "val_source": val_source, "run": str(folder), "checkpoint": checkpoint.name,
           "steps": summary["steps"], "best": summary["best"],
           **_measure(args, source, str(checkpoint), _untrained(train_args.variant), train_args.input_size)}
    write_text_atomic(folder / FOLD, json.dumps(row, indent=1))
    return row


def fold_train_args(args: argparse.Namespace, folder: Path, source: str, val_source: str) -> argparse.Namespace:
    """The ``train`` options of one fold: the user's, plus the holdout and the settings crossval owns."""
    reserved = sorted({o.split("=", 1)[0] for o in args.train_options} & set(RESERVED))
    if reserved:
        raise DataError(f"crossval sets {', '.join(reserved)} itself; drop it from the training options")
    argv = ["--data", str(args.data), "--out", str(folder), "--val-sources", val_source, "--test-sources", source,
            "--device", args.device, *args.train_options]
    for flag, value in (("--consensus", args.consensus), ("--workers", args.workers),
                        ("--max-minutes", args.minutes_per_fold or None)):
        if value is not None:
            argv += [flag, str(value)]
    parser = argparse.ArgumentParser(prog="python -m trainer crossval ... --", allow_abbrev=False)
    add_options(parser, finetune=False)
    parser.set_defaults(finetune=False)
    fold = parser.parse_args(argv)
    if fold.arch != "aladin":
        raise DataError("crossval compares with the untrained ALADIN network; train with --arch aladin")
    return fold


def _measure(args: argparse.Namespace, source: str, model: str, untrained: str, input_size: int) -> dict:
    """P@k, mAP and content trap on ``source`` alone for the model and both baselines.

    Every image of ``source`` is scored. A fold's model never trained on it; an existing ``--model`` may
    have (its figures are then in-domain, and eval's overlap check warns instead of refusing).
    """
    common = ["--data", str(args.data), "--sources", source, "--device", args.device, "--split", "all"]
    if args.model is not None:
        common.append("--allow-overlap")
    for flag, value in (("--consensus", args.consensus), ("--workers", args.workers)):
        if value is not None:
            common += [flag, str(value)]
    subjects = {"model": ["--model", model], "colour": ["--baseline", "colour"],
                "untrained": ["--model", untrained, "--input-size", str(input_size)]}
    parser = argparse.ArgumentParser(prog="python -m trainer crossval", allow_abbrev=False)
    add_data_arguments(parser)
    add_subject_arguments(parser)
    out: dict = {}
    for name, extra in subjects.items():
        print(f"crossval: {source}: evaluating {name}", file=sys.stderr)
        report = evaluate(parser.parse_args(common + extra))
        out[name] = report["by_source"][source]
    return {"images": report["data"]["images"], "groups": report["data"]["groups"], **out}
