"""Inference: architectures, bundles, preprocessing, predict, Grad-CAM / rollout, faithfulness, and the
model service that runs them in the AI process. Imports :mod:`viewer.base` only (never the fine-tune
engine or the demo code)."""
