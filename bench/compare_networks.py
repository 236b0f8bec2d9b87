"""Compare networks on sources none of them trained on, alone and fused at one set of weights.

A GPU lease brings back several checkpoints trained on different sources. The fair comparison is on
the sources that *none* of them saw (``--sources``: the lease of 2026-11-29 kept 9 of the 17 game-art
sources out of every run), with every network fused at the *same* weights, so the network is the only
thing that differs; the icon and card benchmark is scored the same way, afterwards, for reference.
Each model is embedded once per set through the app's path (``Embedder.raw_from_pixels`` at the cue
size, as ``bench/fusion_search.py`` does), then finished with its network alone and fused.

Export each checkpoint first (``python -m trainer export CKPT OUT.safetensors --embedding projection``;
any weights, they are replaced here). Vectors are compared unwhitened: a model file's whitening fits only
its own weights, so it never applies here; ``bench/fusion_search.py --whiten`` scores the winner whitened.
Use::

    .venv/bin/python bench/compare_networks.py A.safetensors B.safetensors --weights 0.025,0.055,0.22,0.7 \\
        --sources 0ad,naev,endless-sky,teeworlds,warzone2100,blobwars,lincity-ng,neverball,crawl \\
        --colour-bins 8,8,8 --benchmark data/ood --report runs/compare.json
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fusion_search import PROBE, embed_raw, figures, write_report  # noqa: E402
from core.colour import DEFAULT_BINS  # noqa: E402
from core.embedder import Embedder, l2_normalise  # noqa: E402
from core.modelfile import load_model  # noqa: E402
from trainer.evaluate import colour_bins_argument  # noqa: E402
from trainer.splits import source_names  # noqa: E402


def weights_argument(text: str) -> tuple[float, float, float, float]:
    """``network,colour,texture,pattern``, summing to 1 (the network's is what the others leave)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0 or values[0] <= 0 or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError("expected NETWORK,COLOUR,TEXTURE,PATTERN: four weights summing to 1, "
                                         "the network's above 0")
    return values  # type: ignore[return-value]


def keep(raw: np.ndarray, groups: np.ndarray, sources: np.ndarray, only: list[str] | None):
    if not only:
        return raw, groups, sources
    mask = np.isin(sources, only)
    return raw[mask], groups[mask], sources[mask]


def compare(spec: str, weights: tuple[float, float, float, float], cue_size: int, colour_bins: tuple[int, int, int],
            sets: dict[str, tuple[Path, list[str] | None]], workers: int | None) -> dict:
    """One model's figures on each set: its network alone, and fused at ``weights``."""
    model = load_model(spec)
    probe = Embedder(replace(model, info=replace(model.info, colour_weight=PROBE, texture_weight=PROBE,
                                                 pattern_weight=PROBE, cue_size=cue_size, colour_bins=colour_bins)))
    _, colour, texture, pattern = weights
    fused = Embedder(replace(probe.model, info=replace(probe.model.info, colour_weight=colour, texture_weight=texture,
                                                       pattern_weight=pattern)))
    out = {"model": model.source, "checksum": model.checksum}
    for name, (manifest, only) in sets.items():
        raw, groups, sources = keep(*embed_raw(probe, manifest, workers), only)
        out[name] = {"images": len(groups), "sources": len(set(sources)),
                     "alone": figures(l2_normalise(raw[:, :probe.net_dim]), groups, sources),
                     "fused": figures(fused.finish(raw), groups, sources)}
    return out


def _line(name: str, figs: dict) -> str:
    """Validation as means over sources (how choices are made); the benchmark pooled (how its aims are set)."""
    p1, ap = ("source_P@1", "source_mAP") if name == "validation" else ("P@1", "mAP")
    text = f"{name} alone {figs['alone'][p1]:.3f} / {figs['alone'][ap]:.3f}, fused {figs['fused'][p1]:.3f} / " \
           f"{figs['fused'][ap]:.3f}"
    return text + (f" (criterion {figs['fused']['criterion']:.4f})" if name == "validation" else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", metavar="PATH|NAME")
    p.add_argument("--weights", type=weights_argument, required=True, metavar="N,C,T,P",
                   help="network, colour, texture and pattern weights every model is fused with")
    p.add_argument("--validation", type=Path, default=Path("data/corpus-new/manifest.csv"), metavar="MANIFEST")
    p.add_argument("--sources", type=source_names, default=None, metavar="A,B",
                   help="score only these sources of the validation manifest (default: all)")
    p.add_argument("--cue-size", type=int, default=128, metavar="PX")
    p.add_argument("--colour-bins", type=colour_bins_argument, default=DEFAULT_BINS, metavar="H,S,V")
    p.add_argument("--benchmark", type=Path, default=None, metavar="DIR",
                   help="also score DIR/icons and DIR/cards (bench/ood_benchmark.py)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--report", type=Path, default=None, metavar="OUT.json")
    args = p.parse_args(argv)
    started = time.time()
    sets = {"validation": (args.validation, args.sources)}
    if args.benchmark is not None:
        sets.update({domain: (args.benchmark / domain / "manifest.csv", None) for domain in ("icons", "cards")})
    rows = []
    for spec in args.models:
        row = compare(spec, args.weights, args.cue_size, args.colour_bins, sets, args.workers)
        rows.append(row)
        print(f"{spec}: " + "; ".join(_line(name, row[name]) for name in sets), flush=True)
    report = {"weights": list(args.weights), "validation": str(args.validation), "sources": args.sources,
              "cue_size": args.cue_size, "colour_bins": list(args.colour_bins), "models": rows,
              "seconds": round(time.time() - started, 1)}
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
