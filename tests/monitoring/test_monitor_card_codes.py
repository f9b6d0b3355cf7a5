"""Card codes of the card bootstrap: the same codes as ``np.unique``'s inverse."""

from __future__ import annotations

import numpy as np
import polars as pl

from cardfraud.monitoring.performance import card_codes


def test_card_codes_equal_numpy_unique_inverse():
    rng = np.random.default_rng(3)
    ids = [f"card-{value}" for value in rng.integers(0, 500, 5_000)]
    ids += ["Zürich-1", "card-", "card-10", "card-9", "é"]

    codes = card_codes(pl.Series(ids))

    expected = np.unique(np.array(ids, dtype=object), return_inverse=True)[1]
    assert codes.dtype == np.int64
    assert codes.tolist() == expected.tolist()


def test_card_codes_dense_from_zero():
    codes = card_codes(pl.Series(["b", "a", "b", "c"]))

    assert codes.tolist() == [1, 0, 1, 2]
