"""Small real collaborators for the library tests: a 64 px model and styled image trees.

Random-noise images all share one style, so a random network cannot tell them
apart; these images differ per style in palette, stripe frequency and angle,
and grain, which even an untrained ALADIN's statistics separate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.embedder import Embedder
from core.model import ModelConfig, build_model
from core.modelfile import META_KEY, LoadedModel, ModelInfo, load_model_file, save_model


def style_array(style: int, variant: int = 0, size: tuple[int, int] = (48, 40)) -> np.ndarray:
    s = np.random.default_rng(style)
    c1, c2 = s.random(3) * 255, s.random(3) * 255
    freq, angle, grain = s.uniform(0.05, 0.6), s.uniform(0, np.pi), s.uniform(0, 70)
    v = np.random.default_rng(100_000 + style * 100 + variant)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    wave = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + v.uniform(0, 6.3))
    img = c1 * wave[..., None] + c2 * (1 - wave[..., None]) + v.normal(0, grain, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def style_image(path: Path, style: int, variant: int = 0, size: tuple[int, int] = (48, 40), **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(style_array(style, variant, size)).save(path, **save)
    return path


def near_duplicate(src: Path, dst: Path) -> Path:
    """The same picture slightly smaller and re-encoded as JPEG."""
    img = Image.open(src).convert("RGB")
    img.resize((img.width - 4, img.height - 3)).save(dst, quality=90)
    return dst


def make_tree(root: Path, styles: int = 8, per_style: int = 3) -> list[Path]:
    """``styles`` x ``per_style`` PNGs, one sub-folder per style."""
    return [style_image(root / f"style{s:02d}" / f"v{v}.png", s, v)
            for s in range(styles) for v in range(per_style)]


def tiny_model_file(folder: Path, seed: int = 3, name: str = "tiny-s", input_size: int = 64) -> Path:
    info = ModelInfo(name=name, config=ModelConfig(input_size=input_size), trained=False, training_data="none (test)")
    return save_model(folder / f"{name}-{seed}.safetensors", build_model(info.config, seed=seed), info)


def saved_format(path: Path, info: ModelInfo, seed: int = 2) -> tuple[LoadedModel, int]:
    """A random network saved with ``info``, loaded back, and the format version its file's header records."""
    import json

    from safetensors import safe_open

    saved = save_model(path, build_model(info.config, seed=seed), info)
    with safe_open(str(saved), framework="pt") as fh:
        version = json.loads(fh.metadata()[META_KEY])["format_version"]
    return load_model_file(saved), version


def tiny_embedder(folder: Path, seed: int = 3) -> Embedder:
    return Embedder(load_model_file(tiny_model_file(folder, seed)), device="cpu")


def assert_known_error(code: int, err: str, words: str) -> None:
    """A known error as the user meets it: exit status 2 and one line (no traceback) that says ``words``."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("aladin: error: ") and words in lines[0], err


def started_engine(qtbot, library: Path, model: Path, batch_size: int = 4):
    """An app engine on ``library`` with ``model`` loaded, indexing in a thread (no child process to start),
    for the GUI tests of pages and dialogs; the caller shuts it down."""
    from app.engine import Engine

    engine = Engine()
    engine.index_in_process = False
    engine.index_options = {"workers": 0, "batch_size": batch_size}
    with qtbot.waitSignals([engine.library_ready, engine.model_ready], timeout=20000):
        engine.open_library(str(library))
        engine.load_model(str(model), "cpu")
    return engine
