"""``python -m trainer eval``: retrieval quality of a model file, a built-in model or a baseline.

Embedding goes through the app's own path (:func:`core.decode.iter_decoded`,
:meth:`core.embedder.Embedder.raw_from_pixels`, :meth:`Embedder.finish`), so a
number in a report is the number a user's search gets.

A manifest with a ``source`` column also gets every figure per source, with
its content trap, and their unweighted mean (``source_mean``), so a large easy
source cannot hide a hard one. ``--sources`` makes some sources the whole
gallery: the out-of-domain test of a run that held them out of training
(``train --test-sources``), and one fold of ``trainer crossval``.

Which split: a trained model records the split its run held out and its training projects
(:mod:`trainer.provenance`). By default (``--split auto``) eval scores the part that run held out for
testing (else for validation), planned as the run planned it; a model that records nothing is scored on
the whole manifest. Whatever the split, an evaluated project that the model (or the model it was
fine-tuned from) trained on is refused, or with ``--allow-overlap`` reported as in-domain. The report and
the printed line say which split was scored and how it was chosen.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.colour import colour_histogram, hellinger
from core.decode import iter_decoded
from core.embedder import Embedder
from core.modelfile import CUES, LoadedModel, PostProcess, load_model
from trainer.base import SearchVector
from trainer.checkpoint import load_checkpoint, net_from_checkpoint
from trainer.errors import DataError
from trainer.manifest import Sample, at_consensus, read_manifest
from trainer.metrics import RANKINGS, app_ranking, by_source, content_trap, mean_over, score_queries, summarise
from trainer.provenance import NOTE, TrainingSet
from trainer.splits import HeldOut, of_sources, plan_by_project, source_names

log = logging.getLogger(__name__)

STANDARDISE = ("auto", "model", "fit", "off")
BASELINE_SIZE = 128


def raw_in_batches(embedder: Embedder, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([embedder.raw_from_pixels(pixels[i:i + batch]) for i in range(0, len(pixels), batch)])


def finish(embedder: Embedder, raw: np.ndarray, standardise: str) -> tuple[np.ndarray, str]:
    """Search vectors (the app's :meth:`Embedder.finish`) and which standardisation made them.

    ``auto`` uses the model file's statistics and, when it has none (an
    untrained baseline), fits them on these codes: without standardisation a
    few large channels dominate the raw style code and the comparison says
    little about the network. Only the network part of a raw vector is
    standardised; a fused colour part is left to ``finish``.
    """
    whitened = "; whitened by the model file" if embedder.whitening is not None else ""
    if embedder.which != "style":
        return embedder.finish(raw), "none (projection vectors are unit vectors already)" + whitened
    net = np.asarray(raw[:, :embedder.net_dim], np.float64)
    if standardise == "off":
        identity = PostProcess(mean=np.zeros(net.shape[1], np.float32), scale=np.ones(net.shape[1], np.float32))
        return embedder.finish(raw, identity), "none"
    if standardise == "fit" or (standardise == "auto" and embedder.post is None):
        return embedder.finish(raw, PostProcess.fit(net)), "fitted on the evaluation set's codes"
    if embedder.post is None:
        raise DataError("the model file has no standardisation statistics; use --standardise fit or off")
    return embedder.finish(raw), "from the model file" + whitened


def embed_manifest(paths: list[str], size: int, embedder: Embedder | None, workers: int | None,
                   batch: int = 32) -> tuple[np.ndarray, list[int], dict]:
    """Raw vectors (the model's, or raw colour histograms without a model) for every decodable path."""
    from tqdm import tqdm

    raws, kept, errors = [], [], {}
    position = 0
    with tqdm(total=len(paths), desc="embedding", unit="img", file=sys.stderr, disable=None) as bar:
        alpha = embedder is not None and embedder.reads_alpha
        for chunk in iter_decoded(paths, size, chunk=batch, workers=workers, alpha=alpha):
            good = [d for d in chunk if d.error is None]
            errors.update({d.path: d.error for d in chunk if d.error is not None})
            kept += [position + i for i, d in enumerate(chunk) if d.error is None]
            position += len(chunk)
            if good:
                pixels = np.stack([d.pixels for d in good])
                raws.append(embedder.raw_from_pixels(pixels) if embedder is not None
                            else colour_histogram(pixels))
            bar.update(len(chunk))
    return (np.concatenate(raws) if raws else np.zeros((0, 1), np.float32)), kept, errors


def load_subject(spec: str | None) -> LoadedModel:
    """A model file, a built-in name, or a trainer checkpoint (``.pt``, e.g. the ResNet-50 baseline)."""
    if spec is None or not str(spec).endswith(".pt"):
        return load_model(spec)
    state = load_checkpoint(Path(spec))
    net = net_from_checkpoint(state)
    info = SearchVector.from_config(state["config"]).model_info(
        Path(spec).stem, net.config, trained=True, training_data=state.get("data_card", ""),
        notes={"step": state["step"], NOTE: state.get(NOTE)})
    return LoadedModel(net=net, info=info, post=None, source=str(spec), checksum=f"checkpoint:{state['step']}")


def at_input_size(model: LoadedModel, size: int) -> LoadedModel:
    """The same weights run at another input size: the network is convolutional up to its statistics."""
    try:
        model.net.config = replace(model.net.config, input_size=size)
    except ValueError as exc:
        raise DataError(f"--input-size: {exc}") from exc
    return replace(model, info=replace(model.info, config=model.net.config))


def fusion_options(args: argparse.Namespace) -> dict:
    """The ModelInfo fields that ``--colour-weight``, ``--texture-weight``, ``--pattern-weight``,
    ``--silhouette-weight``, ``--granulometry-weight``, ``--contrast-weight``, ``--cooccurrence-weight``, ``--cue-size``
    and ``--colour-bins`` set."""
    values = {f"{name}_weight": getattr(args, f"{name}_weight") for name in CUES}
    values["cue_size"] = args.cue_size
    values["colour_bins"] = args.colour_bins
    return {name: value for name, value in values.items() if value is not None}


def describe(embedder: Embedder) -> dict:
    info = embedder.model.info
    return {"source": embedder.model.source, "name": info.name, "checksum": embedder.model.checksum,
            "architecture": info.config.variant, "trained": info.trained, "training_data": info.training_data,
            "vector": embedder.which, "input_size": embedder.net_size, "decode_size": embedder.size,
            **{f"{name}_weight": float(getattr(info, f"{name}_weight")) for name in CUES},
            "colour_bins": list(info.colour_bins), "whitening": embedder.whitening is not None}


def add_data_arguments(p: argparse.ArgumentParser, test: float = 0.0) -> None:
    """Which images a command looks at; shared so eval and gallery read a split the same way.

    ``test`` is the test fraction of a split planned here (no model record, or --val/--test/--split-seed
    given); with it above 0, ``--split auto`` means that test split when nothing is recorded.
    """
    fallback = "that split's test part" if test else "the whole manifest"
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST|FOLDER")
    p.add_argument("--consensus", type=int, default=None, metavar="N", help="BAM-FG-C_N level to evaluate")
    p.add_argument("--split", choices=("auto", "all", "train", "val", "test"), default="auto",
                   help="auto (default): the part the model's run held out for testing (else validation), "
                        f"as it recorded; for a model that records no split, {fallback}")
    p.add_argument("--val", type=float, default=None,
                   help="plan the split here instead of the model's: validation fraction of projects (default 0.1)")
    p.add_argument("--test", type=float, default=None,
                   help=f"plan the split here: test fraction of projects (default {test})")
    p.add_argument("--split-seed", type=int, default=None, help="plan the split here: its seed (default 0)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="score projects the model trained on (in-domain figures) with a warning instead of refusing")
    p.set_defaults(fallback_test=test)
    p.add_argument("--sources", type=source_names, default=None, metavar="A,B",
                   help="only these sources' images (after --split), as the whole gallery: the out-of-domain "
                        "test of a run that held them out (train --test-sources)")


# The options that fuse descriptors with a model, as error messages name them.
FUSION_FLAGS = ", ".join(f"--{name}-weight" for name in CUES) + ", --cue-size and --colour-bins"

CUE_HELP = {"colour": "the HSV colour histogram (sec. 5.6 'Fused')", "texture": "the gradient (texture) histogram",
            "pattern": "the local-binary-pattern histogram",
            "silhouette": "the silhouette histogram (how transparency is drawn)",
            "granulometry": "the granulometry (widths of bright and dark structures)",
            "contrast": "the local-binary-pattern histogram by contrast level (LBP/C)",
            "cooccurrence": "the histogram of pattern pairs a few pixels apart (CoALBP)"}


def add_fusion_arguments(p: argparse.ArgumentParser, default: str) -> None:
    """The descriptors fused beside the network (see :func:`fusion_options`); shared by eval, gallery and export."""
    for name in CUES:
        p.add_argument(f"--{name}-weight", type=float, default=None, metavar="W",
                       help=f"fuse {CUE_HELP[name]} with weight W in [0, 1) (default: {default})")
    p.add_argument("--cue-size", type=int, default=None, metavar="PX",
                   help="decode at PX for the descriptors; the network still sees its input size (0: the "
                        f"network's input size; default: {default})")
    p.add_argument("--colour-bins", type=colour_bins_argument, default=None, metavar="H,S,V",
                   help=f"bins per HSV channel of the fused colour histogram, e.g. 8,8,8 (default: {default})")


def colour_bins_argument(text: str) -> tuple[int, ...]:
    """``H,S,V`` as whole numbers; their range is ModelInfo's to check, so a model file and a flag agree."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three whole numbers such as 8,8,8, got {text!r}") from None


def add_subject_arguments(p: argparse.ArgumentParser) -> None:
    """What turns the images into search vectors; shared so eval and gallery embed the same way."""
    p.add_argument("--model", default=None, metavar="PATH|NAME",
                   help="model file, built-in (untrained-s, untrained-l) or trainer checkpoint (.pt); "
                        "default: the bundled model")
    p.add_argument("--fuse-with", default=None, metavar="MODEL|CKPT",
                   help="concatenate a second model's unit vectors, e.g. the ResNet-50 baseline (sec. 5.6)")
    p.add_argument("--fuse-weight", type=float, default=0.5, metavar="W",
                   help="share of the --fuse-with model in the cosine score (default 0.5)")
    p.add_argument("--baseline", choices=("colour",), default=None,
                   help="evaluate a non-learned descriptor instead of a model")
    add_fusion_arguments(p, "the model file's own")
    p.add_argument("--input-size", type=int, default=None, metavar="PX",
                   help="run the network at this input size instead of the model's (e.g. to compare an "
                        "untrained baseline with a model trained at 64 px)")
    p.add_argument("--which", choices=("style", "projection"), default=None,
                   help="vector to evaluate (default: the model file's choice)")
    p.add_argument("--standardise", choices=STANDARDISE, default="auto",
                   help="auto: the model's statistics, else fit on the eval set; model; fit; off")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=None, help="decoding processes (0: in-process)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="P@1/5/10 and mAP of a model or baseline on a group manifest")
    add_data_arguments(p)
    add_subject_arguments(p)
    p.add_argument("--ranking", choices=RANKINGS, default="cosine",
                   help="cosine (default): the vectors alone; csls, expand, search: rank each query's gallery as "
                        "the app's search does (hubness-corrected, expanded by its first matches, or both, the "
                        "app's default)")
    p.add_argument("--report", type=Path, default=None, metavar="OUT.json", help="write the JSON report here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = evaluate(args, args.ranking)
    print(f"split: {report['split']['how']}")
    m, trap = report["metrics"], report["content_trap"]
    trapped = (f"content trap {trap['share']:.4f} of {trap['measurable']} queries" if trap["measurable"]
               else "content trap n/a (no query shares its content with another group)")
    print(f"{report['subject']}: P@1 {m['P@1']:.4f}  P@5 {m['P@5']:.4f}  P@10 {m['P@10']:.4f}  "
          f"mAP {m['mAP']:.4f}  ({m['queries']} queries; ranked by {args.ranking}; {trapped}; "
          f"standardisation: {report['standardisation']})")
    if args.sources or args.split == "all" and "source_mean" in report:
        mean = report["source_mean"]
        print(f"unweighted mean over {mean['count']} sources: P@1 {mean['P@1']:.4f}  P@5 {mean['P@5']:.4f}  "
              f"P@10 {mean['P@10']:.4f}  mAP {mean['mAP']:.4f}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1))
    return 0


@dataclass
class Subjects:
    """The models a command embeds with (none for a baseline), loaded once."""

    model: LoadedModel | None
    fused: LoadedModel | None

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter([m for m in (self.model, self.fused) if m is not None])


def load_subjects(args: argparse.Namespace) -> Subjects:
    fused = load_subject(args.fuse_with) if args.fuse_with is not None else None
    return Subjects(load_subject(args.model) if args.baseline is None else None, fused)


@dataclass
class Selection:
    """The evaluated rows, which split they are, and what was checked against the models' training sets."""

    samples: list[Sample]
    split: str
    how: str
    overlap: dict


def _split_plan(args: argparse.Namespace, everything: list[Sample], subjects: Subjects) -> tuple[HeldOut | None, str]:
    """The plan to split by and whose it is: a model's recorded plan, else one planned here (or none)."""
    named = (args.val, args.test, args.split_seed)
    if named == (None, None, None):
        for model in subjects:
            recorded = TrainingSet.from_notes(model.info.notes)
            if recorded is not None and recorded.held_out is not None:
                return recorded.held_out, f"held out by the run of {model.info.name}"
        if args.split == "all" or (args.split == "auto" and not args.fallback_test):
            return None, ""
    val, test, seed = (d if v is None else v for v, d in zip(named, (0.1, args.fallback_test, 0)))
    return plan_by_project(everything, val, test, seed), "planned on this manifest"


def _check_overlap(samples: list[Sample], subjects: Subjects, allow: bool) -> dict:
    """Refuse (or with ``allow`` warn about) evaluated projects a model trained on; say what was checked.

    Raises:
        DataError: some evaluated project is in a model's training set and ``allow`` is false.
    """
    out: dict = {"checked": [], "unchecked": [], "projects": 0, "allowed": allow}
    for model in subjects:
        recorded = TrainingSet.from_notes(model.info.notes)
        if recorded is None:
            if model.info.trained:
                out["unchecked"].append(model.info.name)
            continue
        out["checked"].append(model.info.name)
        if recorded.unrecorded:
            out["unchecked"].append(f"{recorded.unrecorded} (the base {model.info.name} was fine-tuned from)")
        shared = recorded.overlap(samples)
        if not shared:
            continue
        out["projects"] = max(out["projects"], len(shared))
        total = len({s.project_key for s in samples})
        message = (f"{len(shared)} of the {total} evaluated projects are in the training set of "
                   f"{model.info.name} (e.g. {', '.join(shared[:3])}), so its figures would be in-domain")
        if not allow:
            raise DataError(message + "; evaluate a held-out split (--split auto) or pass --allow-overlap")
        log.warning(message)
        print(f"trainer: WARNING: {message} (--allow-overlap)", file=sys.stderr)
    return out


def select_samples(args: argparse.Namespace, subjects: Subjects) -> Selection:
    """The manifest rows of the chosen consensus level, split and sources, checked against training.

    Raises:
        DataError: an empty selection, or one that overlaps a model's training set (see ``--allow-overlap``).
    """
    everything = read_manifest(args.data)
    samples = at_consensus(everything, args.consensus)
    plan, whose = _split_plan(args, everything, subjects)
    split = args.split
    if split == "auto":
        split = "all" if plan is None else "test" if plan.test else "val"
    if split == "all":
        how = "all: every row of the manifest" + (" (no model records a split)" if args.split == "auto" else "")
    else:
        samples = plan.apply(samples).of(split)
        how = f"{split}: {whose}, {plan.how}"
    if args.sources:
        samples = of_sources(samples, args.sources)
        how += f"; sources {', '.join(args.sources)}"
    if not samples:
        raise DataError(f"the {split} split is empty" + (" for these sources" if args.sources else ""))
    return Selection(samples, split, how, _check_overlap(samples, subjects, args.allow_overlap))


@dataclass
class Embedded:
    """Search vectors for the decodable samples (row i belongs to ``samples[i]``) and how they were made."""

    samples: list[Sample]
    vectors: np.ndarray
    unreadable: dict[str, str]
    subject: str
    standardisation: str
    details: dict = field(default_factory=dict)


def embed_subject(args: argparse.Namespace, samples: list[Sample], subjects: Subjects) -> Embedded:
    """Search vectors of the model, fused pair or baseline that ``args`` names, as the app would make them.

    Raises:
        DataError: contradictory options, or no image could be decoded.
    """
    fusion = fusion_options(args)
    if args.baseline and fusion:
        raise DataError(f"{FUSION_FLAGS} fuse descriptors with a model; drop --baseline")
    paths = [s.path for s in samples]
    embedder = None
    if subjects.model is not None:
        model = subjects.model
        if fusion:
            try:
                model = replace(model, info=replace(model.info, **fusion))
            except ValueError as exc:
                raise DataError(f"fusion options: {exc}") from exc
        if args.input_size is not None:
            model = at_input_size(model, args.input_size)
        embedder = Embedder(model, device=args.device, which=args.which)
    size = embedder.size if embedder is not None else BASELINE_SIZE
    raw, kept, errors = embed_manifest(paths, size, embedder, args.workers)
    for path, reason in list(errors.items())[:10]:
        print(f"trainer: cannot read {path}: {reason}", file=sys.stderr)
    if not kept:
        raise DataError("no image in the evaluation set could be decoded")
    details: dict = {}
    if embedder is None:
        vectors, standardisation = hellinger(raw), "none (Hellinger-normalised histogram)"
        subject = f"baseline colour (HSV histogram {BASELINE_SIZE} px, Hellinger)"
    else:
        vectors, standardisation = finish(embedder, raw, args.standardise)
        details["model"] = describe(embedder)
        subject = f"model {embedder.model.info.name} ({embedder.which})"
        if embedder.cues:
            subject += " fused with " + ", ".join(f"{cue.name} (w={cue.weight})" for cue in embedder.cues)
            subject += f" from {embedder.size} px"
    if args.fuse_with is not None:
        if not 0 < args.fuse_weight < 1:
            raise DataError("--fuse-weight must be between 0 and 1")
        other = Embedder(subjects.fused, device=args.device)
        # Same decode path and files, so the same images fail and rows line up.
        raw2, kept2, _ = embed_manifest(paths, other.size, other, args.workers)
        if kept2 != kept:
            raise DataError("the fused model decoded a different set of images")
        other_vectors, how = finish(other, raw2, args.standardise)
        w = args.fuse_weight
        vectors = np.concatenate([np.sqrt(1 - w) * vectors, np.sqrt(w) * other_vectors], axis=1).astype(np.float32)
        details["fused_with"] = {**describe(other), "weight": w, "standardisation": how}
        subject += f" fused with {other.model.info.name} (w={w})"
    return Embedded(samples=[samples[i] for i in kept], vectors=vectors, unreadable=errors, subject=subject,
                    standardisation=standardisation, details=details)


def select_and_embed(args: argparse.Namespace) -> tuple[Selection, Embedded]:
    """Load the subjects, select (and check) the rows, embed them: what eval and gallery share."""
    subjects = load_subjects(args)
    selection = select_samples(args, subjects)
    return selection, embed_subject(args, selection.samples, subjects)


def evaluate(args: argparse.Namespace, ranking: str = "cosine") -> dict:
    """Embed and score the selected rows; ``ranking`` names how each gallery is ranked (:data:`RANKINGS`)."""
    started = time.time()
    selection, embedded = select_and_embed(args)
    labels = np.array([s.group for s in embedded.samples])
    report: dict = {"data": {"manifest": str(args.data), "consensus": args.consensus, "split": selection.split,
                             "sources": args.sources,
                             "images": len(embedded.samples), "groups": int(len(set(labels))),
                             "unreadable": len(embedded.unreadable)},
                    "split": {"name": selection.split, "how": selection.how, "overlap": selection.overlap},
                    "subject": embedded.subject, "standardisation": embedded.standardisation, **embedded.details}
    report["ranking"] = ranking
    results = score_queries(embedded.vectors, labels, rank=app_ranking(embedded.vectors, ranking))
    report["metrics"] = summarise(results)
    contents = np.array([s.content for s in embedded.samples])
    report["content_trap"] = content_trap(results, labels, contents)
    sources = [s.source for s in embedded.samples]
    if any(sources):
        report["by_source"] = by_source(results, np.array(sources), labels, contents)
        report["source_mean"] = mean_over(list(report["by_source"].values()))
    report["seconds"] = round(time.time() - started, 2)
    return report
