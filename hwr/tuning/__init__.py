"""The tuning layer: the ``tune`` verb. ``config`` (its parameters), ``space`` (the search-space
file and its mapping to Hyperopt), ``objective`` (one trial = one nested run of ``train``),
``search`` (Hyperopt ``fmin``, trials persistence, resume, Spark), ``summary`` and ``report``
(what the parent run shows at the end)."""
