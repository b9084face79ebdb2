"""The floor under :mod:`viewer.core` and :mod:`models`: Qt-free, torch-free, DICOM-free.

What both the viewer and the model code need and that is neither DICOM nor a network: atomic writes of
what the user makes (:mod:`.atomic`), the model card and its sha256 (:mod:`.model_card`,
:mod:`.preprocess_config`), child processes (:mod:`.child_process`) and one-line errors (:mod:`.errors`).
It imports nothing of radview; :mod:`models` may import it and nothing else of :mod:`viewer`.
"""
