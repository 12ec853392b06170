"""Named random streams: every seeded draw takes its own stream of the run's seed, so that no two draws share one by
accident. ``seeded(seed, "rebalanced classes")`` instead of a number picked by hand."""
from __future__ import annotations

import numpy as np

#: Stream → the number mixed with the seed. Fixed once chosen: changing one changes every result drawn from it.
#: None: the seed alone (the built-in digits, drawn so from the start).
STREAMS: dict[str, int | None] = {
    "digits": None,
    "balanced subset": 3,
    "class pair": 7,
    "badnet pattern": 11,
    "poisons": 13,
    "query copies": 17,
    "test image": 19,
    "frequency trigger": 23,
    "surrogate": 29,
    "brew target": 31,
    "brew": 37,
    "brew preview": 5,
    "rebalanced classes": 41,
    "covers": 43,
    "adaptive pieces": 53,
    "sleeper victims": 59,
    "test points": 61,
    "unlearning holdout": 67,
    "freqdef folds": 71,
    "blended pattern": 73,
    "wanet field": 79,
    "lambda sample": 83,
    "signal transfer": 89,
    "look folds": 97,
    "verdict control": 0x7665,
}


def seeded(seed: int, stream: str, *more: int) -> np.random.Generator:
    """The random stream ``stream`` of ``seed``; ``more``: keys of a sub-stream (an ensemble member)."""
    number = STREAMS[stream]
    keys = [seed] + ([] if number is None else [number]) + list(more)
    return np.random.default_rng(seed if len(keys) == 1 else keys)
