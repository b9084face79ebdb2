"""Names of the architectures a model card may name, importable without torch or timm.

Kept apart from :mod:`models.architectures` (which imports timm to register the project networks) so
that reading a model card (:func:`models.bundle.read_card`) stays torch-free: the model picker shows
cards before torch has loaded (importing torch + timm takes ~4 s on this machine).
"""

from __future__ import annotations

__all__ = ["ARCHITECTURES"]

#: The timm ones are always created with random weights (``pretrained=False``).
ARCHITECTURES: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "efficientnet_b0",
    "vit_tiny_patch16_224",
    "smallcnn",
    "nodulemap",
)
