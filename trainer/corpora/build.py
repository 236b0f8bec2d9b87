"""Assemble the corpus: sample, render, deduplicate and cap groups; write the manifest.

Layout of ``out``::

    images/<source>/<group>/<n>.png    the images (shorter side = size)
    images/<source>/<group>/group.json what made them (reused on a re-run with the same settings)
    manifest.csv                       path,group,source,content  (absolute paths)
    build_log.jsonl                    one line per skipped source, group or item, with the reason
    sources.json                       per source and package: version, licence, groups, images

Deterministic: every random choice comes from a generator seeded by
(seed, group id), and files are listed in sorted order, so the same seed and
the same installed packages give the same corpus. Idempotent: a group whose
``group.json`` records the same settings and whose files are all present is
reused instead of rendered again, so an interrupted build resumes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from core.files import atomic_write
from core.images import BACKGROUND, to_rgb
from trainer.corpora.imaging import RenderError, pixel_digest
from trainer.corpora.provenance import FileOwners, package_info
from trainer.corpora.reserved import reserved_reason
from trainer.corpora.sources import FONT_SHARE, SOURCES
from trainer.corpora.spec import Context, GroupSpec, Source

# 4: objects keep their soft edges' opacity (builds before squared it when centring an object).
BUILDER_VERSION = 4
# Two images of one group closer than this (mean absolute difference of 16x16 grey
# thumbnails over the pixels where either is not background, 0-1) are near-duplicates:
# animation frames, a clock with other hands.
NEAR_DUPLICATE = 0.03
MANIFEST_FIELDS = ("path", "group", "source", "content")


@dataclass
class BuildConfig:
    out: Path
    seed: int = 0
    size: int = 160
    max_per_group: int = 40
    min_per_group: int = 4
    limit: int | None = None  # at most this many groups per source (quick builds)
    sources: tuple[str, ...] = ()  # empty: all
    root: Path = Path("/")
    procedural_styles: int = 1200
    procedural_per_group: int = 12
    restyled_styles: int = 8000
    font_share: float = FONT_SHARE

    def settings(self) -> dict:
        """What decides a group's images: reuse a group only when these match."""
        return {"builder": BUILDER_VERSION, "seed": self.seed, "size": self.size, "max": self.max_per_group,
                "min": self.min_per_group}


@dataclass
class Progress:
    """Yielded after each group, so a caller can show progress or stop between groups."""

    source: str
    group: str
    images: int
    kept: bool
    groups_done: int
    images_done: int


@dataclass
class BuildResult:
    groups: int = 0
    images: int = 0
    per_source: dict = field(default_factory=dict)
    seconds: float = 0.0


