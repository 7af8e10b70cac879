"""Train/test splits. Chronological by default: a random split lets the model see the future.

Sensors drift and seasons change, so a calibration must be judged on data that come *after*
its training period. A random split interleaves training and test hours and reports errors
that no deployment will see (on the UCI multisensor data about half the chronological error).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt

from luftnett.errors import CalibrationError

__all__ = ["RandomSplitWarning", "SplitKind", "train_test_split"]

BoolArray = npt.NDArray[np.bool_]
SplitKind = Literal["chronological", "random"]


class RandomSplitWarning(UserWarning):
    """A random train/test split was requested: expect optimistic test metrics."""


def train_test_split(
    n: int,
    train_fraction: float = 0.5,
    kind: SplitKind = "chronological",
    seed: int = 0,
) -> BoolArray:
    """Boolean mask of training rows among ``n`` rows in time order (the rest is the test).

    ``chronological``: the first ``round(train_fraction·n)`` rows. ``random``: that many rows
    drawn with ``seed``, with a :class:`RandomSplitWarning`.
    """
    if not 0.0 < train_fraction < 1.0:
        raise CalibrationError(f"train fraction must be between 0 and 1 (got {train_fraction})")
    k = round(train_fraction * n)
    if k < 1 or k >= n:
        raise CalibrationError(
            f"a {train_fraction:.0%} split of {n} rows leaves an empty train or test part"
        )
    mask = np.zeros(n, dtype=np.bool_)
    if kind == "chronological":
        mask[:k] = True
        return mask
    if kind != "random":
        raise CalibrationError(f"unknown split {kind!r}; use chronological or random")
    warnings.warn(
        "random train/test split: test hours interleave with training hours, so drift and "
        "seasonal change are hidden and the metrics are optimistic; prefer chronological",
        RandomSplitWarning,
        stacklevel=2,
    )
    mask[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return mask
