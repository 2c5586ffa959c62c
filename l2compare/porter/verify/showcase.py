"""The verify runs behind PORTING.md's layer-family sections: one corpus model per family, verified
against Keras's ``fit`` with Adam and with SGD+momentum, in float64 and float32.

A cell is (model, optimizer); its record holds verify's records (one per dtype × recipe). Its key
hashes the cell, the suite's code fingerprint and the porter's own source, so a change to the
porter reruns exactly these cells and nothing else in ``make results``.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

from l2compare.core.spec import keyed, source_fingerprint

# family -> (corpus model, the layers the family covers)
FAMILIES = {
    "batchnorm": ("cifar_resnet", "BatchNormalization, residual Add"),
    "depthwise": ("mobilenet_tiny", "DepthwiseConv2D, ReLU(6)"),
    "conv1d": ("resnet1d", "Conv1D, MaxPooling1D, GlobalAveragePooling1D"),
    "transpose": ("unet_tiny", "Conv2DTranspose, UpSampling2D, Concatenate"),
    "layernorm": ("ts_convformer", "LayerNormalization, Permute"),
    "lstm": ("lstm_text", "Embedding, LSTM"),
    "gru": ("gru_bidirectional", "Bidirectional, GRU"),
    "regularizers": ("regularized_mlp", "L1L2, activity_regularizer, GaussianNoise, LeakyReLU"),
    "nested": ("transfer_backbone", "a backbone Model called with training=False, BatchNormalization"),
    "attention": ("transformer_text", "MultiHeadAttention, token and position Embeddings, LayerNormalization"),
    "masks": ("lstm_masked", "Embedding(mask_zero=True), masked Bidirectional LSTM"),
}
OPTIMIZERS = ("adam", "momentum")
STEPS = 20


@functools.lru_cache(maxsize=1)
def porter_fingerprint() -> str:
    """The whole porter's source, every room of it: a change to any layer's port reruns the showcase."""
    return source_fingerprint("l2compare.porter")


@dataclass(frozen=True)
class VerifyCell:
    family: str
    model: str
    optimizer: str
    steps: int = STEPS

    @property
    def key(self) -> str:
        return keyed({"verify": asdict(self), "porter": porter_fingerprint()})

    @property
    def label(self) -> str:
        return f"verify {self.model} | {self.optimizer}"


def cells() -> list[VerifyCell]:
    return [VerifyCell(family, model, optimizer) for family, (model, _) in FAMILIES.items() for optimizer in OPTIMIZERS]


def run_cell(cell: VerifyCell) -> dict:
    """In a worker process (both frameworks): the cell's record, verify's records inside."""
    from l2compare.core.records import git_commit, json_safe
    from keras_impl.seeding import seed_everything
    from l2compare.porter.verify import corpus
    from l2compare.porter.verify.runner import verify

    seed_everything(0)   # the initial weights: the same whatever ran before in this worker
    records = verify(corpus.build(cell.model, "float32"), optimizer=cell.optimizer, steps=cell.steps, seed=0)
    return json_safe({"key": cell.key, "family": cell.family, "model": cell.model, "optimizer": cell.optimizer,
                      "layers": FAMILIES[cell.family][1], "records": records, "commit": git_commit(),
                      "porter": porter_fingerprint()})
