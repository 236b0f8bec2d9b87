"""Import of the BAM-FG release (Ruta et al. 2021) from files the user has already downloaded.

BAM-FG is distributed as group lists plus images fetched separately; nothing
here downloads. The importer reads a group list (CSV or TSV) whose header
names an image column, a group column and, for the cleaned BAM-FG-C_N lists,
a consensus column. Header names vary between copies, so each column is found
among a few accepted spellings (:data:`IMAGE_COLUMNS` and friends). Each image
id is looked up in the image folder as a relative path, a file name, or a file
stem with any image extension.

Missing images are listed in ``OUT.missing.txt``; more than ``max_missing``
of them is an error naming the first few, because a silently shrunken data
set would make results incomparable with the paper.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import DataError
from trainer.manifest import IMAGE_SUFFIXES, Sample, write_manifest

IMAGE_COLUMNS = ("path", "image", "image_id", "imageid", "img", "img_id", "filename", "file", "mid", "id")
GROUP_COLUMNS = ("group", "group_id", "groupid", "project", "project_id", "projectid", "cluster", "cluster_id")
CONSENSUS_COLUMNS = ("consensus", "consensus_level", "level", "cn", "c_n")


@dataclass
class ImportReport:
    manifest: Path
    rows: int
    images: int
    groups: int
    missing: int
    levels: list[int]


def _pick(fields: list[str], candidates: tuple[str, ...], what: str, source: Path, required: bool = True) -> str | None:
    lower = {f.strip().lower(): f for f in fields}
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        raise DataError(f"{source}: no {what} column in header {fields}; expected one of {', '.join(candidates)}")
    return None


def read_group_list(path: Path, cleaned: bool, consensus: int | None) -> list[tuple[str, str, int | None]]:
    """(image id, group, consensus) rows of a BAM-FG group list."""
    if not path.is_file():
        kind = "BAM-FG-C_N cleaned group list" if cleaned else "BAM-FG-Raw project group list"
        raise DataError(f"{path}: {kind} not found; download the BAM-FG release and pass the group list file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            head = fh.read(4096)
            fh.seek(0)
            delimiter = "\t" if head.count("\t") > head.count(",") else ","
            reader = csv.DictReader(fh, delimiter=delimiter)
            fields = list(reader.fieldnames or [])
            image_col = _pick(fields, IMAGE_COLUMNS, "image", path)
            group_col = _pick(fields, GROUP_COLUMNS, "group", path)
            level_col = _pick(fields, CONSENSUS_COLUMNS, "consensus", path, required=cleaned and consensus is None)
            rows = []
            for line, row in enumerate(reader, start=2):
                level = consensus
                if level_col is not None and (row.get(level_col) or "").strip():
                    try:
                        level = int(float(row[level_col]))
                    except ValueError as exc:
                        raise DataError(f"{path}:{line}: consensus {row[level_col]!r} is not a level 1-5") from exc
                if level is not None and not 1 <= level <= 5:
                    raise DataError(f"{path}:{line}: consensus level {level} is outside 1-5")
                image, group = (row.get(image_col) or "").strip(), (row.get(group_col) or "").strip()
                if image and group:
                    rows.append((image, group, level if cleaned else None))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read group list ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: group list has no rows")
    return rows


def index_images(folder: Path) -> dict[str, Path]:
    """Every image under ``folder`` by relative path, file name and stem (first one wins)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: BAM-FG image folder not found; pass the folder the images were downloaded to")
    index: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            for key in (p.relative_to(folder).as_posix(), p.name, p.stem):
                index.setdefault(key, p)
    return index


def import_bamfg(images: Path, out: Path, raw: Path | None = None, cleaned: Path | None = None,
                 consensus: int | None = None, max_missing: float = 0.2) -> ImportReport:
    """Write a ``path,group[,consensus]`` manifest for BAM-FG-Raw or BAM-FG-C_N."""
    if (raw is None) == (cleaned is None):
        raise DataError("pass exactly one of --raw (BAM-FG-Raw project groups) or --cleaned (BAM-FG-C_N groups)")
    rows = read_group_list(raw or cleaned, cleaned is not None, consensus)
    if cleaned is not None and consensus is not None:
        rows = [r for r in rows if r[2] == consensus]
        if not rows:
            raise DataError(f"{cleaned}: no rows at consensus level {consensus}")
    index = index_images(images)
    samples, missing = [], []
    for image, group, level in rows:
        found = index.get(image) or index.get(Path(image).name) or index.get(Path(image).stem)
        if found is None:
            missing.append(image)
        else:
            samples.append(Sample(str(found), group, level))
    missing_file = out.with_name(out.name + ".missing.txt")
    if missing:
        out.parent.mkdir(parents=True, exist_ok=True)
        missing_file.write_text("\n".join(missing) + "\n", encoding="utf-8")
    if not samples or len(missing) > max_missing * len(rows):
        raise DataError(f"{len(missing)} of {len(rows)} listed images are not in {images} (e.g. "
                        f"{', '.join(missing[:3])}); the full list is in {missing_file}")
    write_manifest(out, samples)
    return ImportReport(manifest=out, rows=len(rows), images=len({s.path for s in samples}),
                        groups=len({(s.group, s.consensus) for s in samples}), missing=len(missing),
                        levels=sorted({s.consensus for s in samples if s.consensus is not None}))
