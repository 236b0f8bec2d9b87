"""Training images: the core decode path, an optional decoded-pixel cache, style-preserving augmentation.

Every image is decoded by :func:`core.images.load_array`, the same path the
app and ``eval`` use, at a slightly larger ``load_size``; augmentation then
takes a random ``size`` crop and a random horizontal flip (``--augment crop-flip``,
the default; ``crop`` never flips, ``none`` takes the centre crop). Crops and flips
keep palette, stroke width and texture intact; colour jitter or rescaling would
change exactly what the model must learn to see. (The paper does not say how its
group-supervised runs augmented; its only augmented rows, the SimCLR baselines of
Table 2, also jitter colour.) Only the self-supervised
term's second view (:func:`second_view`) is rescaled, and only moderately: the
same picture shown a little larger or smaller keeps its style. It is never
colour-jittered, because colour is style.

On a CPU, decoding full-size JPEGs costs more than the small network, so the
:class:`PixelCache` decodes each file once into one memory-mapped uint8 array
that every DataLoader worker reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from core.decode import iter_decoded
from core.errors import ImageError
from core.files import atomic_path, write_text_atomic
from core.images import load_array
from core.paths import cache_dir
from trainer.errors import DataError
from trainer.manifest import Sample

log = logging.getLogger(__name__)

# Decode a little larger than the input so a random crop can move.
CROP_MARGIN = 1.125
# The second view covers this share of the decoded square's side before it is resized to the input:
# 0.7-1.0 of 1.125 x size is 0.79-1.125 x size, so marks look up to 27% larger or 11% smaller than in
# the first view: enough to teach scale tolerance, too little to turn fine hatching into flat colour.
VIEW_SCALE = (0.7, 1.0)
# The default stays crop-flip, the behaviour before the option, because a synthetic out-of-domain check could
# not tell the modes apart: ALADIN-S at 32 px, 60 steps of 12-group batches on 100 procedural styles in 2
# palettes, scored on 60 unseen styles in 3 palettes, 5 seeds each, gave P@1 (mean +- s.e.) crop-flip
# 0.372 +- 0.019, crop 0.401 +- 0.031, none 0.402 +- 0.015 (untrained network 0.317): within two standard errors.
AUGMENTS = ("none", "crop", "crop-flip")


def load_size_for(size: int) -> int:
    return int(round(size * CROP_MARGIN))


def cache_root() -> Path:
    return cache_dir() / "trainer"


class PixelCache:
    """Decoded ``load_size`` pixels for a list of paths, built once, shared read-only.

    The cache key covers the paths, their sizes and mtimes and the load size,
    so an edited file or a different input size builds a new cache.
    """

    def __init__(self, folder: Path, paths: list[str], load_size: int, workers: int | None = None) -> None:
        self.paths = paths
        self.load_size = load_size
        key = hashlib.sha256(str(load_size).encode())
        for p in paths:
            try:
                st = os.stat(p)
                key.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                key.update(f"{p}\0missing\n".encode())
        stem = folder / key.hexdigest()[:20]
        self.array_path = stem.with_suffix(".npy")
        self.index_path = stem.with_suffix(".json")
        if not (self.array_path.is_file() and self.index_path.is_file()):
            self._build(workers)
        self.failed: dict[str, str] = json.loads(self.index_path.read_text())["failed"]
        self.rows = {p: i for i, p in enumerate(paths)}
        self._array: np.ndarray | None = None

    def _build(self, workers: int | None) -> None:
        from tqdm import tqdm

        self.array_path.parent.mkdir(parents=True, exist_ok=True)
        shape = (len(self.paths), self.load_size, self.load_size, 3)
        failed = {}
        row = 0
        with atomic_path(self.array_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            with tqdm(total=len(self.paths), desc="decoding once into the cache", unit="img", disable=None) as bar:
                for chunk in iter_decoded(self.paths, self.load_size, chunk=32, workers=workers):
                    for d in chunk:
                        if d.error is None:
                            out[row] = d.pixels
                        else:
                            failed[d.path] = d.error
                        row += 1
                    bar.update(len(chunk))
            out.flush()
            del out
        write_text_atomic(self.index_path, json.dumps({"paths": len(self.paths), "load_size": self.load_size,
                                                       "failed": failed}))

    def pixels(self, path: str) -> np.ndarray:
        if path in self.failed:
            raise ImageError(path, self.failed[path])
        if self._array is None:
            # Opened lazily so each worker process maps the file itself.
            self._array = np.load(self.array_path, mmap_mode="r")
        return np.asarray(self._array[self.rows[path]])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}


def augment(pixels: np.ndarray, size: int, seed: int | None, mode: str = "crop-flip") -> np.ndarray:
    """A ``size`` crop: random (``seed``) and randomly flipped as ``mode`` says, or the centre crop
    (``seed`` ``None`` or ``mode`` "none")."""
    if mode not in AUGMENTS:
        raise ValueError(f"augment mode must be one of {AUGMENTS}, got {mode!r}")
    h, w = pixels.shape[:2]
    if seed is None or mode == "none":
        top, left = (h - size) // 2, (w - size) // 2
        return pixels[top:top + size, left:left + size]
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    out = pixels[top:top + size, left:left + size]
    return out[:, ::-1] if mode == "crop-flip" and rng.random() < 0.5 else out


def second_view(pixels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Another view of the picture :func:`augment` crops: a random square at a random scale, resized to ``size``.

    Seeded from the same augmentation seed, so both views of an image are fixed
    by the batch. Different position and scale, same colours: the positive pair
    of the self-supervised term (:func:`trainer.losses.view_loss`).
    """
    rng = np.random.default_rng([seed, 1])
    h, w = pixels.shape[:2]
    side = int(round(min(h, w) * rng.uniform(*VIEW_SCALE)))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    region = Image.fromarray(np.ascontiguousarray(pixels[top:top + side, left:left + side]))
    # The resampling fit_square uses, so a view looks like an image the app decoded at that scale.
    method = Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC
    out = np.asarray(region.resize((size, size), method))
    return out[:, ::-1] if rng.random() < 0.5 else out


