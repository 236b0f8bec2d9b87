"""Independent benchmark: icon themes and card decks, art the style model never saw.

NEVER TRAIN ON THIS. Freedesktop icon themes and playing-card decks are
reserved for this evaluation by ``trainer/corpora/reserved.py`` (see
resources/models/DATA.md, "Reserved for evaluation"): no training corpus may
contain them, so a score here measures style on unseen sources, not memory.

Two domains, one manifest each (``path,group,source,content``): 20 icon themes
drawing up to 40 freedesktop icon names, and 25 card decks drawing up to 52
cards (fewer where a drawing repeats one of an earlier group). ``group`` is the
theme or deck, ``source`` the Debian package, ``content`` the icon name or
card, so the trainer's content-trap metric counts "same subject, other style"
mistakes. Which themes, decks and names, and why, is in ``bench/ood_sources.py``.

``build --min-themes N`` takes as icon subjects every name that at least N themes
draw (``shared_icon_names``) rather than the 40 chosen ones: groups of the size
the issue that set the icon aims measured (about 60-95 icons per theme rather
than 20-40), since P@1 rises with the number of a group's other members.
``--distinct-drawings`` then drops any icon that nearly repeats another one of its
own theme (a folder and its music folder), which many more names bring in.

Setup (Debian 12 main; ``packages`` prints this line)::

    apt-get install --no-install-recommends adwaita-icon-theme breeze-icon-theme \\
        deepin-icon-theme elementary-icon-theme elementary-xfce-icon-theme faba-icon-theme \\
        faenza-icon-theme gnome-cards-data gnome-icon-theme gnome-icon-theme-gartoon \\
        gnome-icon-theme-nuovo gnome-icon-theme-suede gnome-icon-theme-yasis \\
        kdegames-card-data-kf5 librsvg2-bin lxde-icon-theme moka-icon-theme numix-icon-theme \\
        obsidian-icon-theme oxygen-icon-theme paper-icon-theme papirus-icon-theme \\
        tango-icon-theme yaru-theme-icon

Use::

    .venv/bin/python bench/ood_benchmark.py packages
    .venv/bin/python bench/ood_benchmark.py build data/ood
    .venv/bin/python bench/ood_benchmark.py run data/ood --report data/ood/report.json

``run`` scores the two HSV-histogram baselines, an untrained ALADIN-S at 128 px
and each ``--model`` (default: the bundled model) through ``python -m trainer
eval``, and re-runs the first model through ``aladin embed`` + ``trainer.metrics`` as an
independent check of the same figure, with its content trap and where its wrong first results go, and
once more ranked as the app's search ranks its results (CSLS and query expansion: what a user's
list shows; P@1 and mAP of record stay the cosine row's). Nothing is downloaded; everything comes from the installed packages.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ood_sources import (  # noqa: E402
    CARD_DECKS, CARDS, ICON_NAMES, ICON_THEMES, ICONS_DIR, Deck, IconTheme, deck_zoom, render_card, render_icon,
    shared_icon_names, theme_icons,
)
from core.colour import colour_histogram, hellinger  # noqa: E402
from core.decode import iter_decoded  # noqa: E402
from core.images import to_rgb  # noqa: E402
from trainer.corpora.build import near_duplicate  # noqa: E402
from trainer.corpora.imaging import RenderError, pixel_digest  # noqa: E402
from trainer.corpora.provenance import FileOwners, debian_package  # noqa: E402
from trainer.manifest import Sample, read_manifest, write_manifest  # noqa: E402
from trainer.metrics import app_ranking, confusions, content_trap, score_queries, summarise  # noqa: E402

DOMAINS = ("icons", "cards")
SIZE = 128
# A group needs enough members that P@10 and mAP mean something; fewer and it is dropped.
MIN_IMAGES = 12
HISTOGRAM_BINS = (8, 8, 8)
HISTOGRAM_SIZE = 128
RENDERER = "librsvg2-bin"
_LICENSE_LINE = re.compile(r"^License:[ \t]*(\S.*?)[ \t]*$", re.MULTILINE)


def packages() -> list[str]:
    """Every Debian package the build reads, plus the SVG renderer."""
    names = {package for theme in ICON_THEMES for package, _ in theme.parts} | {d.package for d in CARD_DECKS}
    return sorted(names | {RENDERER})


def install_command() -> str:
    return "apt-get install --no-install-recommends " + " ".join(packages())


# ---------------------------------------------------------------------------------------------- build


@dataclass
class Domain:
    """What one domain's build produced: manifest rows, per-group packages, and what was left out."""

    rows: list[Sample] = field(default_factory=list)
    groups: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    def skip(self, group: str, item: str | None, reason: str) -> None:
        self.skipped.append({"group": group, "item": item, "reason": reason})


