"""Ask whether a descriptor the model file cannot hold yet is worth building, on out-of-domain validation.

``fusion_search`` chooses the weights of the cues a model file already fuses; before a new cue earns a
place in ``core`` (a new file format, a vector every library re-embeds), this script scores it beside
the bundled model's fused vector by the same rule: every image of the validation sources and of their
JPEG variant described once through the app's decode path, each candidate appended at a few weights
(the model's parts scaled down to make room), a whitening refitted on training images for every
weighting with the model's own settings, and the mean of the per-source P@1 / mAP criterion on the
two validations deciding. The independent benchmark is never read here.

The candidates are the cues that the failures on unseen art suggested (resources/models/MODEL.md, "Cue
candidates that did not carry over"): which way light falls across shading (the texture histogram folds
orientation to 180 degrees), what colours meet across an edge (a dark outline of the fill's own hue, a
black one, none), local binary patterns that ignore which way an edge runs (the subject's outline,
not its drawing, sets that), the silhouette read from the colours alone even where the file has
transparency (a cut-out and its flattened JPEG copy then describe alike), and the colours of the rings of
pixels just inside the silhouette's edge (how an outline is drawn).

``--within MANIFEST`` also scores a learned whitening on top of the model's (Radenovic et al.'s Lw): each
direction scaled by the spread of that manifest's images around their group's mean. On restyled art,
where a group is one recipe over many subjects, that spread is the subject's: a map that discounts it
discounts content.

Use::

    .venv/bin/python bench/cue_study.py --fit-on runs/restyled/whiten-fit4.csv \
        --within data/corpus-restyled/manifest.csv --report runs/cue-study.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.colour import rgb_to_hsv  # noqa: E402
from core.decode import iter_decoded  # noqa: E402
from core.embedder import Embedder, l2_normalise  # noqa: E402
from core.histograms import row_counts  # noqa: E402
from core.modelfile import load_model  # noqa: E402
from core.silhouette import estimated_opacity, grow_mask, silhouette_histograms  # noqa: E402
from core.texture import PATTERN_DIM, box_shrink, contrast_histograms, luminance  # noqa: E402
from core.whitening import Whitening  # noqa: E402
from bench.fusion_search import figures, floats, write_report  # noqa: E402
from trainer.export import WhitenSettings, fit_sample, whiten_argument, whitening_paths  # noqa: E402
from trainer.manifest import read_manifest  # noqa: E402

WEIGHTS = (0.02, 0.05, 0.1, 0.2)
# The bundled model's whitening (MODEL.md, "Contrast patterns and a shorter whitening").
WHITEN = WhitenSettings(0.5, 0.6, 1024)
LW = ((0.25, 0.8), (0.5, 0.95))  # (power, shrink) of the learned whitening


def signed_orientation(pixels: np.ndarray, magnitudes: int = 6, orientations: int = 16) -> np.ndarray:
    """Gradient magnitude x full-circle orientation of the luminance at half and quarter size: light from the
    top left darkens shading the other way than light from below, which a 180-degree fold cannot see."""
    bright = luminance(pixels[..., :3].astype(np.float32) / 255.0)
    blocks = []
    for factor in (2, 4):
        y = box_shrink(bright, factor)
        gx, gy = y[:, 1:-1, 2:] - y[:, 1:-1, :-2], y[:, 2:, 1:-1] - y[:, :-2, 1:-1]
        size = np.minimum((np.log1p(40 * np.hypot(gx, gy)) / np.log1p(40.0) * magnitudes).astype(int), magnitudes - 1)
        way = ((np.arctan2(gy, gx) + np.pi) / (2 * np.pi) * orientations).astype(int) % orientations
        blocks.append(row_counts(size * orientations + way, magnitudes * orientations))
    return np.concatenate(blocks, 1)


def edge_relations(pixels: np.ndarray, threshold: float = 16 / 255) -> np.ndarray:
    """Across each pair of side-by-side pixels that differ: the darker one's brightness (4), the step (4), the
    same hue, another hue or a grey side (3), and the lighter one's saturation (4)."""
    rgb = pixels[..., :3].astype(np.float32) / 255.0
    bright = luminance(rgb)
    hsv = rgb_to_hsv(pixels[..., :3])
    hue, saturation = hsv[..., 0], hsv[..., 1]
    counts = np.zeros((len(pixels), 192))
    for a, b in (((slice(None), slice(None), slice(0, -1)), (slice(None), slice(None), slice(1, None))),
                 ((slice(None), slice(0, -1)), (slice(None), slice(1, None)))):
        edge = np.abs(rgb[a] - rgb[b]).max(-1) > threshold
        a_darker = bright[a] <= bright[b]
        dark = np.where(a_darker, bright[a], bright[b])
        turn = np.abs(hue[a] - hue[b])
        turn = np.minimum(turn, 1 - turn)
        grey = (saturation[a] < 0.2) | (saturation[b] < 0.2)
        relation = np.where(grey, 0, np.where(turn < 1 / 12, 1, 2))
        light_saturation = np.where(a_darker, saturation[b], saturation[a])
        bins = (np.minimum((dark * 4).astype(int), 3) * 48 + np.digitize(np.abs(bright[a] - bright[b]),
                                                                           [16 / 255, 48 / 255, 96 / 255]) * 12
                + relation * 4 + np.minimum((light_saturation * 4).astype(int), 3))
        counts += row_counts(bins, 192, edge) * edge.sum((1, 2))[:, None]
    return counts / np.maximum(counts.sum(1, keepdims=True), 1e-12)


