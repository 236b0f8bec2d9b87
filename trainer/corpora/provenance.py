"""Where each corpus image came from: package name, version and licence.

Read straight from the files Debian and pip install (the dpkg status database,
``/usr/share/doc/PKG/copyright``, a wheel's METADATA) rather than by running
``dpkg-query``: the same code then reads a fake package tree in the tests, and
the data card records exactly what was on the machine that built the corpus.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_LICENSE_RE = re.compile(r"^License:\s*(.+?)\s*$", re.MULTILINE)
# Old free-form copyright files: recognise the common licence phrases, in this order.
_FREEFORM = (
    (re.compile(r"public\s+domain", re.IGNORECASE), "public-domain"),
    (re.compile(r"GNU\s+(Lesser\s+|Library\s+)?General\s+Public\s+License.{0,300}?version\s+(\d)(.{0,80}?any\s+later)?",
                re.IGNORECASE | re.DOTALL),
     lambda m: f"{'LGPL' if m.group(1) else 'GPL'}-{m.group(2)}{'+' if m.group(3) else ''}"),
    (re.compile(r"GNU\s+General\s+Public\s+License(?![^.]{0,300}?version\s+\d)", re.IGNORECASE),
     "GPL (version not stated)"),
    (re.compile(r"Creative\s+Commons\s+Attribution[- ]Share[- ]?Alike\s*([\d.]+)?", re.IGNORECASE),
     lambda m: f"CC-BY-SA-{m.group(1) or '?'}".rstrip(".")),
    (re.compile(r"Creative\s+Commons\s+Attribution\s+([\d.]+)", re.IGNORECASE), lambda m: f"CC-BY-{m.group(1)}".rstrip(".")),
)


@dataclass(frozen=True)
class Package:
    """One installed package a source reads, as recorded in sources.json and DATA.md."""

    name: str
    version: str | None  # None: not installed
    licence: str
    kind: str = "deb"  # "deb" or "pypi"

    @property
    def installed(self) -> bool:
        return self.version is not None

    def as_dict(self) -> dict:
        return asdict(self)


def _dpkg_versions(status_file: Path) -> dict[str, str]:
    """Installed package -> version from a dpkg status file (paragraphs separated by blank lines)."""
    versions: dict[str, str] = {}
    try:
        text = status_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return versions
    for para in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", para, re.MULTILINE))
        name, status = fields.get("Package"), fields.get("Status", "")
        if name and status.endswith(" installed"):
            versions[name] = fields.get("Version", "")
    return versions


@lru_cache(maxsize=8)
def _dpkg_versions_cached(status_file: str, mtime: float) -> dict[str, str]:
    return _dpkg_versions(Path(status_file))


def debian_licence(copyright_file: Path) -> str:
    """The licence(s) a Debian copyright file declares, most specific first.

    Machine-readable (DEP-5) files list ``License:`` per ``Files:`` stanza; the
    distinct short names joined with " / " are what the data card needs. An
    old free-form file gives "see copyright file" rather than a guess.
    """
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown (no copyright file)"
    names: list[str] = []
    if text.startswith("Format:"):
        for match in _LICENSE_RE.finditer(text):
            short = match.group(1)
            # A short name, not a sentence that happens to follow "License:".
            if short and short not in names and len(short) <= 60 and not short.startswith("The "):
                names.append(short)
    else:
        for pattern, short in _FREEFORM:
            for match in pattern.finditer(text):
                found = short(match) if callable(short) else short
                if found not in names:
                    names.append(found)
        if any(n.startswith(("GPL-", "LGPL-")) for n in names):
            names = [n for n in names if n != "GPL (version not stated)"]  # "see the GNU GPL" boilerplate
        names = [f"{n} (free-form copyright file)" for n in names[:1]] + names[1:]
    return " / ".join(names) if names else "see copyright file"


def debian_package(name: str, root: Path = Path("/")) -> Package:
    """Version and licence of Debian package ``name`` installed under ``root``."""
    status = root / "var/lib/dpkg/status"
    try:
        versions = _dpkg_versions_cached(str(status), status.stat().st_mtime)
    except OSError:
        versions = {}
    version = versions.get(name)
    licence = debian_licence(root / "usr/share/doc" / name / "copyright") if version else "not installed"
    return Package(name, version, licence, "deb")


def pypi_package(name: str) -> Package:
    """Version and licence of an installed PyPI distribution (from its METADATA)."""
    try:
        meta = metadata.metadata(name)
    except metadata.PackageNotFoundError:
        return Package(name, None, "not installed", "pypi")
    licence = meta.get("License-Expression") or meta.get("License") or ""
    if not licence or len(licence) > 80:
        classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")]
        licence = " / ".join(classifiers) or (licence.splitlines()[0] if licence else "unknown")
    return Package(name, meta.get("Version"), licence, "pypi")


def package_info(name: str, root: Path = Path("/")) -> Package:
    """``pypi:NAME`` is a PyPI distribution; anything else a Debian package."""
    if name.startswith("pypi:"):
        return pypi_package(name.removeprefix("pypi:"))
    return debian_package(name, root)


class FileOwners:
    """Which of a few Debian packages installed a file (from ``/var/lib/dpkg/info/PKG.list``).

    Only the packages a source names are read, so every corpus image is
    attributed to a package whose version and licence the data card lists;
    a file no listed package owns is not used.
    """

    def __init__(self, packages: tuple[str, ...] | list[str], root: Path = Path("/")):
        self.root = root
        self.owner: dict[str, str] = {}
        info = root / "var/lib/dpkg/info"
        for name in packages:
            if name.startswith("pypi:"):
                continue
            for candidate in sorted(info.glob(f"{name}.list")) + sorted(info.glob(f"{name}:*.list")):
                for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.strip():
                        self.owner[line.strip()] = name

    def package_of(self, path: Path) -> str | None:
        """The owning package of ``path`` (a path under ``root``), following symlinks once."""
        for candidate in (path, path.resolve()):
            try:
                rel = "/" + str(candidate.relative_to(self.root)).lstrip("/")
            except ValueError:
                continue
            if rel in self.owner:
                return self.owner[rel]
        return None
