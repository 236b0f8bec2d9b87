"""Custom item-data roles shared by models and delegates (module constants, as in Picard)."""

from PySide6.QtCore import Qt

_BASE = Qt.ItemDataRole.UserRole
PathRole = _BASE + 1
ScoreRole = _BASE + 2
RankRole = _BASE + 3
ImageIdRole = _BASE + 4
WeightRole = _BASE + 5
NegativeRole = _BASE + 6
ThumbFailedRole = _BASE + 7
# The calibrated score (0-100, core.calibration) when the tile should show it, else None.
CalibratedScoreRole = _BASE + 8
