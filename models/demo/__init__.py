"""The demo model's research code: the nodule simulator, its training data and ``python -m
models.demo.train_demo``. The viewer never imports it."""
