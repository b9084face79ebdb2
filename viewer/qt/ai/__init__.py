"""The AI second reader in the window, one package per feature (as Spyder's plugins are).

- :mod:`.inference`: the inference lane, one long-lived :class:`~viewer.qt.workers.Worker` that owns the
  loaded models and answers analysis requests (torch is imported there, lazily, in the worker thread);
- :mod:`.state`: :class:`AIState`, the controller's AI view state (model, results cache, overlay settings,
  navigation), the only object that submits inference requests;
- :mod:`.panel` and :mod:`.plot`: the AI dock (model picker and card, probability, faithfulness badge,
  overlay controls) and the probability-along-slices plot.

Nothing here imports torch at import time: the window opens before torch loads.
"""
