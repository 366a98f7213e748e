"""The training layer: the loop's callbacks (``callbacks``), ``fit``, the steps the verbs share
(``steps``: model, pipelines, evaluation, logging, registration), and the ``train`` and
``finetune`` verbs."""