class PairDataset(Dataset):
    """Items are ``(index, aug_seed)`` from :class:`trainer.sampler.GroupPairSampler`.

    An image that fails to decode is replaced by the next image of its group
    (logged once): one bad file must not stop hours of training. With
    ``views`` each item also carries its :func:`second_view`. ``augment`` is
    the :func:`augment` mode of the first view.
    """

    def __init__(self, samples: list[Sample], groups: dict[str, list[int]], size: int,
                 cache: PixelCache | None = None, views: bool = False, augment: str = "crop-flip") -> None:
        self.samples = samples
        self.groups = groups
        self.views = views
        self.augment = augment
        self.size = size
        self.load_size = load_size_for(size)
        self.cache = cache
        self.group_ids = {g: i for i, g in enumerate(groups)}

    def __len__(self) -> int:
        return len(self.samples)

    def _pixels(self, index: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache.pixels(self.samples[index].path)
        return load_array(self.samples[index].path, self.load_size)[0]

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, torch.Tensor]:
        index, seed = item
        members = self.groups[self.samples[index].group]
        start = members.index(index)
        for k in range(len(members)):
            candidate = members[(start + k) % len(members)]
            try:
                pixels = self._pixels(candidate)
                break
            except ImageError as exc:
                log.warning("training: skipping unreadable %s (%s)", exc.path, exc.reason)
        else:
            raise DataError(f"no image of group {self.samples[index].group!r} can be decoded")
        crop = augment(pixels, self.size, seed, self.augment)
        crop = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
        group = self.group_ids[self.samples[index].group]
        if not self.views:
            return crop, group
        view = np.ascontiguousarray(second_view(pixels, self.size, seed).transpose(2, 0, 1))
        return crop, group, torch.from_numpy(view)


def collate(items: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """uint8 images (B, 3, H, W), group ids (the same on every rank so gathered labels agree) and the
    second views (B, 3, H, W), or ``None`` when the items carry none."""
    views = torch.stack([item[2] for item in items]) if len(items[0]) > 2 else None
    return torch.stack([item[0] for item in items]), torch.tensor([item[1] for item in items]), views


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (B, 3, H, W) to the network's float input, as :class:`core.embedder.Embedder` does."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def decode_for_eval(paths: list[str], size: int, workers: int | None = None,
                    alpha: bool = False) -> tuple[np.ndarray, list[int], dict]:
    """Pixels for validation, decoded once by the app's path: (N, size, size, 3, or 4 with ``alpha``), kept rows,
    errors."""
    pixels, kept, errors = [], [], {}
    for chunk in iter_decoded(paths, size, chunk=64, workers=workers, alpha=alpha):
        for d in chunk:
            if d.error is None:
                kept.append(len(pixels) + len(errors))
                pixels.append(d.pixels)
            else:
                errors[d.path] = d.error
    if not pixels:
        raise DataError("no validation image could be decoded")
    return np.stack(pixels), kept, errors
