"""Choose the bundled model's fusion weights on out-of-domain validation, and only there.

The search vector fuses up to eight unit vectors (core.embedder.Embedder.finish): the network's, an HSV
colour histogram, a gradient (texture) histogram, a local-binary-pattern histogram, a silhouette
histogram (how transparency is drawn), a granulometry (widths of bright and dark structures), the
patterns by contrast level (LBP/C) and pairs of patterns a few pixels apart (CoALBP). This script
embeds every image of the validation manifest once through the app's own path
(``Embedder.raw_from_pixels`` at the cue size), then scores each weighting of the grid with
``Embedder.finish``: no image is embedded twice.

Validation is ``data/corpus-new`` by default: 17 sources (widelands, 0ad, supertux, naev, ...)
that the bundled network never trained on, so the choice rewards what carries over to unseen art,
not what the network memorised. The criterion is the mean of the unweighted per-source P@1 and
mAP (trainer.metrics.mean_over), the figures the issue's "Done when" asks about. The independent
benchmark (icons, cards) is never looked at while choosing; ``--benchmark DIR`` scores only the
chosen weighting on it afterwards, beside the descriptors alone for reference.

With ``--whiten P,S[,K] [P,S[,K] ...] --fit-on MANIFEST`` every weighting is also scored whitened
(:mod:`core.whitening`): for each setting a whitening is fitted on that weighting's vectors of the
fit images (training images, never validation ones; reserved images left out), as ``trainer export
--whiten`` fits it, and the whitening settings (none among them) become one more axis of the grid.

Use::

    .venv/bin/python bench/fusion_search.py --report runs/fusion-search.json --benchmark data/ood
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.colour import DEFAULT_BINS  # noqa: E402
from core.embedder import Embedder, fused_cues, l2_normalise  # noqa: E402
from core.modelfile import CUES, load_model, vector_layout  # noqa: E402
from core.whitening import Whitening  # noqa: E402
from trainer.evaluate import colour_bins_argument, embed_manifest  # noqa: E402
from trainer.export import WhitenSettings, whiten_argument, whitening_paths  # noqa: E402
from trainer.manifest import read_manifest  # noqa: E402
from trainer.metrics import by_source, mean_over, score_queries, summarise  # noqa: E402

NETWORK_WEIGHTS = (0.01, 0.025, 0.05, 0.1, 0.2)
PATTERN_WEIGHTS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7)
TEXTURE_SHARES = (0.7, 0.8, 0.9, 0.95)  # of what the other parts leave to colour and texture
# Cues weighted directly, each one more axis of the grid (0 only unless asked); colour and texture share the rest.
AXES = {"silhouette": "the silhouette histogram", "granulometry": "the granulometry",
        "contrast": "the patterns by contrast level", "cooccurrence": "the pairs of patterns"}
PROBE = 0.1  # any weights above zero make raw_from_pixels compute every part


def embed_raw(embedder: Embedder, manifest: Path, workers: int | None,
              paths: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw vectors of ``manifest``'s images (or only of ``paths`` among them), with their groups and sources."""
    samples = read_manifest(manifest)
    if paths is not None:
        wanted = set(paths)
        samples = [s for s in samples if s.path in wanted]
    raw, kept, errors = embed_manifest([s.path for s in samples], embedder.size, embedder, workers)
    if errors:
        print(f"{len(errors)} unreadable images left out of {manifest}", file=sys.stderr)
    return raw, np.array([samples[i].group for i in kept]), np.array([samples[i].source for i in kept])


def figures(vectors: np.ndarray, groups: np.ndarray, sources: np.ndarray) -> dict:
    results = score_queries(vectors, groups)
    pooled = summarise(results)
    mean = mean_over(list(by_source(results, sources).values()))
    return {"P@1": pooled["P@1"], "mAP": pooled["mAP"], "source_P@1": mean["P@1"], "source_mAP": mean["mAP"],
            "criterion": (mean["P@1"] + mean["mAP"]) / 2}