def slug(name: str) -> str:
    """A folder-safe, readable group name (ASCII letters, digits, dot, dash, underscore)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")[:60]
    if text != name:
        text = f"{text}-{hashlib.sha1(name.encode()).hexdigest()[:6]}" if text else hashlib.sha1(name.encode()).hexdigest()[:10]
    return text


def group_seed(seed: int, group_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{group_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class _Log:
    def __init__(self, path: Path):
        self.fh = open(path, "w", encoding="utf-8")
        self.counts: dict[str, int] = {}

    def skip(self, level: str, reason: str, **where) -> None:
        self.counts[reason.split(":")[0]] = self.counts.get(reason.split(":")[0], 0) + 1
        self.fh.write(json.dumps({"skipped": level, "reason": reason, **where}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.fh.close()


def _thumbnail(img) -> np.ndarray:
    """16x16 grey thumbnail as the model would see it (transparency on core's grey)."""
    return np.asarray(to_rgb(img).convert("L").resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def near_duplicate(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two thumbnails differ too little to teach anything new about the group.

    Only pixels that are not background in at least one thumbnail count: two
    small, different objects on the same grey would otherwise look alike.
    """
    grey = BACKGROUND[0] / 255.0
    drawn = (np.abs(a - grey) > 0.02) | (np.abs(b - grey) > 0.02)
    if not drawn.any():
        return True
    return float(np.abs(a - b)[drawn].mean()) < NEAR_DUPLICATE


def _save_png(img, path: Path) -> None:
    """Not synced: a corpus is written in bulk, and an interrupted build re-renders what it lacks."""
    with atomic_write(path, fsync=False) as fh:
        img.save(fh, format="PNG", compress_level=1)


def _write_json(path: Path, data) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=False)


def _reuse(folder: Path, settings: dict, keys: list[str]) -> dict | None:
    marker = folder / "group.json"
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("settings") != settings or data.get("candidates") != hashlib.sha1("\n".join(keys).encode()).hexdigest():
        return None
    if not all((folder / row["file"]).is_file() for row in data.get("images", [])):
        return None
    return data


def build_group(spec: GroupSpec, source: Source, cfg: BuildConfig, owners: FileOwners,
                seen: set[str], log: _Log, folder_name: str | None = None) -> list[dict]:
    """Render one group (or reuse it); returns its image records, empty when dropped."""
    folder_name = folder_name or slug(spec.name)
    group_id = f"{source.name}/{folder_name}"
    folder = cfg.out / "images" / source.name / folder_name
    items = []
    for item in spec.items:
        reason = reserved_reason(str(item.origin))
        if reason:
            log.skip("item", f"reserved: {reason}", group=group_id, item=item.key)
            continue
        if owners.package_of(item.origin) is None:
            log.skip("item", "not installed by a listed package", group=group_id, item=item.key)
            continue
        items.append(item)
    if len(items) < cfg.min_per_group:
        log.skip("group", f"too few candidates: {len(items)} < {cfg.min_per_group}", group=group_id)
        shutil.rmtree(folder, ignore_errors=True)
        return []
    items.sort(key=lambda it: it.key)
    keys = [it.key for it in items]
    settings = cfg.settings()
    reused = _reuse(folder, settings, keys)
    if reused is not None and not any(r["digest"] in seen for r in reused["images"]):
        records = reused["images"]
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        rng = group_seed(cfg.seed, group_id)
        records, local, thumbs = [], set(), []
        cap = min(cfg.max_per_group, spec.max_images or cfg.max_per_group)
        for index in rng.permutation(len(items)):
            if len(records) >= cap:
                break
            item = items[index]
            try:
                img = item.render(cfg.size)
            except (RenderError, OSError, ValueError) as exc:
                log.skip("item", f"render failed: {exc}", group=group_id, item=item.key)
                continue
            digest = pixel_digest(img)
            if digest in seen or digest in local:
                log.skip("item", "duplicate image", group=group_id, item=item.key)
                continue
            thumb = _thumbnail(img)
            if any(near_duplicate(thumb, other) for other in thumbs):
                log.skip("item", "near-duplicate of an image in the group", group=group_id, item=item.key)
                continue
            local.add(digest)
            thumbs.append(thumb)
            name = f"{len(records):03d}.png"
            _save_png(img, folder / name)
            records.append({"file": name, "key": item.key, "origin": str(item.origin), "content": item.content,
                            "package": owners.package_of(item.origin), "digest": digest})
        if len(records) < cfg.min_per_group:
            log.skip("group", f"too few images after rendering: {len(records)} < {cfg.min_per_group}", group=group_id)
            shutil.rmtree(folder, ignore_errors=True)
            return []
        _write_json(folder / "group.json", {"group": group_id, "name": spec.name, "settings": settings,
                                            "candidates": hashlib.sha1("\n".join(keys).encode()).hexdigest(),
                                            "images": records})
    seen.update(r["digest"] for r in records)
    return [{"path": str((folder / r["file"]).resolve()), "group": group_id, "source": source.name,
             "content": r["content"], "package": r["package"]} for r in records]


def _selected(cfg: BuildConfig) -> list[Source]:
    known = {s.name for s in SOURCES}
    unknown = [n for n in cfg.sources if n not in known]
    if unknown:
        raise ValueError(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    chosen = [s for s in SOURCES if not cfg.sources or s.name in cfg.sources]
    # Fonts last: their cap is a share of all other groups.
    return sorted(chosen, key=lambda s: s.name == "fonts")


def build(cfg: BuildConfig) -> Iterator[Progress]:
    """Build the corpus described by ``cfg``, yielding progress after each group.

    The final :class:`BuildResult` is the generator's return value (see :func:`run_build`).
    """
    started = time.monotonic()
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "images").mkdir(exist_ok=True)
    log = _Log(cfg.out / "build_log.jsonl")
    ctx = Context(root=cfg.root, size=cfg.size, seed=cfg.seed, procedural_styles=cfg.procedural_styles,
                  procedural_per_group=cfg.procedural_per_group, restyled_styles=cfg.restyled_styles)
    rows: list[dict] = []
    seen: set[str] = set()
    sources_report = {}
    kept_dirs: set[Path] = set()
    try:
        for source in _selected(cfg):
            packages = [package_info(p, cfg.root) for p in source.packages]
            report = {"why": source.why, "packages": {p.name: {**p.as_dict(), "groups": 0, "images": 0} for p in packages},
                      "groups": 0, "images": 0}
            sources_report[source.name] = report
            reserved = [reserved_reason(p) for p in source.packages if reserved_reason(p)]
            if reserved:
                log.skip("source", f"reserved: {reserved[0]}", source=source.name)
                continue
            installed = [p.name for p in packages if p.installed]
            for p in packages:
                if not p.installed:
                    log.skip("package", "not installed", source=source.name, package=p.name)
            if not installed:
                log.skip("source", "none of its packages is installed", source=source.name)
                continue
            owners = FileOwners(tuple(installed), cfg.root)
            other_groups = sum(r["groups"] for n, r in sources_report.items() if n != "fonts")
            budget = cfg.limit
            if source.name == "fonts" and other_groups:
                share_cap = int(other_groups * cfg.font_share / (1 - cfg.font_share))
                budget = share_cap if budget is None else min(budget, share_cap)
            specs = _ordered_specs(source, ctx, cfg.seed)
            for spec, folder_name in zip(specs, _unique_slugs(specs)):
                if budget is not None and report["groups"] >= budget:
                    log.skip("group", f"source cap reached ({budget} groups)", group=f"{source.name}/{folder_name}")
                    continue
                records = build_group(spec, source, cfg, owners, seen, log, folder_name)
                if records:
                    kept_dirs.add(Path(records[0]["path"]).parent)
                    rows.extend(records)
                    report["groups"] += 1
                    report["images"] += len(records)
                    for r in records:
                        pkg = report["packages"].get(r["package"])
                        if pkg is not None:
                            pkg["images"] += 1
                    for name in {r["package"] for r in records}:
                        if name in report["packages"]:
                            report["packages"][name]["groups"] += 1
                yield Progress(source.name, spec.name, len(records), bool(records),
                               sum(r["groups"] for r in sources_report.values()), len(rows))
    finally:
        log.close()
    _prune(cfg.out / "images", kept_dirs)
    _write_manifest(cfg.out / "manifest.csv", rows)
    result = BuildResult(groups=sum(r["groups"] for r in sources_report.values()), images=len(rows),
                         per_source={n: {"groups": r["groups"], "images": r["images"]} for n, r in sources_report.items()},
                         seconds=round(time.monotonic() - started, 1))
    _write_json(cfg.out / "sources.json", {"settings": {**cfg.settings(), "limit": cfg.limit,
                                                        "procedural_styles": cfg.procedural_styles,
                                                        "procedural_per_group": cfg.procedural_per_group,
                                                        "restyled_styles": cfg.restyled_styles,
                                                        "font_share": cfg.font_share},
                                           "totals": asdict(result), "sources": sources_report,
                                           "skipped": log.counts})
    return result


def _unique_slugs(specs: list[GroupSpec]) -> list[str]:
    """Folder names for groups; two groups that slug alike (a font in two folders) get -2, -3 ..."""
    used: dict[str, int] = {}
    names = []
    for spec in sorted(specs, key=lambda s: s.name):
        base = slug(spec.name)
        used[base] = used.get(base, 0) + 1
        names.append((id(spec), base if used[base] == 1 else f"{base}-{used[base]}"))
    by_id = dict(names)
    return [by_id[id(spec)] for spec in specs]


def _ordered_specs(source: Source, ctx: Context, seed: int) -> list[GroupSpec]:
    """All groups of a source in a seeded order, so ``--limit`` takes a fair, reproducible sample.

    Procedural and restyled groups keep their numbered order (the first N recipes).
    """
    specs = sorted(source.discover(ctx), key=lambda s: s.name)
    if source.name in ("procedural", "restyled", "restyled-sprites"):
        return specs
    order = group_seed(seed, f"order/{source.name}").permutation(len(specs))
    return [specs[i] for i in order]


def _prune(images: Path, kept: set[Path]) -> None:
    """Remove group folders this build did not produce, so the tree matches the manifest."""
    keep = {k.resolve() for k in kept}
    for source_dir in sorted(p for p in images.glob("*") if p.is_dir()):
        for group_dir in sorted(p for p in source_dir.glob("*") if p.is_dir()):
            if group_dir.resolve() not in keep:
                shutil.rmtree(group_dir, ignore_errors=True)
        if not any(source_dir.iterdir()):
            source_dir.rmdir()


def _write_manifest(path: Path, rows: list[dict]) -> None:
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run_build(cfg: BuildConfig, on_progress=None) -> BuildResult:
    """Drive :func:`build` to the end and return its result."""
    gen = build(cfg)
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress:
            on_progress(progress)
