"""Build an openly licensed style corpus from art installed by Debian and PyPI packages.

``python -m trainer.corpora build --out data/corpus`` writes images grouped by
style plus ``manifest.csv`` (path,group,source,content) for ``python -m trainer``.
Freedesktop icon themes and playing-card decks are never used: they are
reserved for evaluation (:mod:`trainer.corpora.reserved`). The data card is
resources/models/DATA.md.
"""

from trainer.corpora.build import BuildConfig, BuildResult, build, run_build
from trainer.corpora.reserved import is_reserved, reserved_reason

__all__ = ["BuildConfig", "BuildResult", "build", "run_build", "is_reserved", "reserved_reason"]
