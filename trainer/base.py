"""The search vector a run validates and exports, and the model a fine-tune starts from.

Fine-tuning keeps what the base model is. A shipped model file searches with some vector
(:class:`SearchVector`: f or h(f), fused with a colour histogram or not, style codes standardised or not);
the fine-tune validates on that same vector and ``export`` writes it again, unless the options of
``finetune``/``export`` say otherwise. Without this a fine-tune of the bundled model (h(f) fused with
colour at weight 0.2) validated and exported plain f, a different search from the one it started as.

A search-only model file has no content encoder or decoder (:data:`core.modelfile.SEARCH_PARTS`); a
fine-tune starts them from an initialisation seeded by ``--seed``, so two runs with one seed end with
identical weights. They are trained only when ``--lambda-rec`` asks for reconstruction; by default a
fine-tune keeps its base's reconstruction weight (0 for a search-only file, whose decoder was never
worth shipping).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from core.colour import DEFAULT_BINS
from core.model import ModelConfig, build_model
from core.modelfile import CUES, SEARCH_PARTS, LoadedModel, ModelInfo, PostProcess, load_model_file
from trainer.checkpoint import load_checkpoint, net_from_checkpoint
from trainer.losses import DEFAULT_LAMBDA
from trainer.provenance import TrainingSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchVector:
    """How search turns a network into vectors: which vector, colour and texture fusion, and standardisation.

    ``standardise`` means "standardise style codes with statistics fitted on training images" (export
    fits them; validation fits its own); it has no effect on h(f), which is a unit vector already.
    """

    embedding: str = "style"
    colour_weight: float = 0.0
    colour_bins: tuple[int, int, int] = DEFAULT_BINS
    standardise: bool = True
    texture_weight: float = 0.0
    pattern_weight: float = 0.0
    cue_size: int = 0
    silhouette_weight: float = 0.0
    granulometry_weight: float = 0.0
    contrast_weight: float = 0.0
    cooccurrence_weight: float = 0.0

    def record(self) -> dict:
        return {"embedding": self.embedding, "colour_bins": list(self.colour_bins), "standardise": self.standardise,
                "cue_size": self.cue_size, **self.weights()}

    def weights(self) -> dict[str, float]:
        """Each descriptor's ``NAME_weight``, as ModelInfo names them."""
        return {f"{name}_weight": float(getattr(self, f"{name}_weight")) for name in CUES}

    def decode_size(self, input_size: int) -> int:
        """The size validation decodes at for a network of ``input_size`` (see ModelInfo.decode_size)."""
        return max(input_size, self.cue_size)

    @classmethod
    def from_config(cls, config: dict) -> "SearchVector":
        """A run's vector from its config; a run from before this record validated f, no colour, fitted."""
        record = config.get("search") or {"embedding": config.get("embedding") or "style"}
        return cls(embedding=record["embedding"], colour_bins=tuple(record.get("colour_bins", DEFAULT_BINS)),
                   standardise=bool(record.get("standardise", True)), cue_size=int(record.get("cue_size", 0)),
                   **{f"{name}_weight": float(record.get(f"{name}_weight", 0.0)) for name in CUES})

    @classmethod
    def of_model(cls, info: ModelInfo, post: PostProcess | None) -> "SearchVector":
        """A model file's vector. A file that searches f without statistics asked for no standardisation."""
        return cls(info.embedding, colour_bins=tuple(info.colour_bins),
                   standardise=post is not None or info.embedding != "style", cue_size=info.cue_size,
                   **{f"{name}_weight": float(getattr(info, f"{name}_weight")) for name in CUES})

    def overridden(self, embedding: str | None = None, colour_weight: float | None = None,
                   standardise: bool | None = None) -> "SearchVector":
        """This vector with the given settings changed (``None`` keeps one)."""
        changes = {"embedding": embedding, "colour_weight": colour_weight, "standardise": standardise}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def model_info(self, name: str, config: ModelConfig, **fields) -> ModelInfo:
        return ModelInfo(name=name, config=config, embedding=self.embedding, colour_bins=self.colour_bins,
                         cue_size=self.cue_size, **self.weights(), **fields)


@dataclass
class Base:
    """A fine-tune's starting point: the network and what the run keeps of its base."""

    net: nn.Module
    name: str
    search: SearchVector
    lambda_rec: float
    training_set: TrainingSet | None


def seeded_network(model: LoadedModel, seed: int) -> nn.Module:
    """The model's network, with the parts a search-only file lacks initialised from ``seed``."""
    if not model.info.search_only:
        return model.net
    net = build_model(model.info.config, seed=seed)
    net.load_state_dict({k: v for k, v in model.net.state_dict().items() if k.startswith(SEARCH_PARTS)},
                        strict=False)
    return net


def load_base(source: Path, seed: int) -> Base:
    """A trainer checkpoint or a model file as the start of a fine-tune.

    Raises:
        CheckpointError: a damaged checkpoint. ModelFileError: a damaged model file.
        DataError: a damaged training-set record.
    """
    if source.suffix != ".safetensors":
        state = load_checkpoint(source)
        config = state["config"]
        record = state.get("training_set")
        return Base(net=net_from_checkpoint(state), name=str(source), search=SearchVector.from_config(config),
                    lambda_rec=float(config.get("lambda_rec") or 0.0),
                    training_set=TrainingSet.from_record(record) if record else None)
    model = load_model_file(source)
    info = model.info
    if info.search_only:
        log.info("%s is search-only: the content encoder and decoder start from seed %d", source, seed)
    return Base(net=seeded_network(model, seed), name=info.name, search=SearchVector.of_model(info, model.post),
                lambda_rec=0.0 if info.search_only else float(info.notes.get("lambda_rec", DEFAULT_LAMBDA)),
                training_set=TrainingSet.from_notes(info.notes))