def _thumbnail(img: Image.Image) -> np.ndarray:
    """16x16 grey thumbnail on the loader's grey: what near_duplicate compares."""
    return np.asarray(to_rgb(img).convert("L").resize((16, 16), Image.Resampling.BILINEAR), np.float32) / 255.0


class Duplicates:
    """Drawings already in the benchmark, so no picture is in two groups.

    Forks and re-packagings share drawings (elementary-xfce and elementary,
    Obsidian and Faenza): the same picture under two groups can only be
    "found" by chance, whatever the model. Exact copies are caught anywhere;
    near copies (re-rendered, recoloured a little) among images of the same
    subject. The first group in build order keeps the picture.
    """

    def __init__(self) -> None:
        self.digests: set[str] = set()
        self.thumbs: dict[str, list[np.ndarray]] = {}

    def reason(self, img: Image.Image, content: str) -> str | None:
        if pixel_digest(img) in self.digests:
            return "exact duplicate of an image in an earlier group"
        thumb = _thumbnail(img)
        if any(near_duplicate(thumb, other) for other in self.thumbs.get(content, [])):
            return "near duplicate of the same subject in an earlier group"
        return None

    def add(self, img: Image.Image, content: str) -> None:
        self.digests.add(pixel_digest(img))
        self.thumbs.setdefault(content, []).append(_thumbnail(img))


def _sibling(thumb: np.ndarray, kept: dict[str, np.ndarray]) -> str | None:
    """The subject already kept in this group whose thumbnail ``thumb`` nearly repeats (a folder and its music
    folder), if any."""
    return next((content for content, other in kept.items() if near_duplicate(thumb, other)), None)


def _keep_group(domain: Domain, folder: Path, group: str, images: dict[str, tuple[Image.Image, str]],
                dups: Duplicates, min_images: int, distinct: bool = False) -> None:
    """Write a group's images (subject -> (image, package)) and rows, or log why the group is dropped.

    With ``distinct``, a drawing that nearly repeats one the group already
    keeps under another subject is dropped too: a query would find its
    sibling by the shared picture, whatever the style.
    """
    fresh, thumbs = {}, {}
    for content, (img, package) in images.items():
        why = dups.reason(img, content)
        thumb = _thumbnail(img) if distinct and not why else None
        sibling = _sibling(thumb, thumbs) if thumb is not None else None
        if sibling:
            why = f"near copy of {sibling} in the same group"
        if why:
            domain.skip(group, content, why)
        else:
            fresh[content] = (img, package)
            if thumb is not None:
                thumbs[content] = thumb
    if len(fresh) < min_images:
        domain.skip(group, None, f"only {len(fresh)} images left (at least {min_images} needed)")
        return
    (folder / group).mkdir(parents=True, exist_ok=True)
    for content, (img, package) in fresh.items():
        dups.add(img, content)
        path = folder / group / f"{content}.png"
        img.save(path, format="PNG")
        domain.rows.append(Sample(str(path), group, None, package, content))
    domain.groups[group] = {"packages": sorted({package for _, package in fresh.values()}), "images": len(fresh)}


