"""Calibrated (model-error-inflated) uncertainties of a fitted :class:`LinearPotential`.

The raw uncertainty of a prediction — the half-width of its POPS bounds, or its Fisher σ
``sqrt(a F⁻¹ aᵀ)`` at a stated label precision — is inflated by a
:class:`potforge.uq.calibration.ConformalCalibrator` fitted on **out-of-fold** errors of the
training data (K-fold cross-fitting: each fold is predicted by a model fitted to the others, so
the calibration errors are held-out errors of models like the final one, and the final model is
still fitted to every training structure). Nothing here reads a test set.

>>> cal = calibrate_uncertainty(model, train, source="pops")     # doctest: +SKIP
>>> preds = cal.predict(model, test)  # inflated energy_bounds, ...  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import ModelError
from potforge.linalg import ROW_TYPE_NAMES
from potforge.model.cv import cv_folds
from potforge.model.estimator import LinearPotential, structure_list
from potforge.model.fitting import irls_factors, robust_lstsq
from potforge.model.rows import DesignMatrix, StructureDesign, assemble, design_rows
from potforge.uq.calibration import ConformalCalibrator, fisher_std
from potforge.uq.centred import fit_centred_posterior

SOURCES = ("pops", "pops-std", "fisher")
"""Raw uncertainties a calibration can inflate: the POPS bound half-width ``(upper − lower)/2``,
the POPS std (RMS of ``a·δθ`` over the corrections), or the Fisher σ ``sqrt(a F⁻¹ aᵀ)``."""


def raw_sigma(
    source: str,
    A: np.ndarray,
    *,
    posterior: Any = None,
    train_rows: tuple[np.ndarray, np.ndarray] | None = None,
    alpha: float = 0.0,
) -> np.ndarray:
    """The raw uncertainty ``source`` of the predictions with design rows ``A`` (M, P).

    ``posterior`` (a :class:`potforge.uq.centred.ParameterPosterior`) for the POPS sources;
    ``train_rows = (A_train, w_label)`` (training rows and label precisions 1/σ²) for
    ``"fisher"``. Returns (M,), in the unit of each row.
    """
    if source == "fisher":
        if train_rows is None:
            raise ModelError("the Fisher σ needs the training rows and their label precision")
        return fisher_std(train_rows[0], train_rows[1], A, alpha=alpha)
    if posterior is None:
        raise ModelError(f"source {source!r} needs a posterior: call fit_posterior first")
    std, lo, hi = posterior.summary(A)
    return std if source == "pops-std" else 0.5 * (hi - lo)


def _fit_weights(model: LinearPotential, dm: DesignMatrix, coef: np.ndarray) -> np.ndarray:
    """Row weights the robust (or squared) fit ``coef`` is the weighted solution for."""
    w = dm.weights(model.sigma, model.group_weights)
    if model.loss == "squared":
        return w
    r = np.sqrt(w) * (dm.y - dm.A @ coef)
    return w * irls_factors(r, model.loss, model.huber_delta)


def _row_groups(dm: DesignMatrix, by: str) -> np.ndarray:
    names = np.array([ROW_TYPE_NAMES[int(t)] for t in dm.row_type], dtype=object)
    if by == "row_type":
        return names
    structure_group = np.array(dm.groups, dtype=object)[dm.structure]
    return np.array([f"{a}/{b}" for a, b in zip(names, structure_group, strict=True)], dtype=object)


@dataclass
class CalibratedUncertainty:
    """A fitted calibration of one raw uncertainty of a model (see :func:`calibrate_uncertainty`).

    Attributes
    ----------
    source : str
        One of :data:`SOURCES`.
    calibrator : ConformalCalibrator
        Fitted on out-of-fold errors, one group per row type (``"energy"`` per atom, eV/atom;
        ``"force"``, eV/Å; ``"stress"``, eV/Å³), or per row type and structure group.
    by : {"row_type", "row_type+group"}
    label_precision : tuple of float
        σ_E (eV/atom), σ_F (eV/Å), σ_S (eV/Å³) of the Fisher σ (unused by the POPS sources).
    oof : dict of str to ndarray
        The calibration data, (R,) each: ``errors`` (out-of-fold prediction minus label),
        ``sigma`` (raw σ), ``groups``, ``row_type``, ``structure`` and ``fold`` of every
        training row.
    """

    source: str
    calibrator: ConformalCalibrator
    by: str
    label_precision: tuple[float, float, float]
    oof: dict[str, np.ndarray] = field(repr=False)

    def halfwidths(
        self, model: LinearPotential, dm: DesignMatrix, train: DesignMatrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(raw σ, calibrated half-width)`` of the rows of ``dm`` (R,), for ``model``
        (``train``: the model's training rows, needed by the Fisher σ)."""
        rows = None
        if self.source == "fisher":
            if train is None:
                raise ModelError("the Fisher σ needs the model's training rows (train=)")
            rows = (train.A, train.weights(self.label_precision))
        sigma = raw_sigma(
            self.source,
            dm.A,
            posterior=getattr(model, "posterior_", None),
            train_rows=rows,
            alpha=model.alpha,
        )
        return sigma, self.calibrator.transform(sigma, _row_groups(dm, self.by))

    def predict(
        self,
        model: LinearPotential,
        structures: Sequence[Atoms],
        designs: Sequence[StructureDesign] | None = None,
        train: DesignMatrix | None = None,
    ) -> list[dict[str, Any]]:
        """``model.predict`` with calibrated symmetric bounds: per structure ``energy`` (eV),
        ``forces`` (N, 3), ``stress`` (6,) and ``energy_bounds`` (2,), ``forces_bounds``
        (2, N, 3), ``stress_bounds`` (2, 6) = prediction ∓ calibrated half-width."""
        structures = structure_list(structures)
        designs = model.structure_designs(structures) if designs is None else designs
        preds = model.predict_designs(designs)
        dm = design_rows(designs, [a.info.get("group", "all") for a in structures])
        _, half = self.halfwidths(model, dm, train)
        for s, (p, a) in enumerate(zip(preds, structures, strict=True)):
            mine = dm.structure == s
            h, t = half[mine], dm.row_type[mine]
            n = len(a)
            parts = {"energy": (h[t == 0] * n).reshape(()), "forces": h[t == 1].reshape(n, 3)}
            if np.any(t == 2):
                parts["stress"] = h[t == 2]
            else:
                parts["stress"] = np.full(6, np.nan)
            for key, hw in parts.items():
                p[f"{key}_bounds"] = np.stack([p[key] - hw, p[key] + hw])
        return preds