def write_report(path: Path | None, report: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))


def weighted(embedder: Embedder, network: float, pattern: float, texture_share: float,
             axes: dict[str, float] | None = None) -> Embedder:
    """``embedder`` with these weights: ``axes`` names the directly weighted cues (AXES), colour and texture
    share what the network, the patterns and those leave."""
    axes = {name: 0.0 for name in AXES} | (axes or {})
    rest = 1.0 - network - pattern - sum(axes.values())
    info = replace(embedder.model.info, colour_weight=round(rest * (1 - texture_share), 6),
                   texture_weight=round(rest * texture_share, 6), pattern_weight=pattern,
                   **{f"{name}_weight": weight for name, weight in axes.items()})
    return Embedder(replace(embedder.model, info=info), device=str(embedder.device))


def finisher(embedder: Embedder, fit_raw: np.ndarray | None, whiten: WhitenSettings | None):
    """``embedder.finish``, followed by a whitening fitted on ``fit_raw``'s vectors when ``whiten`` is set."""
    if whiten is None:
        return embedder.finish
    whitening = Whitening.fit(embedder.finish(fit_raw), whiten.power, whiten.shrink,
                              vector_layout(embedder.model.info), whiten.dims)
    return lambda raw: whitening.apply(embedder.finish(raw))


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


