"""The ALADIN network (Ruta et al., ICCV 2021, sec. 3.1).

Two encoder branches feed a decoder: the content encoder turns an image into
instance-normalised feature maps that carry *what* is drawn; the style encoder's
per-layer activation statistics (AdaIN mean and standard deviation) carry *how*
it is drawn. Concatenating those statistics over all style layers gives the
style code f(x) that search uses. The decoder mirrors the style encoder and
re-injects each layer's statistics into the content features with AdaIN, so a
reconstruction loss forces f(x) to hold everything the content branch lacks.

The paper writes sigma squared in eq. 1; like Huang & Belongie's AdaIN we use
the standard deviation, which has the same unit as the activations and keeps
the style code well scaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5
VARIANTS = ("s", "l")
PROJECTION_HIDDEN = 512
PROJECTION_DIM = 128

# Style-encoder widths: ALADIN-S is three plain conv layers (64, 128, 256
# filters); ALADIN-L takes the statistics at the last ReLU of each VGG-16 block.
STYLE_CHANNELS = {"s": (64, 128, 256), "l": (64, 128, 256, 512, 512)}
# Indices of those ReLUs in torchvision's vgg16().features.
VGG16_BLOCK_ENDS = (3, 8, 15, 22, 29)
CONTENT_CHANNELS = 256
# Input sizes a model may ask for. The models so far use 64 to 256 px; 1024 px leaves room for any
# real model while refusing sizes whose activations cannot fit in memory: at 1024 px the first
# style layer's output alone is 64 x 1024 x 1024 floats, 256 MB per image.
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 1024


@dataclass(frozen=True)
class ModelConfig:
    """Architecture settings; saved in every model file so it can be rebuilt."""

    variant: str = "s"
    input_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    style_channels: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        """Refuse settings no network can run with, so a bad model file fails on load, not mid-index.

        Raises:
            ValueError: an unknown variant, an input size out of range, or unusable pixel statistics.
        """
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown ALADIN variant {self.variant!r}; expected one of {VARIANTS}")
        size = self.input_size
        if type(size) is not int or not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE or size % 8:  # bool is no size
            raise ValueError(f"input size must be a multiple of 8 from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} px, "
                             f"got {size!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if (not isinstance(values, tuple) or len(values) != 3
                    or not all(type(v) in (int, float) and math.isfinite(v) for v in values)):
                raise ValueError(f"pixel {name} must be three finite numbers, got {values!r}")
        if min(self.std) <= 0:
            raise ValueError(f"pixel std must be positive, got {self.std!r}")
        object.__setattr__(self, "style_channels", STYLE_CHANNELS[self.variant])

    @property
    def style_dim(self) -> int:
        """Length of f(x): a mean and a std for every style-encoder channel (896 for S)."""
        return 2 * sum(self.style_channels)

    def settings(self) -> dict:
        """The values that rebuild this config (``style_channels`` follows from ``variant``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    @classmethod
    def from_settings(cls, record: dict) -> "ModelConfig":
        """Rebuild from :meth:`settings` read back from JSON (lists become tuples); other keys are ignored.

        Raises:
            ValueError: an unknown variant or an unusable input size.
            TypeError: a value of the wrong kind.
        """
        names = {f.name for f in fields(cls) if f.init}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in names})


def adain_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation over the spatial axes.

    The biased (population) variance is used, as instance normalisation does.
    """
    mean = x.mean(dim=(2, 3))
    std = (x.var(dim=(2, 3), unbiased=False) + EPS).sqrt()
    return mean, std


def adain(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Eq. 1: normalise ``content`` per channel, then give it the style's statistics."""
    c_mean, c_std = adain_stats(content)
    normalised = (content - c_mean[..., None, None]) / c_std[..., None, None]
    return normalised * std[..., None, None] + mean[..., None, None]


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1,
                     padding_mode="reflect")