def _rotation_classes() -> tuple[np.ndarray, int]:
    """Each 8-bit pattern's class under rotation of the neighbours (36 classes)."""
    classes: dict[int, int] = {}
    table = np.array([classes.setdefault(min(((c >> k) | (c << (8 - k))) & 255 for k in range(8)), len(classes))
                      for c in range(256)])
    return table, len(classes)


_ROTATION, _ROTATION_CLASSES = _rotation_classes()


def rotation_invariant_contrast(pixels: np.ndarray) -> np.ndarray:
    """The contrast patterns of core.texture with each pattern's rotations in one bin: how an edge is drawn,
    not which way it runs."""
    by_pattern = contrast_histograms(np.ascontiguousarray(pixels[..., :3])).reshape(len(pixels), PATTERN_DIM, -1)
    return np.einsum("npl,pc->ncl", by_pattern, np.eye(_ROTATION_CLASSES)[_ROTATION]).reshape(len(pixels), -1)


def colour_silhouette(pixels: np.ndarray) -> np.ndarray:
    """core.silhouette read from the composited colours only, as for a flattened copy."""
    return silhouette_histograms(np.ascontiguousarray(pixels[..., :3]))


def outline_rings(pixels: np.ndarray, rings: int = 4) -> np.ndarray:
    """Brightness (8 bins) and saturation (4) of the pixels one, two, three and four steps inside the silhouette's
    edge (opacity estimated for flattened pictures, as core.silhouette does): a dark outline, a light rim, a
    shaded border or the fill running to the edge."""
    opacity = pixels[..., 3].astype(np.float32) / 255.0
    opaque = (pixels[..., 3] == 255).all((1, 2))
    if opaque.any():
        opacity[opaque] = estimated_opacity(np.ascontiguousarray(pixels[opaque, ..., :3]))
    rgb = pixels[..., :3].astype(np.float32) / 255.0
    brightness = np.minimum((luminance(rgb) * 8).astype(int), 7)
    saturation = np.minimum((rgb_to_hsv(pixels[..., :3])[..., 1] * 4).astype(int), 3)
    inside, blocks = opacity > 0.5, []
    for _ in range(rings):
        deeper = inside & ~grow_mask(~inside)
        ring = inside & ~deeper
        blocks += [row_counts(brightness, 8, ring), row_counts(saturation, 4, ring)]
        inside = deeper
    return np.concatenate(blocks, 1)


CANDIDATES = {"signed-orientation": signed_orientation, "edge-relations": edge_relations,
              "rotation-invariant-contrast": rotation_invariant_contrast, "colour-silhouette": colour_silhouette,
              "outline-rings": outline_rings}


@dataclass
class Described:
    """One manifest's images: the model's fused vector before whitening, each candidate's histograms, groups."""

    fused: np.ndarray
    candidates: dict[str, np.ndarray]
    groups: np.ndarray
    sources: np.ndarray


def describe(embedder: Embedder, manifest: Path, paths: list[str] | None, workers: int | None,
             names: list[str]) -> Described:
    """``manifest``'s images (or only ``paths`` among them) through the app's decode path, once."""
    samples = read_manifest(manifest)
    if paths is not None:
        wanted = set(paths)
        samples = [s for s in samples if s.path in wanted]
    fused, found, kept, position = [], {name: [] for name in names}, [], 0
    for chunk in iter_decoded([s.path for s in samples], embedder.size, chunk=64, workers=workers, alpha=True):
        good = [d for d in chunk if d.error is None]
        kept += [position + i for i, d in enumerate(chunk) if d.error is None]
        position += len(chunk)
        if good:
            pixels = np.stack([d.pixels for d in good])
            fused.append(embedder.finish(embedder.raw_from_pixels(pixels)))
            for name in names:
                found[name].append(CANDIDATES[name](pixels))
    return Described(np.concatenate(fused), {k: np.concatenate(v) for k, v in found.items()},
                     np.array([samples[i].group for i in kept]), np.array([samples[i].source for i in kept]))


def with_candidate(d: Described, name: str | None, weight: float) -> np.ndarray:
    """The model's fused vector scaled to ``1 - weight`` beside the candidate's Hellinger unit vector."""
    if name is None:
        return d.fused
    unit = l2_normalise(np.sqrt(np.maximum(d.candidates[name], 0.0)))
    return np.concatenate([np.sqrt(1 - weight) * d.fused, np.sqrt(weight) * unit], 1).astype(np.float32)