def descriptors_only(chosen: Embedder, raw: np.ndarray) -> np.ndarray:
    """The chosen descriptors in their chosen proportions without the network, for reference (a model file
    always keeps some network). ``raw`` holds every descriptor's part, as the probe embedder made it."""
    parts, start = [], chosen.net_dim
    for cue in fused_cues(replace(chosen.model.info, **{f"{name}_weight": PROBE for name in CUES})):
        weight = float(getattr(chosen.model.info, f"{cue.name}_weight"))
        if weight == 0:
            start += cue.dim
            continue
        parts.append(np.sqrt(weight) * cue.unit(raw[:, start:start + cue.dim]))
        start += cue.dim
    return l2_normalise(np.concatenate(parts, 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, metavar="PATH|NAME", help="network to fuse (default: the bundled model)")
    p.add_argument("--validation", type=Path, default=Path("data/corpus-new/manifest.csv"), metavar="MANIFEST")
    p.add_argument("--cue-size", type=int, default=128, metavar="PX")
    p.add_argument("--colour-bins", type=colour_bins_argument, default=DEFAULT_BINS, metavar="H,S,V",
                   help="bins per HSV channel of the colour histogram (default 12,4,4)")
    p.add_argument("--benchmark", type=Path, default=None, metavar="DIR",
                   help="after choosing, score the choice on DIR/icons and DIR/cards (bench/ood_benchmark.py)")
    p.add_argument("--network-weights", type=floats, default=NETWORK_WEIGHTS, metavar="W,W")
    p.add_argument("--pattern-weights", type=floats, default=PATTERN_WEIGHTS, metavar="W,W")
    p.add_argument("--texture-shares", type=floats, default=TEXTURE_SHARES, metavar="S,S",
                   help="texture's share of what the other parts leave to colour and texture")
    for name, what in AXES.items():
        p.add_argument(f"--{name}-weights", type=floats, default=(0.0,), metavar="W,W",
                       help=f"weights of {what} (default: 0 only)")
    p.add_argument("--whiten", type=whiten_argument, nargs="+", default=None, metavar="POWER,SHRINK[,DIMS]",
                   help="also score each weighting whitened with these settings (needs --fit-on)")
    p.add_argument("--fit-on", type=Path, default=None, metavar="MANIFEST",
                   help="training images the whitenings are fitted on")
    p.add_argument("--fit-max", type=int, default=20000)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--report", type=Path, default=None, metavar="OUT.json")
    args = p.parse_args(argv)
    if (args.whiten is None) != (args.fit_on is None):
        p.error("--whiten and --fit-on go together")
    started = time.time()
    # The file's own whitening would apply to whichever weighting repeats its layout and whiten it twice there:
    # every weighting starts unwhitened, and --whiten fits each one afresh.
    model = replace(load_model(args.model), whitening=None)
    grid_axes = {name: getattr(args, f"{name}_weights") for name in AXES}
    probe = replace(model.info, colour_weight=PROBE, texture_weight=PROBE, pattern_weight=PROBE,
                    cue_size=args.cue_size, colour_bins=args.colour_bins,
                    **{f"{name}_weight": PROBE if any(weights) else 0.0 for name, weights in grid_axes.items()})
    embedder = Embedder(replace(model, info=probe))
    raw, groups, sources = embed_raw(embedder, args.validation, args.workers)
    print(f"validation: {len(groups)} images, {len(set(groups))} groups, {len(set(sources))} sources "
          f"({time.time() - started:.0f} s to embed)")
    fit_raw = None
    if args.fit_on is not None:
        fit_paths = whitening_paths([s.path for s in read_manifest(args.fit_on)], args.fit_max)
        fit_raw = embed_raw(embedder, args.fit_on, args.workers, fit_paths)[0]
        print(f"whitening fit: {len(fit_raw)} images of {args.fit_on}")
    rows = []
    for network, pattern, share, *weights, whiten in itertools.product(
            args.network_weights, args.pattern_weights, args.texture_shares, *grid_axes.values(),
            [None, *(args.whiten or [])]):
        axes = dict(zip(AXES, weights))
        finish = finisher(weighted(embedder, network, pattern, share, axes), fit_raw, whiten)
        row = {"network": network, "pattern": pattern, "texture_share": share, **axes, "whiten": whiten,
               **figures(finish(raw), groups, sources)}
        rows.append(row)
        print(f"network {network:.3f} pattern {pattern:.2f} texture share {share:.2f} "
              + "".join(f"{name} {weight:.3f} " for name, weight in axes.items())
              + f"whiten {whiten}: source P@1 "
              f"{row['source_P@1']:.4f} mAP {row['source_mAP']:.4f} (pooled {row['P@1']:.4f} / {row['mAP']:.4f}) "
              f"criterion {row['criterion']:.4f}", flush=True)
    best = max(rows, key=lambda r: r["criterion"])
    chosen = weighted(embedder, best["network"], best["pattern"], best["texture_share"],
                      {name: best[name] for name in AXES})
    chosen_finish = finisher(chosen, fit_raw, best["whiten"])
    reference = {"descriptors only": figures(descriptors_only(chosen, raw), groups, sources),
                 "network only": figures(l2_normalise(raw[:, :embedder.net_dim]), groups, sources)}
    report = {"model": model.source, "validation": str(args.validation), "cue_size": args.cue_size,
              "colour_bins": list(args.colour_bins), "fit_on": args.fit_on and str(args.fit_on), "grid": rows,
              "chosen": {**best, **{f"{cue.name}_weight": cue.weight for cue in chosen.cues}},
              "reference": reference}
    print(f"chosen: network {best['network']}, " + ", ".join(f"{cue.name} {cue.weight}" for cue in chosen.cues)
          + f", whiten {best['whiten']}; criterion {best['criterion']:.4f}")
    if args.benchmark is not None:
        report["benchmark"] = {}
        for domain in ("icons", "cards"):
            raw_b, groups_b, sources_b = embed_raw(embedder, args.benchmark / domain / "manifest.csv", args.workers)
            report["benchmark"][domain] = {
                "chosen": figures(chosen_finish(raw_b), groups_b, sources_b),
                "descriptors only": figures(descriptors_only(chosen, raw_b), groups_b, sources_b)}
            print(f"{domain}: " + ", ".join(f"{k} P@1 {v['P@1']:.4f} mAP {v['mAP']:.4f}"
                                            for k, v in report["benchmark"][domain].items()))
    report["seconds"] = round(time.time() - started, 1)
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
