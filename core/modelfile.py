"""Model files: one safetensors file holding the weights, the post-processing
statistics and a JSON metadata record. safetensors never executes code on load,
so a model file from anywhere is safe to open.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from core.colour import DEFAULT_BINS, check_bins
from core.cooccurrence import COOCCURRENCE_DIM
from core.cpu import torch_threads_for
from core.errors import ModelFileError, NoTrainedModelError
from core.files import atomic_path, content_hash
from core.granulometry import GRANULOMETRY_DIM
from core.model import MAX_INPUT_SIZE, MIN_INPUT_SIZE, PROJECTION_DIM, Aladin, ModelConfig, build_model
from core.silhouette import SILHOUETTE_DIM
from core.texture import CONTRAST_DIM, PATTERN_DIM, TEXTURE_DIM
from core.whitening import Whitening

log = logging.getLogger(__name__)

FORMAT = "aladin-model"
FORMAT_VERSION = 1
# A file that fuses texture or pattern histograms, or decodes at its own cue size, is written as version 2:
# a program from before them would read it as version 1 and silently build other vectors; it refuses
# version 2 instead. Files without them stay version 1, so both programs keep reading those.
DESCRIPTOR_FORMAT_VERSION = 2
# A file that whitens its vectors is version 3, for the same reason, and one that fuses silhouettes
# (core.silhouette), whose pixels carry opacity, version 4; one that fuses a granulometry
# (core.granulometry), version 5; one that fuses contrast patterns (core.texture) or whose whitening keeps
# fewer directions than its vectors have (core.whitening), version 6; one that fuses co-occurring patterns
# (core.cooccurrence), version 7.
WHITENED_FORMAT_VERSION = 3
SILHOUETTE_FORMAT_VERSION = 4
GRANULOMETRY_FORMAT_VERSION = 5
CONTRAST_FORMAT_VERSION = 6
COOCCURRENCE_FORMAT_VERSION = 7
READABLE_VERSIONS = (FORMAT_VERSION, DESCRIPTOR_FORMAT_VERSION, WHITENED_FORMAT_VERSION, SILHOUETTE_FORMAT_VERSION,
                     GRANULOMETRY_FORMAT_VERSION, CONTRAST_FORMAT_VERSION, COOCCURRENCE_FORMAT_VERSION)
META_KEY = "aladin"
EMBEDDINGS = ("style", "projection")
# Descriptors a model file can fuse beside its network, in the order of their parts in a vector.
CUES = ("colour", "texture", "pattern", "silhouette", "granulometry", "contrast", "cooccurrence")
BUILTIN_SEED = 20210
BUILTINS = {"untrained-s": "s", "untrained-l": "l"}
RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "models"
DEFAULT_MODEL = RESOURCES / "default.safetensors"
# The network parts search runs; a search-only model file holds just these.
SEARCH_PARTS = ("style_encoder.", "head.")
POST_KEYS = ("post.mean", "post.scale")
WHITEN_KEYS = ("whiten.mean", "whiten.matrix")
# Loading embeds one normalised random image of this size, so a network with NaN or infinite
# weights is refused at once instead of filling a library with NaN vectors. At the smallest size
# any model takes it costs 12 ms for ALADIN-S and 50-70 ms for ALADIN-L on one thread of a busy
# 2-core machine (about 30 and 100 ms on the first call), against 2.4 s just to build ALADIN-L.
PROBE_SIZE = MIN_INPUT_SIZE


@dataclass
class ModelInfo:
    """What a model file says about itself; saved as JSON in the file header.

    ``config`` is the architecture that rebuilds the network (the trainer's
    in-memory ResNet baseline carries its own config of the same shape; it is
    never saved); the other fields describe how search uses it and where it
    came from. In the header the config's settings sit at the top level beside
    the rest (see :meth:`to_record`), as in every model file written so far, so
    older and newer versions of the program read each other's files.

    ``embedding`` records which vector search indexes: the style code f ("style")
    or the projection h(f) ("projection"). A ``colour_weight`` above zero fuses an
    HSV colour histogram with it (core.colour), a ``texture_weight`` above zero a histogram of
    gradients and a ``pattern_weight`` one of local binary patterns (core.texture), a ``silhouette_weight``
    one of how transparency is drawn (core.silhouette), a ``granulometry_weight`` one of the widths of
    bright and dark structures (core.granulometry), a ``contrast_weight`` one of local binary patterns by
    how strongly their edges step (core.texture), a ``cooccurrence_weight`` one of pairs of patterns a few
    pixels apart (core.cooccurrence), each weighted in the cosine score; the network keeps the rest of the
    weight. The descriptors are taken from pixels decoded at ``cue_size`` (0: the network's input size), the
    network sees the same pixels scaled to its input size: line work needs more pixels than a small network
    does. ``trained`` is False only for the
    built-in random baselines, so they can never be mistaken for a real model. A ``search_only`` file
    holds just the parts search runs (style encoder and projection head): a model trained without the
    reconstruction term has no trained decoder worth shipping, and leaving it out makes the file ~3x smaller.
    """

    name: str
    config: ModelConfig = field(default_factory=ModelConfig)
    embedding: str = "style"
    colour_weight: float = 0.0
    colour_bins: tuple[int, int, int] = DEFAULT_BINS
    texture_weight: float = 0.0
    pattern_weight: float = 0.0
    silhouette_weight: float = 0.0
    granulometry_weight: float = 0.0
    contrast_weight: float = 0.0
    cooccurrence_weight: float = 0.0
    cue_size: int = 0
    trained: bool = True
    training_data: str = ""
    version: str = "1"
    search_only: bool = False
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse values search cannot work with: a file asking for them would fail later, or exhaust memory.

        Raises:
            ValueError: an unknown embedding kind, a descriptor's weight outside [0, 1) or
                together leaving the network no weight, colour bins out of range, or a cue size no decoder can give.
        """
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        weights = {name: getattr(self, f"{name}_weight") for name in CUES}
        for name, weight in weights.items():
            if type(weight) not in (int, float) or not 0.0 <= weight < 1.0:  # NaN fails the range test too
                raise ValueError(f"{name} weight must be a number in [0, 1), got {weight!r}")
        if sum(weights.values()) >= 1.0:
            raise ValueError(f"the {', '.join(CUES)} weights must leave the network some weight, got "
                             f"{' + '.join(repr(w) for w in weights.values())}")
        size = self.cue_size
        if type(size) is not int or (size and not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE):
            raise ValueError(f"cue size must be 0 or from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} px, got {size!r}")
        self.colour_bins = check_bins(self.colour_bins)

    @property
    def reads_alpha(self) -> bool:
        """Whether the descriptors need each pixel's opacity beside its colour (:func:`core.images.load_array`)."""
        return self.silhouette_weight > 0

    @property
    def decode_size(self) -> int:
        """The size pixels are decoded at: the larger of the network's input and the descriptors' size."""
        return max(self.config.input_size, self.cue_size)

    def to_record(self) -> dict:
        """The flat JSON record a model file holds: the config's settings beside the other fields."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config"}
        return {**self.config.settings(), **own}

    @classmethod
    def from_record(cls, record: dict) -> "ModelInfo":
        """Read :meth:`to_record`'s output back; keys this version does not know are ignored.

        Raises:
            TypeError: a required field is missing or a value has the wrong kind.
            ValueError: a setting is out of range (see :meth:`check` and :class:`ModelConfig`).
        """
        own = {f.name for f in fields(cls)} - {"config"}
        return cls(config=ModelConfig.from_settings(record), **{k: v for k, v in record.items() if k in own})


@dataclass
class PostProcess:
    """Per-dimension standardisation of raw style codes, fitted on a collection.

    Raw codes are dominated by a few high-magnitude channels; centring and
    scaling each dimension lets every channel's statistic vote.
    """

    mean: np.ndarray
    scale: np.ndarray

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean) * self.scale

    @classmethod
    def fit(cls, raw: np.ndarray, eps: float = 1e-6) -> "PostProcess":
        raw = np.asarray(raw, dtype=np.float64)
        return cls(mean=raw.mean(0).astype(np.float32),
                   scale=(1.0 / (raw.std(0) + eps)).astype(np.float32))


@dataclass
class LoadedModel:
    """A network ready for inference, with where it came from."""

    net: Aladin
    info: ModelInfo
    post: PostProcess | None
    source: str
    checksum: str
    whitening: Whitening | None = None


def distinct_names(first: tuple[str, str], second: tuple[str, str]) -> tuple[str, str]:
    """Two models' ``(name, checksum)`` as a message names them side by side.

    A bundled model updated in place keeps its name, so "indexed with 'X'; searching with 'X' would
    compare incompatible vectors" would read as nonsense: equal names get the start of their
    checksums, as long as it takes to tell them apart.
    """
    (a, a_sum), (b, b_sum) = first, second
    if a != b:
        return repr(a), repr(b)
    width = 8
    while width < max(len(a_sum), len(b_sum)) and a_sum[:width] == b_sum[:width]:
        width += 4
    return f"{a!r} (checksum {a_sum[:width]})", f"{b!r} (checksum {b_sum[:width]})"


def format_version(info: ModelInfo, whitening: Whitening | None = None) -> int:
    """The oldest file format that holds ``info`` and ``whitening`` without changing what its vectors mean."""
    if info.cooccurrence_weight > 0:
        return COOCCURRENCE_FORMAT_VERSION
    if info.contrast_weight > 0 or (whitening is not None and whitening.out_dim < whitening.dim):
        return CONTRAST_FORMAT_VERSION
    if info.granulometry_weight > 0:
        return GRANULOMETRY_FORMAT_VERSION
    if info.reads_alpha:
        return SILHOUETTE_FORMAT_VERSION
    if whitening is not None:
        return WHITENED_FORMAT_VERSION
    descriptors = info.texture_weight > 0 or info.pattern_weight > 0 or info.cue_size != 0
    return DESCRIPTOR_FORMAT_VERSION if descriptors else FORMAT_VERSION


def save_model(path: str | Path, net: Aladin, info: ModelInfo, post: PostProcess | None = None,
               whitening: Whitening | None = None) -> Path:
    """Write a model file atomically: a crash mid-write leaves the previous file intact.

    ``whitening`` applies to the finished vector of ``info``'s embedding (:func:`vector_dim`).
    """
    from safetensors.torch import save_file

    info.check()
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()
               if not info.search_only or k.startswith(SEARCH_PARTS)}
    if post is not None:
        tensors["post.mean"] = torch.from_numpy(np.ascontiguousarray(post.mean, dtype=np.float32))
        tensors["post.scale"] = torch.from_numpy(np.ascontiguousarray(post.scale, dtype=np.float32))
    if whitening is not None:
        if whitening.fitted_for != vector_layout(info):
            raise ValueError(f"the whitening was fitted on other vectors ({whitening.fitted_for}) than this "
                             f"model makes ({vector_layout(info)})")
        tensors["whiten.mean"] = torch.from_numpy(np.ascontiguousarray(whitening.mean, dtype=np.float32))
        # Half precision halves the file (a 1,216-value matrix is 5.9 MB in float32); retrieval on
        # validation and the benchmark was the same to the third decimal.
        tensors["whiten.matrix"] = torch.from_numpy(np.ascontiguousarray(whitening.matrix, dtype=np.float16))
    meta = {"format": FORMAT, "format_version": format_version(info, whitening), **info.to_record()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return path


def _read_info(meta: dict | None, path: Path) -> ModelInfo:
    if not meta or META_KEY not in meta:
        raise ModelFileError(f"{path}: not an ALADIN model file (no '{META_KEY}' metadata)")
    try:
        record = json.loads(meta[META_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: damaged model metadata ({exc})") from exc
    if not isinstance(record, dict) or record.pop("format", None) != FORMAT:
        raise ModelFileError(f"{path}: not an ALADIN model file")
    version = record.pop("format_version", None)
    if version not in READABLE_VERSIONS:
        raise ModelFileError(f"{path}: model file format {version} is not supported (expected one of "
                             f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        return ModelInfo.from_record(record)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model metadata ({exc})") from exc


def _read_post(tensors: dict[str, torch.Tensor], dim: int, path: Path) -> PostProcess | None:
    """The file's post-processing statistics, if it has them, checked against the style code they standardise.

    Raises:
        ModelFileError: only one of the two is present, or they have the wrong length or non-finite values.
    """
    present = [key in tensors for key in POST_KEYS]
    if not any(present):
        return None
    if not all(present):
        raise ModelFileError(f"{path}: incomplete post-processing statistics (a file holds both {POST_KEYS} "
                             "or neither)")
    mean, scale = (tensors[key].float().numpy() for key in POST_KEYS)
    if mean.shape != (dim,) or scale.shape != (dim,):
        raise ModelFileError(f"{path}: post-processing statistics of shapes {mean.shape} and {scale.shape} do not fit "
                             f"the network's {dim}-value style code")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise ModelFileError(f"{path}: post-processing statistics hold NaN or infinite values")
    return PostProcess(mean=mean, scale=scale)


def vector_layout(info: ModelInfo) -> tuple:
    """What the finished vectors of ``info`` depend on beyond the weights: a whitening fits only these."""
    return (info.embedding, info.config.input_size, info.cue_size, tuple(info.colour_bins),
            *(float(getattr(info, f"{name}_weight")) for name in CUES))


def raw_layout(info: ModelInfo) -> tuple:
    """What a raw vector (what a library stores) holds beyond the network's weights: the fusion weights and a
    whitening only change how raw vectors are finished, these change the vectors themselves."""
    return (info.embedding, info.config.input_size, info.cue_size, tuple(info.colour_bins), tuple(cue_dims(info)))


# A re-exported model file lists here the checksums of the files whose raw vectors it makes too (same
# network and statistics, same raw_layout), so a library indexed with one of them switches to it without
# re-embedding a single image (core.indexer).
SAME_RAW_NOTE = "same_raw_vectors_as"


def makes_raw_vectors_of(model: LoadedModel, checksum: str) -> bool:
    """Whether ``model``'s raw vectors are those of the model file with ``checksum`` (equal files included)."""
    return checksum == model.checksum or checksum in model.info.notes.get(SAME_RAW_NOTE, ())


def cue_dims(info: ModelInfo) -> dict[str, int]:
    """Length of each descriptor ``info`` fuses (weight above zero), in the order of their parts in a vector."""
    dims = {"colour": int(np.prod(info.colour_bins)), "texture": TEXTURE_DIM, "pattern": PATTERN_DIM,
            "silhouette": SILHOUETTE_DIM, "granulometry": GRANULOMETRY_DIM, "contrast": CONTRAST_DIM,
            "cooccurrence": COOCCURRENCE_DIM}
    return {name: dims[name] for name in CUES if getattr(info, f"{name}_weight") > 0}


def vector_dim(info: ModelInfo) -> int:
    """Length of the search vector of ``info``'s own embedding before any whitening: the network part and its
    cues (raw vectors are as long)."""
    net = info.config.style_dim if info.embedding == "style" else PROJECTION_DIM
    return net + sum(cue_dims(info).values())


def _read_whitening(tensors: dict[str, torch.Tensor], info: ModelInfo, path: Path) -> Whitening | None:
    """The file's whitening, if it has one, checked against the vectors it whitens.

    Raises:
        ModelFileError: only one of its two tensors is present, they have the wrong shapes, or
            non-finite values.
    """
    present = [key in tensors for key in WHITEN_KEYS]
    if not any(present):
        return None
    if not all(present):
        raise ModelFileError(f"{path}: incomplete whitening (a file holds both {WHITEN_KEYS} or neither)")
    mean, matrix = (tensors[key].float().numpy() for key in WHITEN_KEYS)
    dim = vector_dim(info)
    if mean.shape != (dim,) or matrix.ndim != 2 or matrix.shape[0] != dim or not 1 <= matrix.shape[1] <= dim:
        raise ModelFileError(f"{path}: whitening of shapes {mean.shape} and {matrix.shape} does not fit the "
                             f"model's {dim}-value vectors")
    if not (np.isfinite(mean).all() and np.isfinite(matrix).all()):
        raise ModelFileError(f"{path}: whitening holds NaN or infinite values")
    return Whitening(mean=mean, matrix=matrix, fitted_for=vector_layout(info))


def _gives_finite_vectors(net: Aladin, post: PostProcess | None) -> bool:
    """Embed one fixed random image: NaN or infinite weights (a damaged file, a diverged training run) show here.

    Both vectors search may index are checked, the style code (post-processed, if the file says how)
    and its projection, whichever the file records: ``aladin index`` can ask for the other one.
    """
    x = torch.randn(1, 3, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(0))
    # One thread: on busy cores, OpenMP threads waiting for each other made this 30 times slower.
    with torch_threads_for(1), torch.inference_mode():
        style = net.style_code(x)
        vectors = [style, net.head(style)]
    if post is not None:
        vectors.append(torch.from_numpy(post.apply(style.numpy())))
    return all(bool(torch.isfinite(v).all()) for v in vectors)


def load_model_file(path: str | Path) -> LoadedModel:
    """Load a model file and prove that it gives finite vectors.

    Raises:
        ModelFileError: the file is missing, damaged, not an ALADIN model file, holds settings out
            of range, or its network gives NaN or infinite values; the message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from safetensors import safe_open

    path = Path(path)
    try:
        found = path.is_file()
    except PermissionError as exc:  # behind a folder this user may not enter
        raise ModelFileError(f"{path}: model file cannot be read ({exc.strerror})") from exc
    if not found:
        raise ModelFileError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: damaged or unreadable model file ({exc})") from exc
    info = _read_info(meta, path)
    net = build_model(info.config)
    weights = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    mismatch = ModelFileError(f"{path}: weights do not match an ALADIN-{info.config.variant.upper()} network")
    try:
        missing, unexpected = net.load_state_dict(weights, strict=not info.search_only)
    except RuntimeError as exc:
        raise mismatch from exc
    if unexpected or any(k.startswith(SEARCH_PARTS) for k in missing):
        raise mismatch
    post = _read_post(tensors, info.config.style_dim, path)
    whitening = _read_whitening(tensors, info, path)
    net.eval()
    if not _gives_finite_vectors(net, post):
        raise ModelFileError(f"{path}: the network gives NaN or infinite values; its weights are damaged "
                             "or its training diverged")
    return LoadedModel(net=net, info=info, post=post, source=str(path), checksum=content_hash(path),
                       whitening=whitening)


def builtin_model(name: str) -> LoadedModel:
    """A fixed-seed random network: the baseline a trained model must beat."""
    variant = BUILTINS[name]
    info = ModelInfo(name=name, config=ModelConfig(variant=variant), trained=False,
                     training_data="none (random init)")
    net = build_model(info.config, seed=BUILTIN_SEED).eval()
    return LoadedModel(net=net, info=info, post=None, source=f"builtin:{name}",
                       checksum=f"builtin:{name}:seed{BUILTIN_SEED}:v{FORMAT_VERSION}")


def load_model(spec: str | Path | None = None) -> LoadedModel:
    """Resolve a ``--model`` value: a built-in name, a file path, or None for the default.

    Raises:
        NoTrainedModelError: no model was named and no default model is installed.
        ModelFileError: the named file is missing or damaged.
    """
    if spec is None:
        if not DEFAULT_MODEL.is_file():
            raise NoTrainedModelError(
                "no trained model is installed; pass --model PATH to a model file, "
                "or --model untrained-s for the random (untrained) baseline")
        return load_model_file(DEFAULT_MODEL)
    if str(spec) in BUILTINS:
        model = builtin_model(str(spec))
        log.warning("using %s: a random, untrained network (baseline only)", spec)
        return model
    return load_model_file(spec)
