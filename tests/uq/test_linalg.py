"""The layer-0 linear algebra (potforge.linalg): one row-type vocabulary, and one rank-deficiency
diagnosis for both ridge solvers (Cholesky on the Gram matrix, SVD least squares on the rows)."""

from __future__ import annotations

import numpy as np
import pytest

from potforge import linalg
from potforge.errors import ModelError
from potforge.linalg import lstsq_ridge, solve_ridge, unidentifiable_columns


def test_one_row_type_vocabulary():
    from potforge.model import rows
    from potforge.uq import STRESS, VIRIAL, centred

    assert (linalg.ENERGY, linalg.FORCE, linalg.STRESS) == (0, 1, 2)
    assert linalg.VIRIAL == linalg.STRESS == STRESS == VIRIAL  # one row type, two names
    assert linalg.ROW_TYPES == rows.ROW_TYPES == ("energy", "force", "stress")
    assert (rows.ROW_ENERGY, rows.ROW_FORCE, rows.ROW_STRESS) == (0, 1, 2)
    assert centred.ROW_TYPE_NAMES is linalg.ROW_TYPE_NAMES
    assert [linalg.row_type_name(k) for k in (0, 1, 2, 7)] == ["energy", "force", "stress", "7"]


def _deficient(seed: int = 1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 5))
    X = np.column_stack([X, X[:, 1] - 2.0 * X[:, 3]])  # column 5 = column 1 − 2 × column 3
    return X, rng.standard_normal(60), [f"c{j}" for j in range(6)]


def test_both_solvers_word_rank_deficiency_the_same():
    X, y, names = _deficient()
    Xn = X / np.linalg.norm(X, axis=0)
    with pytest.raises(ModelError) as rows_error:
        lstsq_ridge(Xn, y, column_names=names)
    with pytest.raises(ModelError) as gram_error:
        solve_ridge(X.T @ X, X.T @ y, column_names=names)
    message = str(rows_error.value)
    assert message == str(gram_error.value)
    assert "rank-deficient (rank 5 of 6)" in message
    assert "columns 1 ('c1'), 3 ('c3'), 5 ('c5') are not identifiable" in message
    assert "set ridge alpha > 0" in message
    assert np.array_equal(unidentifiable_columns(X.T @ X), [1, 3, 5])
    # a ridge makes both solvable, and then they agree
    a = lstsq_ridge(Xn, y, alpha=1e-3)
    b = solve_ridge(Xn.T @ Xn, Xn.T @ y, alpha=1e-3).coef
    np.testing.assert_allclose(a, b, rtol=1e-8)


def test_lstsq_ridge_is_lstsq_on_the_rows_with_ridge_rows():
    import scipy.linalg

    X, y, _ = _deficient(2)
    X = X[:, :5]
    alpha = 1e-4
    Xa = np.vstack([X, np.sqrt(alpha) * np.eye(5)])
    ref = scipy.linalg.lstsq(
        Xa, np.concatenate([y, np.zeros(5)]), cond=1e-12, lapack_driver="gelsd"
    )[0]
    assert np.array_equal(lstsq_ridge(X, y, alpha), ref)
    with pytest.raises(ModelError, match="ridge alpha must be non-negative, got -1"):
        lstsq_ridge(X, y, alpha=-1.0)
    with pytest.raises(ModelError, match="column_names has 2 entries but A has 5 columns"):
        lstsq_ridge(X, y, column_names=["a", "b"])


def test_zero_columns_are_named_and_long_lists_shortened():
    G = np.diag([1.0, 0.0, 2.0])
    with pytest.raises(ModelError, match=r"rank 2 of 3\): columns 1 are not identifiable"):
        solve_ridge(G, np.ones(3))
    assert linalg.column_list(np.arange(9), [f"p{j}" for j in range(9)]) == (
        "p0, p1, p2, p3, p4, p5 and 3 more"
    )
    assert linalg.column_list([2]) == "column 2"