def build_icons(folder: Path, root: Path, size: int = SIZE, themes: tuple[IconTheme, ...] = ICON_THEMES,
                names: dict[str, tuple[str, ...]] = ICON_NAMES, min_images: int = MIN_IMAGES,
                progress: Callable[[str], None] = lambda line: None, distinct: bool = False) -> Domain:
    """Render each theme's drawing of each subject into ``folder/<theme>/<subject>.png``."""
    domain, dups = Domain(), Duplicates()
    owners = FileOwners([package for theme in themes for package, _ in theme.parts], root)
    for theme in themes:
        chosen = theme_icons(theme, root / ICONS_DIR, owners.package_of, names)
        if not chosen:
            domain.skip(theme.name, None, "not installed (no icon of the list found)")
            continue
        images = {}
        for content, (package, icon) in chosen.items():
            try:
                images[content] = (render_icon(icon, size), package)
            except RenderError as exc:
                domain.skip(theme.name, content, f"render failed: {exc}")
        _keep_group(domain, folder, theme.name, images, dups, min_images, distinct)
        progress(f"icons: {theme.name}: {domain.groups.get(theme.name, {}).get('images', 0)} images")
    return domain


def build_cards(folder: Path, root: Path, size: int = SIZE, decks: tuple[Deck, ...] = CARD_DECKS,
                min_images: int = MIN_IMAGES, progress: Callable[[str], None] = lambda line: None) -> Domain:
    """Render the 52 cards of each deck into ``folder/<deck>/<suit>_<rank>.png``."""
    domain, dups = Domain(), Duplicates()
    owners = FileOwners(sorted({d.package for d in decks}), root)
    for deck in decks:
        path = root / deck.path
        if owners.package_of(path) != deck.package:
            domain.skip(deck.name, None, f"{deck.path} is not installed by {deck.package}")
            continue
        try:
            zoom = deck_zoom(deck, path, size)
        except RenderError as exc:
            domain.skip(deck.name, None, f"render failed: {exc}")
            continue
        images = {}
        for suit, rank in CARDS:
            try:
                images[f"{suit}_{rank}"] = (render_card(deck, path, suit, rank, zoom, size), deck.package)
            except RenderError as exc:
                domain.skip(deck.name, f"{suit}_{rank}", f"render failed: {exc}")
        _keep_group(domain, folder, deck.name, images, dups, min_images)
        progress(f"cards: {deck.name}: {domain.groups.get(deck.name, {}).get('images', 0)} images")
    return domain


def package_licence(package: str, root: Path) -> str:
    """The distinct ``License:`` short names of a package's copyright file, else the corpus's reading.

    Some files (adwaita-icon-theme's) put machine-readable stanzas under a
    free-form preamble without the ``Format:`` line, which the corpus's
    reader (trainer.corpora.provenance) then scans as prose; the stanzas
    are what the package declares.
    """
    try:
        text = (root / "usr/share/doc" / package / "copyright").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    names = list(dict.fromkeys(m.group(1) for m in _LICENSE_LINE.finditer(text) if len(m.group(1)) <= 60))
    return " / ".join(names) if names else debian_package(package, root).licence


def _package_table(domains: dict[str, Domain], root: Path) -> list[dict]:
    """Version, licence (from the copyright file) and groups of every package that gave an image."""
    table = []
    for name, domain in domains.items():
        used = sorted({p for g in domain.groups.values() for p in g["packages"]})
        for package in used:
            groups = [g for g, v in domain.groups.items() if package in v["packages"]]
            table.append({"domain": name, "package": package, "version": debian_package(package, root).version,
                          "licence": package_licence(package, root), "groups": groups})
    return table


