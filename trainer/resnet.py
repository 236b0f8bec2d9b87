"""The discriminative baseline of sec. 5.4-5.6: a ResNet-50 trained with the same contrastive scheme.

It exposes the same surface as :class:`core.model.Aladin` (``config``,
``style_code``, ``head``, ``forward(x, reconstruct)``), so the trainer, the
logit-accumulation step and :class:`core.embedder.Embedder` run it unchanged;
its "style code" is the pooled 2048-D feature. Fused with ALADIN in ``eval``
(``--fuse-with``) it reproduces the paper's "Fused" rows.

Two deliberate differences from a stock ResNet-50: it is trained from scratch
(no ImageNet weights are downloaded), and batch norm is replaced by group
norm. Batch statistics would make an image's embedding depend on its chunk,
so logit accumulation could no longer reproduce the full-batch gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.model import AladinOutput, ProjectionHead

# Pooled feature width per depth; resnet18 is the same design, small enough for fast tests.
FEATURES = {"resnet50": 2048, "resnet18": 512}
GROUPS = 32


@dataclass(frozen=True)
class ResNetConfig:
    input_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    variant: str = "resnet50"

    @property
    def style_dim(self) -> int:
        return FEATURES[self.variant]


class ResNetStyle(nn.Module):
    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        import torchvision.models

        if config.variant not in FEATURES:
            raise ValueError(f"unknown ResNet {config.variant!r}; expected one of {tuple(FEATURES)}")
        self.config = config
        make = getattr(torchvision.models, config.variant)
        backbone = make(weights=None, norm_layer=lambda c: nn.GroupNorm(GROUPS, c))
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = ProjectionHead(config.style_dim)

    def style_code(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).float()

    def forward(self, x: torch.Tensor, reconstruct: bool = False) -> AladinOutput:
        if reconstruct:
            raise ValueError("the ResNet baseline has no decoder; train it with --lambda-rec 0")
        style = self.style_code(x)
        return AladinOutput(style=style, projection=self.head(style), reconstruction=None)


def build_resnet(input_size: int, seed: int | None = None, depth: str = "resnet50") -> ResNetStyle:
    config = ResNetConfig(input_size=input_size, variant=depth)
    if seed is None:
        return ResNetStyle(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNetStyle(config)