class StyleEncoderS(nn.Module):
    """ALADIN-S: three conv layers (64, 128, 256 filters), the last two downsampling."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3 = STYLE_CHANNELS["s"]
        self.layers = nn.ModuleList([
            nn.Sequential(_conv(3, c1, 3, 1), nn.ReLU(inplace=True)),
            nn.Sequential(_conv(c1, c2, 4, 2), nn.ReLU(inplace=True)),
            nn.Sequential(_conv(c2, c3, 4, 2), nn.ReLU(inplace=True)),
        ])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class StyleEncoderL(nn.Module):
    """ALADIN-L: torchvision's VGG-16 feature stack, trained from scratch.

    Statistics are read at the last ReLU of each of the five blocks. The ReLUs
    are made out-of-place so the tapped activations are not overwritten.
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16

        features = vgg16(weights=None).features
        for i, module in enumerate(features):
            if isinstance(module, nn.ReLU):
                features[i] = nn.ReLU(inplace=False)
        self.features = features[: VGG16_BLOCK_ENDS[-1] + 1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, module in enumerate(self.features):
            x = module(x)
            if i in VGG16_BLOCK_ENDS:
                feats.append(x)
        return feats


class ContentEncoder(nn.Module):
    """Four conv layers with instance norm: a style-free, 1/4-resolution content map."""

    def __init__(self) -> None:
        super().__init__()
        widths = (64, 128, 256, CONTENT_CHANNELS)
        specs = ((3, widths[0], 7, 1), (widths[0], widths[1], 4, 2),
                 (widths[1], widths[2], 4, 2), (widths[2], widths[3], 3, 1))
        self.net = nn.Sequential(*[
            nn.Sequential(_conv(cin, cout, k, s), nn.InstanceNorm2d(cout), nn.ReLU(inplace=True))
            for cin, cout, k, s in specs
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """Mirror of the style encoder: stage i applies AdaIN with the i-th deepest style layer.

    The content map is at 1/4 resolution; the last two stages upsample by two
    each so the output matches the input size for any variant.
    """

    def __init__(self, style_channels: tuple[int, ...]) -> None:
        super().__init__()
        mirrored = tuple(reversed(style_channels))
        self.upsample_at = {len(mirrored) - 2, len(mirrored) - 1}
        stages = []
        cin = CONTENT_CHANNELS
        for cout in mirrored:
            stages.append(nn.Sequential(_conv(cin, cout, 3, 1), nn.ReLU(inplace=True)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.to_rgb = _conv(cin, 3, 3, 1)

    def forward(self, content: torch.Tensor, stats: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        y = content
        for i, (stage, (mean, std)) in enumerate(zip(self.stages, reversed(stats))):
            if i in self.upsample_at:
                y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = adain(stage(y), mean, std)
        return self.to_rgb(y)


class ProjectionHead(nn.Module):
    """h(f): MLP (hidden 512) to a 128-D unit vector, where the contrastive loss lives."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, PROJECTION_HIDDEN), nn.ReLU(inplace=True),
                                 nn.Linear(PROJECTION_HIDDEN, PROJECTION_DIM))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(f), dim=1)


@dataclass
class AladinOutput:
    style: torch.Tensor
    projection: torch.Tensor
    reconstruction: torch.Tensor | None


class Aladin(nn.Module):
    """ALADIN-S or ALADIN-L. ``forward`` returns f, h(f) and, when asked, the reconstruction."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.style_encoder = StyleEncoderS() if config.variant == "s" else StyleEncoderL()
        self.content_encoder = ContentEncoder()
        self.decoder = Decoder(config.style_channels)
        self.head = ProjectionHead(config.style_dim)

    def style_stats(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Statistics in float32 even under autocast: half-precision variances lose the
        # small-channel detail that separates similar styles.
        return [adain_stats(feat.float() if feat.dtype in (torch.float16, torch.bfloat16) else feat)
                for feat in self.style_encoder(x)]

    @staticmethod
    def flatten_stats(stats: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """f(x): [mean_1, std_1, mean_2, std_2, ...] concatenated layer by layer."""
        return torch.cat([t for pair in stats for t in pair], dim=1)

    def style_code(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten_stats(self.style_stats(x))

    def forward(self, x: torch.Tensor, reconstruct: bool = True) -> AladinOutput:
        stats = self.style_stats(x)
        style = self.flatten_stats(stats)
        recon = self.decoder(self.content_encoder(x), stats) if reconstruct else None
        return AladinOutput(style=style, projection=self.head(style), reconstruction=recon)


def build_model(config: ModelConfig, seed: int | None = None) -> Aladin:
    """A fresh network; a seed makes the random initialisation reproducible."""
    if seed is None:
        return Aladin(config)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return Aladin(config)
    finally:
        torch.random.set_rng_state(state)