def build(out: Path, size: int = SIZE, root: Path = Path("/"),
          progress: Callable[[str], None] = lambda line: None, min_themes: int | None = None,
          distinct: bool = False) -> dict:
    """Both domains into ``out/<domain>/`` with a manifest each, and ``out/sources.json``.

    Rebuilds from scratch: only ``out/<domain>/images`` (this script's own
    output) is removed first. Everything is taken in a fixed order (no
    sampling), so the same packages give the same files. With
    ``min_themes`` the icon subjects are every name that many themes draw
    (``shared_icon_names``) instead of the 40 chosen ones; with ``distinct``
    no theme keeps two near-identical drawings (``_keep_group``).
    """
    started = time.time()
    names = ICON_NAMES
    if min_themes is not None:
        owners = FileOwners([package for theme in ICON_THEMES for package, _ in theme.parts], root)
        names = shared_icon_names(ICON_THEMES, root / ICONS_DIR, owners.package_of, min_themes)
        progress(f"icons: {len(names)} names drawn by at least {min_themes} of {len(ICON_THEMES)} themes")
    builders = {"icons": partial(build_icons, names=names, distinct=distinct), "cards": build_cards}
    domains = {}
    for name, builder in builders.items():
        images = out / name / "images"
        shutil.rmtree(images, ignore_errors=True)
        domains[name] = builder(images, root, size, progress=progress)
        if domains[name].rows:
            write_manifest(out / name / "manifest.csv", domains[name].rows)
    sources = {
        "purpose": "evaluation only: never train on these images (trainer/corpora/reserved.py)",
        "settings": {"size": size, "min_images": MIN_IMAGES, "icon_names": len(names), "min_themes": min_themes,
                     "distinct_icons": distinct, "cards": len(CARDS)},
        "domains": {name: {"groups": len(d.groups), "images": len(d.rows),
                           "per_group": {g: v["images"] for g, v in d.groups.items()}}
                    for name, d in domains.items()},
        "packages": _package_table(domains, root),
        "renderer": {"package": RENDERER, "version": debian_package(RENDERER, root).version},
        "skipped": [{"domain": name, **s} for name, d in domains.items() for s in d.skipped],
        "seconds": round(time.time() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sources.json").write_text(json.dumps(sources, indent=1, ensure_ascii=False), encoding="utf-8")
    return sources


# ------------------------------------------------------------------------------------------------ run


def _trainer_eval(manifest: Path, options: list[str], workers: int | None) -> dict:
    """``python -m trainer eval --split all`` in this process; its JSON report."""
    from trainer.cli import main as trainer_main

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        argv = ["eval", "--data", str(manifest), "--split", "all", *options, "--report", str(report)]
        if workers is not None:
            argv += ["--workers", str(workers)]
        if trainer_main(argv) != 0:
            raise SystemExit(f"python -m trainer {' '.join(argv)} failed")
        return json.loads(report.read_text(encoding="utf-8"))


def histogram_scores(manifest: Path, bins: tuple[int, int, int] = HISTOGRAM_BINS, size: int = HISTOGRAM_SIZE,
                     workers: int | None = None) -> dict:
    """A finer HSV histogram than the trainer's ``--baseline colour`` (12x4x4), Hellinger-compared.

    The same decode path (core.decode) and the same Hellinger map; only the
    bins differ. Kept here rather than in the trainer: it is a reference
    point for this benchmark, not a descriptor the app offers.
    """
    samples = read_manifest(manifest)
    rows = []
    for chunk in iter_decoded([s.path for s in samples], size, chunk=64, workers=workers):
        bad = [d.path for d in chunk if d.error is not None]
        if bad:
            raise SystemExit(f"cannot decode {bad[0]}")
        rows.append(colour_histogram(np.stack([d.pixels for d in chunk]), bins))
    vectors = hellinger(np.concatenate(rows))
    labels = np.array([s.group for s in samples])
    results = score_queries(vectors, labels)
    return {"subject": f"HSV histogram {'x'.join(map(str, bins))} at {size} px, Hellinger",
            "metrics": summarise(results),
            "content_trap": content_trap(results, labels, np.array([s.content for s in samples]))}


def embed_scores(manifest: Path, model: str | None, workers: int | None, ranking: str = "cosine") -> dict:
    """The model's P@k and mAP through ``aladin embed`` (the acceptance path) and trainer.metrics, with its content
    trap and the pairs of groups its wrong first results join most; ranked by cosine, or as the app's search ranks
    (``ranking``, :func:`trainer.metrics.app_ranking`)."""
    from core.cli import main as aladin_main

    samples = read_manifest(manifest)
    with tempfile.TemporaryDirectory() as tmp:
        listing, out = Path(tmp) / "paths.txt", Path(tmp) / "vectors.npy"
        listing.write_text("\n".join(s.path for s in samples) + "\n", encoding="utf-8")
        argv = ["embed", "--paths-from", str(listing), "--out", str(out)]
        argv += ["--model", model] if model else []
        argv += ["--workers", str(workers)] if workers is not None else []
        if aladin_main(argv) != 0:
            raise SystemExit(f"aladin {' '.join(argv)} failed")
        vectors = np.load(out)
    labels = np.array([s.group for s in samples])
    results = score_queries(vectors, labels, rank=app_ranking(vectors, ranking))
    return {"subject": f"aladin embed ({model or 'bundled model'}) + trainer.metrics, ranked by {ranking}",
            "metrics": summarise(results),
            "content_trap": content_trap(results, labels, np.array([s.content for s in samples])),
            "confusions": confusions(results, labels)}


@dataclass(frozen=True)
class Subject:
    """One row of the table: a label and how to score a manifest with it."""

    label: str
    score: Callable[[Path], dict]


def _trainer_subject(options: list[str], workers: int | None) -> Callable[[Path], dict]:
    return lambda manifest: _trainer_eval(manifest, options, workers)


def baselines(workers: int | None) -> list[Subject]:
    """What a model must beat: colour alone (two binnings) and an untrained network."""
    return [Subject("HSV 12x4x4 histogram, Hellinger (`--baseline colour`)",
                    _trainer_subject(["--baseline", "colour"], workers)),
            Subject("HSV 8x8x8 histogram, Hellinger", lambda m: histogram_scores(m, workers=workers)),
            Subject("untrained ALADIN-S, 128 px, f standardised on the set",
                    _trainer_subject(["--model", "untrained-s", "--input-size", "128", "--standardise", "fit"],
                                     workers))]


def model_subjects(models: list[str | None], workers: int | None) -> list[Subject]:
    """Each model through ``trainer eval``, then the first again through ``aladin embed``, by cosine (the
    acceptance figures) and as the app's search ranks its results."""
    rows = [Subject(f"model {model}" if model else "shipped default model (default.safetensors)",
                    _trainer_subject(["--model", model] if model else [], workers)) for model in models]
    name = models[0] or "default.safetensors"
    rows.append(Subject(f"same model via `aladin embed` ({name})", lambda m: embed_scores(m, models[0], workers)))
    rows.append(Subject(f"same, ranked as the app's search ranks (CSLS, query expansion; {name})",
                        lambda m: embed_scores(m, models[0], workers, ranking="search")))
    return rows


def _cells(result: dict | None) -> list[str]:
    if result is None:
        return ["–"] * 5
    m, trap = result["metrics"], result.get("content_trap")
    share = "–" if not trap or trap["share"] is None else f"{100 * trap['share']:.1f} %"
    return [f"{m[k]:.3f}" for k in ("P@1", "P@5", "P@10", "mAP")] + [share]


def markdown_table(results: list[dict], domains: tuple[str, ...] = DOMAINS) -> str:
    """One row per subject; P@1, P@5, P@10, mAP and content trap per domain."""
    head = ["subject"] + [f"{d} {k}" for d in domains for k in ("P@1", "P@5", "P@10", "mAP", "trap")]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for row in results:
        cells = [c for d in domains for c in _cells(row["domains"].get(d))]
        lines.append("| " + " | ".join([row["subject"]] + cells) + " |")
    return "\n".join(lines)


def cross_check(model_row: dict, embed_row: dict) -> dict[str, float]:
    """Largest difference, per domain, between the trainer's figures and the ``aladin embed`` re-run.

    Both paths decode and embed with the app's code, so anything but ~0 means
    one of them drifted from what a user's search gets.
    """
    return {domain: max(abs(result["metrics"][k] - embed_row["domains"][domain]["metrics"][k])
                        for k in ("P@1", "P@5", "P@10", "mAP"))
            for domain, result in model_row["domains"].items()}


def run(out: Path, models: list[str | None], workers: int | None, report_path: Path | None) -> dict:
    started = time.time()
    manifests = {d: out / d / "manifest.csv" for d in DOMAINS}
    missing = [str(p) for p in manifests.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"no benchmark at {out} (missing {', '.join(missing)}); run `build` first")
    base = baselines(workers)
    results = []
    for subject in base + model_subjects(models, workers):
        row = {"subject": subject.label, "domains": {}}
        for domain, manifest in manifests.items():
            print(f"ood: {subject.label} on {domain}", file=sys.stderr)
            row["domains"][domain] = subject.score(manifest)
        results.append(row)
    embedded = results[len(base) + len(models)]  # the first model through `aladin embed`, by cosine
    sources_file = out / "sources.json"
    report = {"benchmark": str(out), "purpose": "independent evaluation; never train on these images",
              "data": {d: {"manifest": str(m), "images": len(read_manifest(m)),
                           "groups": len({s.group for s in read_manifest(m)})} for d, m in manifests.items()},
              "sources": json.loads(sources_file.read_text(encoding="utf-8")) if sources_file.is_file() else None,
              "results": results, "cross_check": cross_check(results[len(base)], embedded),
              "seconds": round(time.time() - started, 1)}
    table = markdown_table(results)
    print(table)
    print(f"trainer eval vs aladin embed, largest difference: {report['cross_check']}")
    for domain, result in embedded["domains"].items():
        print(f"{domain}, wrong first results by pair of groups: "
              + ", ".join(f"{' / '.join(c['groups'])} {c['queries']}" for c in result["confusions"][:5]))
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps({**report, "table": table}, indent=1, ensure_ascii=False), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("packages", help="print the apt-get line that installs what `build` reads")
    b = sub.add_parser("build", help="render both domains from the installed packages")
    b.add_argument("out", type=Path, metavar="OUT_DIR")
    b.add_argument("--size", type=int, default=SIZE, help=f"image side in px (default {SIZE})")
    b.add_argument("--min-themes", type=int, default=None, metavar="N",
                   help=f"icon subjects: every name at least N of the {len(ICON_THEMES)} themes draw "
                        f"(default: the {len(ICON_NAMES)} names of bench/ood_sources.py)")
    b.add_argument("--distinct-drawings", action="store_true",
                   help="drop an icon that nearly repeats another subject's drawing in the same theme")
    r = sub.add_parser("run", help="score baselines and models on a built benchmark")
    r.add_argument("out", type=Path, metavar="OUT_DIR")
    r.add_argument("--model", action="append", default=None, metavar="PATH|NAME",
                   help="model file or built-in name; repeatable (default: the bundled model)")
    r.add_argument("--workers", type=int, default=None, help="decoding processes (0: in-process)")
    r.add_argument("--report", type=Path, default=None, metavar="R.json")
    args = parser.parse_args(argv)
    if args.command == "packages":
        print(install_command())
    elif args.command == "build":
        sources = build(args.out, args.size, progress=lambda line: print(line, file=sys.stderr, flush=True),
                        min_themes=args.min_themes, distinct=args.distinct_drawings)
        for name, d in sources["domains"].items():
            print(f"{name}: {d['groups']} groups, {d['images']} images -> {args.out / name / 'manifest.csv'}")
        print(f"{len(sources['skipped'])} items skipped (see {args.out / 'sources.json'})")
    else:
        run(args.out, args.model or [None], args.workers, args.report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
