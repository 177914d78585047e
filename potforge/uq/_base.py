"""The estimator contract every ``potforge.uq`` regressor follows (scikit-learn style).

``fit(X, y, sample_weight=None)`` returns self; ``predict(X, return_std=False,
return_bounds=False)`` returns the mean ``X @ coef_`` (label units), then optionally the standard
deviation and the ``(lower, upper)`` bounds, all of shape ``(m,)``; ``sample(K)`` returns ``K``
parameter vectors ``θ`` of shape ``(K, P)`` for brute-force propagation.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from potforge.errors import check_is_fitted
from potforge.linalg import check_rows


class UQRegressor(RegressorMixin, BaseEstimator):
    """Shared ``predict``/``sample`` plumbing; subclasses implement ``_std``, ``_bounds`` and
    ``_sample_deltas`` on validated ``X`` of shape (m, P)."""

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_", "call fit(X, y) before using it")

    def _validated(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return check_rows(X, n_features=self.n_features_in_)[0]

    def predict(
        self, X: np.ndarray, return_std: bool = False, return_bounds: bool = False, **kw
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Predict labels for design rows ``X`` (m, P).

        Returns
        -------
        y_mean : ndarray, shape (m,)
            ``X @ coef_``.
        y_std : ndarray, shape (m,)
            Only if ``return_std``; see the subclass for its definition.
        y_lower, y_upper : ndarray, shape (m,)
            Only if ``return_bounds``; lower first (popsregression returns max first).
        """
        X = self._validated(X)
        mean = X @ self.coef_
        out = [mean]
        if return_std and return_bounds:
            std, lo, hi = self._summary(X, **kw)
            out.extend([std, mean + lo, mean + hi])
        elif return_std:
            out.append(self._std(X, **kw))
        elif return_bounds:
            lo, hi = self._bounds(X, **kw)
            out.extend([mean + lo, mean + hi])
        return out[0] if len(out) == 1 else tuple(out)

    def sample(self, n_samples: int, random_state=None, **kw) -> np.ndarray:
        """``n_samples`` parameter vectors ``θ = coef_ + δθ`` from the posterior, shape (K, P)."""
        self._check_fitted()
        rng = np.random.default_rng(random_state)
        return self.coef_ + self._sample_deltas(int(n_samples), rng, **kw)

    def _summary(self, X: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(std, lower deviation, upper deviation)``; override to share work."""
        return (self._std(X, **kw), *self._bounds(X, **kw))

    def _std(self, X: np.ndarray, **kw) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bounds(self, X: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _sample_deltas(self, n: int, rng: np.random.Generator, **kw) -> np.ndarray:
        raise NotImplementedError
