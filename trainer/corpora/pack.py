"""One-file corpus packs, for training on a machine that lacks the corpus's source packages.

A borrowed GPU machine has no Debian art packages and takes only a small
upload, so the corpus travels as its training pixels: every image decoded
once through :func:`core.images.load_array` at the trainer's load size (the
same square crop the trainer's pixel cache would hold) and stored as WebP.
The pack keeps the groups, sources and content ids, so the group split, and
therefore validation, is the same as on the original manifest.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from core.decode import iter_decoded
from core.files import atomic_write
from trainer.errors import DataError
from trainer.manifest import data_card_id, read_manifest, write_manifest

PACK_INFO = "pack.json"
MANIFEST = "manifest.csv"
BLOB = "images.bin"


@dataclass
class PackResult:
    images: int
    failed: dict[str, str]
    bytes: int


def _webp(pixels, quality: int) -> bytes:
    buf = io.BytesIO()
    options = {"lossless": True} if quality >= 100 else {"quality": quality}
    Image.fromarray(pixels).save(buf, format="WEBP", method=4, **options)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(manifest: Path, out: Path, load_size: int, quality: int = 80, workers: int | None = None,
         on_progress=None) -> PackResult:
    """Write ``out``, a tar of manifest.csv, pack.json and images.bin.

    The images are one concatenated blob with offsets in pack.json: a tar
    member per image would add about 750 bytes of header and padding to a
    2-4 KB image.
    """
    if not 1 <= quality <= 100:
        raise DataError("--quality must be 1-100 (100: lossless)")
    samples = read_manifest(manifest)
    packed, failed, offsets = [], {}, [0]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        blob_path = Path(folder) / BLOB
        with open(blob_path, "wb") as blob:
            done = 0
            for chunk in iter_decoded([s.path for s in samples], load_size, chunk=64, workers=workers):
                for d in chunk:
                    sample = samples[done]
                    done += 1
                    if d.error is not None:
                        failed[d.path] = d.error
                        continue
                    offsets.append(offsets[-1] + blob.write(_webp(d.pixels, quality)))
                    packed.append(replace(sample, path=str(Path(folder) / _image_name(len(packed)))))
                if on_progress is not None:
                    on_progress(done, len(samples))
        # Relative paths resolve against the unpacked folder wherever it lands.
        local = write_manifest(Path(folder) / MANIFEST, packed)
        info = {"origin": str(manifest), "origin_card": data_card_id(manifest), "load_size": load_size,
                "quality": quality, "images": len(packed), "failed": failed, "offsets": offsets}
        with atomic_write(out) as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            _add(tar, MANIFEST, local.read_bytes())
            _add(tar, PACK_INFO, json.dumps(info).encode())
            tar.add(blob_path, BLOB)
    return PackResult(len(packed), failed, out.stat().st_size)


def _image_name(n: int) -> str:
    return f"images/{n:06d}.webp"


def unpack(archive: Path, folder: Path) -> Path:
    """Extract a pack (refusing paths that leave ``folder``) and return its manifest's path."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise DataError(f"{archive}: not a readable corpus pack ({exc})") from exc
    manifest, blob = folder / MANIFEST, folder / BLOB
    if not (manifest.is_file() and blob.is_file() and (folder / PACK_INFO).is_file()):
        raise DataError(f"{archive}: not a corpus pack (no {MANIFEST}, {PACK_INFO} or {BLOB})")
    offsets = pack_info(folder)["offsets"]
    (folder / "images").mkdir(exist_ok=True)
    with open(blob, "rb") as fh:
        for n, (start, end) in enumerate(zip(offsets, offsets[1:])):
            fh.seek(start)
            (folder / _image_name(n)).write_bytes(fh.read(end - start))
    blob.unlink()
    return manifest


def pack_info(folder: Path) -> dict:
    return json.loads((folder / PACK_INFO).read_text())