def criterion(validations: dict[str, Described], vectors: dict[str, np.ndarray]) -> dict:
    scored = {k: figures(vectors[k], d.groups, d.sources) for k, d in validations.items()}
    return {"criterion": float(np.mean([s["criterion"] for s in scored.values()])), **scored}


def learned_whitening(x: np.ndarray, groups: np.ndarray, power: float, shrink: float) -> np.ndarray:
    """(D, D) map scaling each direction by the spread of ``x`` around its group's mean to the -power/2."""
    centred = x.astype(np.float64).copy()
    for group in np.unique(groups):
        rows = groups == group
        centred[rows] -= centred[rows].mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / len(centred))
    values = (1 - shrink) * np.maximum(values, 0) + shrink * values.mean()
    return (vectors * values ** (-power / 2)).astype(np.float32)


def whole_groups(samples: list, most: int) -> list[str]:
    """Paths of about ``most`` images in whole groups, evenly spread over the manifest: a group seen through
    one image has no spread around its mean to learn from."""
    groups = list(dict.fromkeys(s.group for s in samples))
    keep = set(fit_sample(groups, max(1, round(most * len(groups) / max(len(samples), 1)))))
    return [s.path for s in samples if s.group in keep]


def fit_whitening(vectors: np.ndarray, settings: WhitenSettings) -> Whitening:
    return Whitening.fit(vectors, settings.power, settings.shrink, dims=min(settings.dims or vectors.shape[1],
                                                                          vectors.shape[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, metavar="PATH|NAME")
    p.add_argument("--validation", type=Path, nargs="+",
                   default=[Path("data/corpus-new4/manifest.csv"), Path("data/jpeg4/manifest.csv")], metavar="MANIFEST",
                   help="validation manifests, each scored alone; the criterion is their mean")
    p.add_argument("--fit-on", type=Path, required=True, metavar="MANIFEST", help="training images the whitenings fit on")
    p.add_argument("--fit-max", type=int, default=5000)
    p.add_argument("--whiten", type=whiten_argument, default=WHITEN, metavar="POWER,SHRINK[,DIMS]")
    p.add_argument("--weights", type=floats, default=WEIGHTS, metavar="W,W")
    p.add_argument("--candidates", default=",".join(CANDIDATES), metavar="NAME,NAME")
    p.add_argument("--within", type=Path, default=None, metavar="MANIFEST",
                   help="also score a learned whitening fitted on this manifest's groups")
    p.add_argument("--within-max", type=int, default=5000)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--report", type=Path, default=None, metavar="OUT.json")
    args = p.parse_args(argv)
    names = [n for n in args.candidates.split(",") if n]
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        p.error(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
    started = time.time()
    model = replace(load_model(args.model), whitening=None)
    embedder = Embedder(model)
    validations = {str(m): describe(embedder, m, None, args.workers, names) for m in args.validation}
    fit_paths = whitening_paths([s.path for s in read_manifest(args.fit_on)], args.fit_max)
    fit = describe(embedder, args.fit_on, fit_paths, args.workers, names)
    print(f"described {sum(len(d.groups) for d in validations.values())} validation and {len(fit.groups)} fit "
          f"images ({time.time() - started:.0f} s)", flush=True)
    rows = []
    for name, weight in [(None, 0.0), *((n, w) for n in names for w in args.weights)]:
        whitening = fit_whitening(with_candidate(fit, name, weight), args.whiten)
        scored = criterion(validations, {k: whitening.apply(with_candidate(d, name, weight))
                                         for k, d in validations.items()})
        rows.append({"candidate": name, "weight": weight, **scored})
        print(f"{name or 'the model alone':28s} {weight:5.2f}  criterion {scored['criterion']:.4f}  "
              + "  ".join(f"{Path(k).parent.name} {scored[k]['criterion']:.4f}" for k in validations), flush=True)
    if args.within is not None:
        base = fit_whitening(fit.fused, args.whiten)
        within_paths = whole_groups(read_manifest(args.within), args.within_max)
        grouped = describe(embedder, args.within, within_paths, args.workers, [])
        for power, shrink in LW:
            matrix = learned_whitening(base.apply(grouped.fused), grouped.groups, power, shrink)
            scored = criterion(validations, {k: l2_normalise(base.apply(d.fused) @ matrix)
                                             for k, d in validations.items()})
            rows.append({"candidate": f"learned whitening on {args.within}", "power": power, "shrink": shrink, **scored})
            print(f"learned whitening p {power} s {shrink}  criterion {scored['criterion']:.4f}", flush=True)
    write_report(args.report, {"model": model.source, "validation": [str(m) for m in args.validation],
                               "fit_on": str(args.fit_on), "rows": rows, "seconds": round(time.time() - started, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