def calibrate_uncertainty(
    model: LinearPotential,
    structures: Sequence[Atoms],
    *,
    source: str = "pops",
    coverage: float = 0.9,
    method: str = "conformal",
    floor: bool = True,
    by: str = "row_type",
    n_folds: int = 5,
    random_state: int | None = 0,
    label_precision: Sequence[float] | None = None,
    designs: Sequence[StructureDesign] | None = None,
    posterior_options: dict[str, Any] | None = None,
) -> CalibratedUncertainty:
    """Fit a calibration of ``model``'s raw uncertainty on out-of-fold errors of its training data.

    Parameters
    ----------
    model : LinearPotential
        Fitted (its terms, weights, loss and ridge are used for every fold's refit).
    structures : sequence of ase.Atoms
        The model's labelled **training** structures (never a test set).
    source : {"pops", "pops-std", "fisher"}, default="pops"
        Which raw uncertainty to inflate (:data:`SOURCES`).
    coverage, method, floor
        Of the :class:`~potforge.uq.calibration.ConformalCalibrator`.
    by : {"row_type", "row_type+group"}, default="row_type"
        Calibrate each row type alone, or each row type within each structure group
        (``atoms.info["group"]``; predicting then needs structures of the calibrated groups).
    n_folds : int, default=5
        Cross-fitting folds over structures (stratified by group, :func:`cv_folds`).
    random_state : int or None, default=0
        Seed of the folds.
    label_precision : (σ_E, σ_F, σ_S), optional
        Label precision of the Fisher σ (eV/atom, eV/Å, eV/Å³); default ``model.sigma``.
    designs : sequence of StructureDesign, optional
        Precomputed designs of ``structures`` (one descriptor pass).
    posterior_options : dict, optional
        Options of each fold's POPS posterior (:func:`potforge.uq.centred.fit_centred_posterior`;
        default the ensemble); give the same ones as the model's own ``fit_posterior``.

    Returns
    -------
    CalibratedUncertainty
    """
    model._check_fitted()
    if source not in SOURCES:
        raise ModelError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if by not in ("row_type", "row_type+group"):
        raise ModelError(f"by must be 'row_type' or 'row_type+group', got {by!r}")
    structures = structure_list(structures)
    given = [float(x) for x in (label_precision or model.sigma)]
    if len(given) != 3 or not all(x > 0 for x in given):
        raise ModelError(
            f"label_precision must be three positive σ (energy, force, stress), got {given}"
        )
    precision = (given[0], given[1], given[2])
    designs = model.structure_designs(structures) if designs is None else designs
    dm = assemble(designs, structures)
    folds = cv_folds(structures, n_folds, random_state)
    w_fit = dm.weights(model.sigma, model.group_weights)
    w_label = dm.weights(precision)
    errors = np.empty(dm.y.size)
    sigma = np.empty(dm.y.size)
    for k in range(int(folds.max()) + 1):
        train = folds[dm.structure] != k
        held = ~train
        coef = robust_lstsq(
            dm.A[train],
            dm.y[train],
            w_fit[train],
            model.loss,
            huber_delta=model.huber_delta,
            alpha=model.alpha,
            names=model.param_names,
        ).coef
        errors[held] = dm.A[held] @ coef - dm.y[held]
        post = None
        if source != "fisher":
            sub = DesignMatrix(
                dm.A[train],
                dm.y[train],
                dm.row_type[train],
                dm.structure[train],
                dm.groups,
                dm.n_atoms,
            )
            post = fit_centred_posterior(
                sub.A,
                sub.y,
                _fit_weights(model, sub, coef),
                sub.row_type,
                coef,
                alpha=model.alpha,
                method="pops",
                column_names=model.param_names,
                **(posterior_options or {}),
            )
        if post is not None:
            sigma[held] = raw_sigma(source, dm.A[held], posterior=post)
        else:
            # the held-out rows' σ under the fold's F (out of sample, as a prediction's; the
            # final F would count their own leverage), scaled to the information of all rows:
            # F_fold ≈ F·(Σw_fold / Σw), so σ ≈ σ_fold·sqrt(Σw_fold / Σw)
            shrink = np.sqrt(w_label[train].sum() / w_label.sum())
            sigma[held] = shrink * raw_sigma(
                source, dm.A[held], train_rows=(dm.A[train], w_label[train]), alpha=model.alpha
            )
    groups = _row_groups(dm, by)
    cal = ConformalCalibrator(coverage=coverage, method=method, floor=floor)
    cal.fit(errors, sigma, groups)
    oof = {
        "errors": errors,
        "sigma": sigma,
        "groups": groups,
        "row_type": dm.row_type,
        "structure": dm.structure,
        "fold": folds[dm.structure],
    }
    return CalibratedUncertainty(source, cal, by, precision, oof)
