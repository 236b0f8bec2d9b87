"""Import of the BAM-FG release (Ruta et al. 2021) from files the user has already downloaded.

BAM-FG is distributed as group lists plus images fetched separately; nothing
here downloads. The importer reads a group list (CSV or TSV) whose header
names an image column, a project and/or sub-group column and, for the cleaned
BAM-FG-C_N lists, a consensus column.

The layouts assumed, written from the paper's description (sec. 4, 5.1) and
not checked against the released files, none of which are here:

* BAM-FG-Raw (:data:`RAW_LAYOUT`): ``image_id,project_id``, one row per image;
  the Behance project is the group.
* BAM-FG-C_N (:data:`CLEANED_LAYOUT`): ``image_id,project_id,group_id,consensus``,
  one row per image and consensus level 1-5 at which it is grouped; ``group_id``
  is the style-coherent sub-group the annotators cut from the project at that
  level.

Header names vary between copies, so each column is found among a few accepted
spellings (:data:`IMAGE_COLUMNS` and friends) and column order does not matter.
When a file has both a sub-group and a project column, the sub-group is the
group (named ``project/sub-group``, so a sub-group id that is only unique within
its project stays unique) and the project is kept in the manifest's ``project``
column, where :mod:`trainer.splits` keeps every sub-group of a project, at every
level, in one split. A cleaned list with only a project column groups by project
(with a warning: it is not the cleaned grouping). Each image id is looked up in
the image folder as a relative path, a file name, or a file stem with any image
extension.

Missing images are listed in ``OUT.missing.txt``; more than ``max_missing``
of them is an error naming the first few, because a silently shrunken data
set would make results incomparable with the paper.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import DataError
from trainer.manifest import IMAGE_SUFFIXES, Sample, write_manifest

log = logging.getLogger(__name__)

RAW_LAYOUT = ("image_id", "project_id")
CLEANED_LAYOUT = ("image_id", "project_id", "group_id", "consensus")
IMAGE_COLUMNS = ("path", "image", "image_id", "imageid", "img", "img_id", "filename", "file", "mid", "id")
SUBGROUP_COLUMNS = ("group", "group_id", "groupid", "subgroup", "sub_group", "subgroup_id", "sub_group_id",
                    "cluster", "cluster_id", "style_group")
PROJECT_COLUMNS = ("project", "project_id", "projectid")
CONSENSUS_COLUMNS = ("consensus", "consensus_level", "level", "cn", "c_n")


@dataclass(frozen=True)
class Row:
    """One listed image: its id, the group it trains in, its consensus level and its project ('' if unknown)."""

    image: str
    group: str
    level: int | None
    project: str


@dataclass
class ImportReport:
    manifest: Path
    rows: int
    images: int
    groups: int
    projects: int
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


def read_group_list(path: Path, cleaned: bool, consensus: int | None) -> list[Row]:
    """The rows of a BAM-FG group list (see the module docstring for the columns).

    Raises:
        DataError: the file is missing or unreadable, lacks a needed column, or has a bad level.
    """
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
            project_col = _pick(fields, PROJECT_COLUMNS, "project", path, required=False)
            # A raw list groups by project; a cleaned one by the sub-groups cut from each project.
            sub_col = (_pick(fields, SUBGROUP_COLUMNS, "group", path, required=False)
                       if cleaned or project_col is None else None)
            if project_col is None and sub_col is None:
                raise DataError(f"{path}: no group column in header {fields}; expected a project column "
                                f"({', '.join(PROJECT_COLUMNS)}) or a group column ({', '.join(SUBGROUP_COLUMNS)})")
            if cleaned and sub_col is None:
                log.warning("%s has a project column but no sub-group column: grouping by whole projects, "
                            "not by the cleaned sub-groups", path)
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
                image = (row.get(image_col) or "").strip()
                project = (row.get(project_col) or "").strip() if project_col else ""
                sub = (row.get(sub_col) or "").strip() if sub_col else ""
                group = f"{project}/{sub}" if project and sub else sub or project
                if image and group:
                    rows.append(Row(image, group, level if cleaned else None, project))
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
    """Write a ``path,group[,consensus][,project]`` manifest for BAM-FG-Raw or BAM-FG-C_N."""
    if (raw is None) == (cleaned is None):
        raise DataError("pass exactly one of --raw (BAM-FG-Raw project groups) or --cleaned (BAM-FG-C_N groups)")
    rows = read_group_list(raw or cleaned, cleaned is not None, consensus)
    if cleaned is not None and consensus is not None:
        rows = [r for r in rows if r.level == consensus]
        if not rows:
            raise DataError(f"{cleaned}: no rows at consensus level {consensus}")
    index = index_images(images)
    samples, missing = [], []
    for r in rows:
        found = index.get(r.image) or index.get(Path(r.image).name) or index.get(Path(r.image).stem)
        if found is None:
            missing.append(r.image)
        else:
            samples.append(Sample(str(found), r.group, r.level, project=r.project))
    missing_file = out.with_name(out.name + ".missing.txt")
    if missing:
        out.parent.mkdir(parents=True, exist_ok=True)
        missing_file.write_text("\n".join(missing) + "\n", encoding="utf-8")
    if not samples or len(missing) > max_missing * len(rows):
        raise DataError(f"{len(missing)} of {len(rows)} listed images are not in {images} (e.g. "
                        f"{', '.join(missing[:3])}); the full list is in {missing_file}")
    write_manifest(out, samples)
    return ImportReport(manifest=out, rows=len(rows), images=len({s.path for s in samples}),
                        groups=len({(s.group, s.consensus) for s in samples}),
                        projects=len({s.project_key for s in samples}), missing=len(missing),
                        levels=sorted({s.consensus for s in samples if s.consensus is not None}))
