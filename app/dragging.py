"""What an image dragged out of the app carries.

File URLs are what file managers, browsers and editors take; apps that take
only pixels (chat windows, some canvases) get the tile's thumbnail as image
data. The thumbnail is already in memory for a tile being dragged, so a drag
never decodes a file on the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QImage

DRAG_TYPES = ["text/uri-list", "text/plain", "application/x-qt-image"]


def file_drag_mime(paths: list[str], image: QImage | None = None) -> QMimeData:
    """``paths`` as file URLs and text, plus ``image`` (when given) as image data."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    mime.setText("\n".join(paths))
    if image is not None and not image.isNull():
        mime.setImageData(image)
    return mime
