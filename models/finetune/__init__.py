"""The fine-tune engine: configuration, training sets, the training loop, metrics and the new model it
saves. Builds on :mod:`models.runtime`; never imports the demo code."""
