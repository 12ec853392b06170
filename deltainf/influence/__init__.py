"""Influence: the T + 1 queries (``queries.py``), EK-FAC factors and scores through kronfluence
(``ekfac.py``, cached stage by stage in ``stages.py``), Δ and the flag rule (``delta.py``) and the
ground-truth-free τ/k suggestion (``suggest.py``)."""
