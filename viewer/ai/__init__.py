"""The viewer's one door to the model code: Qt-free glue from loaded series and labels to :mod:`models`.

Analysis requests from volumes (:mod:`.analysis`), the installed models (:mod:`.model_registry`,
:mod:`.model_store`), training sets from the reader's labels (:mod:`.finetune`) and the fine-tune
dialog's child process (:mod:`.finetune_service`). It may import :mod:`viewer.core`, :mod:`models` and
:mod:`viewer.base`; the window (:mod:`viewer.qt`) reaches the model code only through here, and
never imports torch: what runs torch runs in a child process.
"""
