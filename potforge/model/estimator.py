"""LinearPotential: a sum of terms, linear in its parameters θ; fit, predict, export.

>>> model = LinearPotential("snap(twojmax=6)+zbl+const").fit(train)     # doctest: +SKIP
>>> atoms.calc = model.as_calculator()                                   # doctest: +SKIP
>>> model.to_lammps("lmp/")                                              # doctest: +SKIP
>>> model.fit_posterior(train)                      # POPS posterior  # doctest: +SKIP
>>> model.predict([atoms], return_bounds=True)[0]["energy_bounds"]       # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from potforge.data.structures import (
    check_labels,
    check_structure,
    describe,
    elements_of,
    labels,
)
from potforge.errors import DataError, ModelError, NotFittedError, check_is_fitted
from potforge.model.fitting import check_loss, irls_factors, robust_lstsq
from potforge.model.rows import (
    ROW_TYPES,
    DesignMatrix,
    StructureDesign,
    assemble,
    compute_designs,
    design_rows,
)
from potforge.options import DEFAULT_SPEC, MODEL_PARAMETERS
from potforge.params import validate
from potforge.terms import Term, check_terms, parse_spec
from potforge.uq.centred import METHODS as POSTERIOR_METHODS
from potforge.uq.centred import ParameterPosterior, fit_centred_posterior

if TYPE_CHECKING:
    from potforge.model.calculator import PotentialCalculator


def structure_list(structures: Atoms | Sequence[Atoms]) -> list[Atoms]:
    """``structures`` as a list (a single ``Atoms`` is a list of one); anything else that is not
    a sequence of structures is a :class:`DataError`."""
    if isinstance(structures, Atoms):
        return [structures]
    if structures is None or isinstance(structures, str | bytes | Path | dict):
        raise DataError(
            f"expected ase.Atoms or a sequence of them, got {type(structures).__name__} "
            "(read files with potforge.data.read_structures first)"
        )
    out = list(structures)
    for k, a in enumerate(out):
        if not isinstance(a, Atoms):
            raise DataError(f"structure {k} is a {type(a).__name__}, not ase.Atoms")
    return out


def _label_summary(structures: Sequence[Atoms]) -> list[list[float]]:
    """Which data a fit used, independent of the order of the structures: per structure
    ``[n_atoms, energy, Σ F², Σ S²]`` (NaN for an absent label), sorted.

    Compared with a tolerance (:func:`_same_labels`), so labels that went through a file with
    8 decimals still match; a hash of rounded labels did not (values on a rounding edge).
    """

    def sq(lab: dict, key: str) -> float:
        return float(np.sum(np.asarray(lab[key], dtype=float) ** 2)) if key in lab else np.nan

    rows = []
    for a in structures:
        lab = labels(a)
        e = float(lab.get("energy", np.nan))
        rows.append([float(len(a)), e, sq(lab, "forces"), sq(lab, "stress")])
    return sorted(rows)


def _same_labels(summary: list, structures: Sequence[Atoms]) -> bool:
    other = np.array(_label_summary(structures))
    mine = np.array(summary, dtype=float)
    return mine.shape == other.shape and bool(
        np.allclose(mine, other, rtol=1e-7, atol=1e-6, equal_nan=True)
    )


def _checked_training(structures: Sequence[Atoms], empty: str) -> list[Atoms]:
    """Training structures as a list, each checked (geometry, energy and forces present);
    ``empty`` is the error when there are none."""
    structures = structure_list(structures)
    if not structures:
        raise DataError(empty)
    for k, a in enumerate(structures):
        name = describe(a, k)
        check_structure(a, name)
        check_labels(a, name, ("energy", "forces"))
    return structures


_PARAM_NAMES = (
    "terms",
    "elements",
    "sigma_energy",
    "sigma_force",
    "sigma_stress",
    "group_weights",
    "alpha",
    "n_jobs",
    "loss",
    "huber_delta",
)
"""Constructor parameters of :class:`LinearPotential` (``get_params`` order)."""


class LinearPotential:
    """Interatomic potential ``E = E_fixed + Σ_terms θ_term · D_term`` (scikit-learn style).

    Parameters
    ----------
    terms : str or sequence of Term
        A model spec (``"snap(twojmax=6)+zbl+const"``) or term objects.
    elements : sequence of str, optional
        Element order (LAMMPS types); by default the sorted elements of the training data.
    sigma_energy : float
        Expected error of energy rows, eV/atom (weight 1/σ²).
    sigma_force : float
        Expected error of force rows, eV/Å.
    sigma_stress : float
        Expected error of stress rows, eV/Å³.
    group_weights : dict of str to float, optional
        Extra weight factor per group label.
    alpha : float
        Ridge strength on the column-normalised problem.
    n_jobs : int
        Processes for descriptor evaluation.
    loss : {"squared", "huber", "l1"}
        Loss on the normalised residuals ``r = (y − ŷ)·sqrt(g)/σ``: ``"squared"`` (weighted
        least squares), ``"huber"`` (quadratic up to ``huber_delta``, linear beyond) or ``"l1"``
        (least absolute deviations); the robust ones are solved by iteratively reweighted least
        squares (:func:`potforge.model.fitting.robust_lstsq`).
    huber_delta : float
        Huber threshold in units of each row's σ (dimensionless; used by ``loss="huber"``).
    """

    PARAMETERS = MODEL_PARAMETERS
    """Constraints of the numeric parameters (:data:`potforge.options.MODEL_PARAMETERS`),
    checked by :meth:`setup` (and :meth:`fit`); the command line's options read them too."""

    def __init__(
        self,
        terms: str | Sequence[Term] = DEFAULT_SPEC,
        *,
        elements: Sequence[str] | None = None,
        sigma_energy: float = 1e-4,
        sigma_force: float = 0.2,
        sigma_stress: float = 0.005,
        group_weights: dict[str, float] | None = None,
        alpha: float = 1e-10,
        n_jobs: int = 1,
        loss: str = "squared",
        huber_delta: float = 1.345,
    ):
        self.terms = terms
        self.elements = elements
        self.sigma_energy = sigma_energy
        self.sigma_force = sigma_force
        self.sigma_stress = sigma_stress
        self.group_weights = group_weights
        self.alpha = alpha
        self.n_jobs = n_jobs
        self.loss = loss
        self.huber_delta = huber_delta

    # --- set-up --------------------------------------------------------------------------------
    def setup(self, structures: Sequence[Atoms] | None = None) -> LinearPotential:
        """Build the terms (``terms_``, ``elements_``) without fitting; returns self.

        With ``structures``, data-dependent ranges (e.g. the embedding density range) are set
        from them; :meth:`fit` calls this.  Set ``coef_`` afterwards to evaluate any θ.
        Parameter values are checked against :attr:`PARAMETERS` first (one sentence naming a
        bad one).
        """
        self._validate_params()
        terms = parse_spec(self.terms) if isinstance(self.terms, str) else list(self.terms)
        if not isinstance(self.terms, str):
            check_terms(terms)  # parse_spec checks its own
        if self.elements is not None:
            elements = list(self.elements)
        elif structures:
            elements = elements_of(structures)
        else:
            raise ModelError("give elements= or training structures to define the model's elements")
        for t in terms:
            t.setup(elements)
        self.terms_ = terms
        self.elements_ = elements
        if structures:
            for t in terms:
                t.prepare(structures)
        return self

    def _validate_params(self) -> None:
        params = {k: v for k, v in self.get_params().items() if k in self.PARAMETERS}
        validate(self.PARAMETERS, params, "LinearPotential")

    @property
    def linear_terms(self) -> list[Term]:
        """The fitted (non-fixed) terms, in column order."""
        self._check_built()
        return [t for t in self.terms_ if not t.fixed]

    @property
    def param_names(self) -> list[str]:
        """Name of each parameter, e.g. ``snap[W].B3``, length ``n_params``."""
        return [n for t in self.linear_terms for n in t.param_names]

    @property
    def n_params(self) -> int:
        """Number of fitted parameters P (the design's columns)."""
        return len(self.param_names)

    @property
    def cutoff(self) -> float:
        """Largest cutoff of the terms, Å."""
        self._check_built()
        return max(t.cutoff for t in self.terms_)

    def _check_built(self) -> None:
        check_is_fitted(self, "terms_", "call fit() or load()")

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_", "call fit() or load()")

    @property
    def sigma(self) -> tuple[float, float, float]:
        """``(sigma_energy, sigma_force, sigma_stress)``: eV/atom, eV/Å, eV/Å³."""
        return (self.sigma_energy, self.sigma_force, self.sigma_stress)

    # --- design ---------------------------------------------------------------------------------
    def structure_designs(
        self, structures: Sequence[Atoms], progress: bool | None = None, threads: int = 1
    ) -> list[StructureDesign]:
        """Per-structure design rows of every term (one descriptor pass); ``threads`` > 1
        computes them in threads of this process (see
        :func:`~potforge.model.rows.compute_designs`)."""
        self._check_built()
        return compute_designs(
            self.terms_, structure_list(structures), self.n_jobs, progress, threads=threads
        )

    def design(
        self,
        structures: Sequence[Atoms],
        use: Sequence[str] = ROW_TYPES,
        designs: Sequence[StructureDesign] | None = None,
    ) -> DesignMatrix:
        """The design matrix of labelled ``structures`` (rows for every present label)."""
        designs = self.structure_designs(structures) if designs is None else designs
        return assemble(designs, structures, use)

    def design_rows(
        self,
        structures: Sequence[Atoms],
        use: Sequence[str] = ROW_TYPES,
        designs: Sequence[StructureDesign] | None = None,
    ) -> DesignMatrix:
        """Every design row of ``structures``, labelled or not (``y`` NaN): the rows their
        labels would get, for candidates without labels (Fisher information, acquisition).
        Weight them with ``dm.weights(model.sigma, model.group_weights)``."""
        structures = structure_list(structures)
        designs = self.structure_designs(structures) if designs is None else designs
        return design_rows(designs, [a.info.get("group", "all") for a in structures], use)

    def with_terms(self, coef: np.ndarray | None = None) -> LinearPotential:
        """A copy that shares this model's built terms (same design rows, no new
        :meth:`setup`), unfitted or with ``coef`` as its parameters: for fitting subsets of a
        pool the terms were prepared on (information matching, active learning)."""
        self._check_built()
        out = type(self)(**self.get_params(deep=False))
        out.terms_, out.elements_ = self.terms_, self.elements_
        if coef is not None:
            out.coef_ = out._check_coef(coef)
        return out

    # --- fit ------------------------------------------------------------------------------------
    def fit(
        self,
        structures: Sequence[Atoms],
        y: Any = None,
        designs: Sequence[StructureDesign] | None = None,
        progress: bool | None = None,
    ) -> LinearPotential:
        """Weighted least squares on labelled structures.

        Parameters
        ----------
        structures : sequence of ase.Atoms
            With labels attached (energy and forces required; stress used where present).
        y : ignored
            For scikit-learn compatibility.
        designs : sequence of StructureDesign, optional
            Precomputed designs of ``structures`` (from :meth:`structure_designs`), to share
            one descriptor pass with :meth:`fit_posterior`.  The terms they came from are kept
            (no new :meth:`setup`): e.g. terms prepared on a whole candidate pool.
        progress : bool or None, default=None
            Progress bar over the descriptor pass: None shows it on a terminal only.

        Returns
        -------
        self

        Notes
        -----
        With ``loss="huber"`` or ``"l1"``, ``fit_info_`` also records ``loss_iterations`` and
        ``loss_converged`` (a :class:`potforge.model.fitting.ConvergenceWarning` is issued when the
        iteration limit is reached).
        """
        check_loss(self.loss, self.huber_delta)
        structures = _checked_training(structures, "the training set is empty")
        t0 = time.perf_counter()
        if designs is None or not hasattr(self, "terms_"):
            self.setup(structures)  # given designs come from the terms already built: keep them
        designs = self._training_designs(structures, designs, progress)
        t1 = time.perf_counter()
        dm = assemble(designs, structures)
        w = dm.weights(self.sigma, self.group_weights)
        result = robust_lstsq(
            dm.A, dm.y, w, self.loss, self.huber_delta, self.alpha, self.param_names
        )
        self.coef_ = result.coef
        if hasattr(self, "posterior_"):
            del self.posterior_  # it belonged to the previous coefficients
        t2 = time.perf_counter()
        self.fit_info_ = {
            "n_structures": len(structures),
            "n_atoms": int(dm.n_atoms.sum()),
            "n_rows": int(len(dm.y)),
            "training_labels": _label_summary(structures),
            "descriptor_seconds": t1 - t0,
            "solve_seconds": t2 - t1,
            "fit_seconds": t2 - t0,
        }
        if self.loss != "squared":
            self.fit_info_.update(
                loss=self.loss, loss_iterations=result.n_iter, loss_converged=result.converged
            )
        return self

    def _fit_weights(self, dm: DesignMatrix) -> np.ndarray:
        """Row weights the fitted ``coef_`` is the weighted least-squares solution for, (R,):
        ``g/σ²``, times the IRLS factors at ``coef_`` for a robust loss."""
        w = dm.weights(self.sigma, self.group_weights)
        if self.loss == "squared":
            return w
        r = np.sqrt(w) * (dm.y - dm.A @ self.coef_)
        return w * irls_factors(r, self.loss, self.huber_delta)

    def _training_designs(
        self,
        structures: list[Atoms],
        designs: Sequence[StructureDesign] | None,
        progress: bool | None = None,
    ) -> Sequence[StructureDesign]:
        """``designs`` checked against ``structures``, or computed when not given."""
        if designs is None:
            return self.structure_designs(structures, progress)
        if len(designs) != len(structures):
            raise DataError(f"{len(designs)} designs given for {len(structures)} structures")
        return designs

    # --- posterior (uncertainty) ---------------------------------------------------------------
    def fit_posterior(
        self,
        structures: Sequence[Atoms],
        method: str = "pops",
        *,
        designs: Sequence[StructureDesign] | None = None,
        progress: bool | None = None,
        **options: Any,
    ) -> LinearPotential:
        """Fit a parameter posterior around ``coef_`` on the training data; sets ``posterior_``.

        The posterior is fitted on the same weighted design matrix as :meth:`fit` (row weights
        ``g/σ_type²``, energy/force/stress rows tagged by type) in the fit's column-normalised
        coordinates, and is centred on ``coef_``: it describes ``θ − coef_``. With a robust
        ``loss`` the row weights also carry the IRLS factors ``ψ(r)/r`` at ``coef_`` (for those
        weights ``coef_`` is the weighted least-squares solution).

        Parameters
        ----------
        structures : sequence of ase.Atoms
            The labelled training structures (normally those given to :meth:`fit`).
        method : {"pops", "bayes", "bootstrap"}
            ``"pops"``: misspecification-aware POPS about ``coef_`` — every training row with
            non-zero leverage lies inside its own bounds; ``"bayes"``: Bayesian linear regression
            covariance, ``± n_sigma·std``; ``"bootstrap"``: bootstrap refits.
        designs : sequence of StructureDesign, optional
            Precomputed designs of ``structures`` (skips the descriptor pass).
        **options
            ``posterior`` ("ensemble" or "hypercube"), ``max_members``, ``leverage_threshold``,
            ``leverage_percentile``, ``residual_percentile``, ``percentile_clipping`` (pops);
            ``temperature``, ``n_sigma`` (bayes); ``n_members`` (bootstrap); ``random_state``.
            See :func:`potforge.uq.centred.fit_centred_posterior`.

        Returns
        -------
        self
        """
        self._check_fitted()
        if method not in POSTERIOR_METHODS:
            raise ModelError(
                f"posterior method must be one of {', '.join(POSTERIOR_METHODS)}, got {method!r}"
            )
        structures = _checked_training(
            structures,
            "a posterior needs the model's labelled training structures; none were given",
        )
        t0 = time.perf_counter()
        designs = self._training_designs(structures, designs, progress)
        t1 = time.perf_counter()
        dm = assemble(designs, structures)
        fit_info = getattr(self, "fit_info_", {})
        fitted_on = fit_info.get("training_labels")
        if fitted_on is not None and not _same_labels(fitted_on, structures):
            warnings.warn(
                f"the {len(structures)} structures ({int(dm.n_atoms.sum())} atoms) given to "
                f"fit_posterior are not those the model was fitted on "
                f"({fit_info['n_structures']} structures, {fit_info['n_atoms']} atoms"
                + (
                    "; same sizes, other labels"
                    if len(structures) == fit_info["n_structures"]
                    and int(dm.n_atoms.sum()) == fit_info["n_atoms"]
                    else ""
                )
                + "): the posterior is centred on coef_, fitted to other data, so its training "
                "rows need not lie inside their bounds",
                UserWarning,
                stacklevel=2,
            )
        w = self._fit_weights(dm)
        post = fit_centred_posterior(
            dm.A,
            dm.y,
            w,
            dm.row_type,
            self.coef_,
            alpha=self.alpha,
            method=method,
            column_names=self.param_names,
            **options,
        )
        t2 = time.perf_counter()
        post.info.update(
            n_structures=len(structures),
            n_atoms=int(dm.n_atoms.sum()),
            descriptor_seconds=t1 - t0,
            posterior_seconds=t2 - t1,
            fit_seconds=t2 - t0,
        )
        self.posterior_ = post
        return self

    @property
    def has_posterior(self) -> bool:
        """True when :meth:`fit_posterior` (or :meth:`load`) gave this model a posterior."""
        return hasattr(self, "posterior_")

    def _check_posterior(self) -> ParameterPosterior:
        self._check_fitted()
        if not self.has_posterior:
            raise NotFittedError(
                "this model has no posterior: call fit_posterior(training structures) "
                "(or run `potforge uq --model DIR --train FILE`)"
            )
        return self.posterior_

    def sample_coef(self, n_samples: int, seed: int | None = None) -> np.ndarray:
        """``n_samples`` parameter vectors ``coef_ + δθ`` from the posterior, shape (K, P).

        Feed them to :meth:`predict_designs` (one descriptor pass for the whole ensemble) or to
        any property for brute-force propagation.
        """
        post = self._check_posterior()
        return self.coef_ + post.sample(n_samples, np.random.default_rng(seed))

    def functional_bounds(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Uncertainty of linear functionals ``G·θ`` over the posterior.

        Parameters
        ----------
        G : ndarray, shape (M, P) or (P,)
            One row per functional, one column per parameter (:attr:`param_names`): e.g. design
            rows, or gradients ``dQ/dθ`` of properties.

        Returns
        -------
        std : ndarray, shape (M,)
            Spread of ``G·θ`` (RMS of ``G·δθ`` for POPS/bootstrap, Gaussian std for bayes).
        lower, upper : ndarray, shape (M,)
            Exact bounds of ``G·θ`` over the posterior; ``lower ≤ G·coef_ ≤ upper``.
        """
        post = self._check_posterior()
        std, lo, hi = post.summary(G)
        mean = np.atleast_2d(np.asarray(G, dtype=float)) @ self.coef_
        return std, mean + lo, mean + hi

    def extreme_coef(self, G: np.ndarray) -> np.ndarray:
        """Parameter vectors attaining :meth:`functional_bounds`, shape (M, 2, P): ``G[i]·θ`` is
        ``lower[i]`` at ``[i, 0]`` and ``upper[i]`` at ``[i, 1]`` — the posterior members (or box
        corners, or ±n_sigma points) to evaluate a nonlinear quantity at its linearised extremes.
        """
        return self.coef_ + self._check_posterior().extremes(G)[:, :, 0]

    def candidate_coef(self, G: np.ndarray, k: int) -> np.ndarray:
        """Up to ``k`` parameter vectors per side with the most extreme ``G[i]·θ``, shape
        (M, 2, k', P): ``[:, :, 0]`` is :meth:`extreme_coef`, ``[:, :, j]`` the next-most-extreme
        posterior members (ensembles) or box corners (hypercubes; Gaussians have k' = 1).
        Candidates for the extremes of a *nonlinear* quantity whose gradient is ``G[i]``."""
        return self.coef_ + self._check_posterior().extremes(G, k)

    # --- predict --------------------------------------------------------------------------------
    def predict_designs(
        self,
        designs: Sequence[StructureDesign],
        coef: np.ndarray | None = None,
        return_std: bool = False,
        return_bounds: bool = False,
        names: Sequence[str] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Energies, forces and stresses from precomputed designs.

        Parameters
        ----------
        coef : ndarray, shape (P,) or (K, P), optional
            Parameter vector(s); default ``coef_``.  K vectors give a leading K axis on every
            output (an ensemble from one descriptor pass).
        return_std, return_bounds : bool
            Add the posterior's ``energy_std`` (), ``forces_std`` (N, 3), ``stress_std`` (6,)
            and/or ``energy_bounds`` (2,), ``forces_bounds`` (2, N, 3), ``stress_bounds``
            (2, 6) (lower, upper: exact bounds over the posterior) to each dict. Needs a
            posterior (:meth:`fit_posterior`) and ``coef=None``.
        names : sequence of str, optional
            Structure names for error messages.

        Returns
        -------
        list of dict
            Per structure: ``energy`` () or (K,) eV, ``forces`` (N, 3) or (K, N, 3) eV/Å,
            ``stress`` (6,) or (K, 6) eV/Å³ (NaN without a 3-D cell), plus the uncertainty keys.

        Raises
        ------
        ModelError
            When a predicted energy or force is not finite.
        """
        uq = return_std or return_bounds
        if uq and coef is not None:
            raise ModelError("uncertainties are those of the posterior around coef_: use coef=None")
        if coef is None:
            self._check_fitted()
            coef = self.coef_
        coef = self._check_coef(coef)
        post = self._check_posterior() if uq else None
        out = []
        for k, d in enumerate(designs):
            e = d.rows.energy @ coef.T + d.fixed.energy
            f = (
                np.moveaxis(d.rows.forces @ coef.T, -1, 0)
                if coef.ndim == 2
                else d.rows.forces @ coef
            )
            f = f + d.fixed.forces
            w = (d.rows.virial @ coef.T).T if coef.ndim == 2 else d.rows.virial @ coef
            if not (np.all(np.isfinite(e)) and np.all(np.isfinite(f))):
                what = names[k] if names is not None else f"structure {k}"
                raise ModelError(
                    f"{what}: the model predicts a non-finite energy or force (descriptors or "
                    "parameters overflow; are atoms far closer than in the training data?)"
                )
            out.append({"energy": e, "forces": f, "stress": -(w + d.fixed.virial) / d.volume})
        if post is not None:
            self._add_uncertainty(designs, out, return_std, return_bounds)
        return out

    def _check_coef(self, coef: Any) -> np.ndarray:
        """``coef`` as a (P,) or (K, P) float array of this model's width, else ModelError."""
        try:
            arr = np.asarray(coef, dtype=float)
        except (TypeError, ValueError):
            raise ModelError(
                f"coef must be numbers, shape (P,) or (K, P); got {str(coef)[:60]!r}"
            ) from None
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.n_params:
            raise ModelError(
                f"coef has shape {arr.shape}; this model has {self.n_params} parameters, so "
                f"give shape ({self.n_params},) or (K, {self.n_params})"
            )
        return arr

    def _add_uncertainty(self, designs, out, return_std: bool, return_bounds: bool) -> None:
        """One posterior summary over the stacked rows of all structures, split back.

        Bounds are the prediction plus the exact extremes of ``G·δθ`` (the fixed terms carry no
        uncertainty); stress entries are NaN without a 3-D cell, like the stress itself.
        """
        blocks = []
        for d in designs:
            vol = d.volume if np.isfinite(d.volume) else 1.0
            blocks += [
                d.rows.energy[None, :],
                d.rows.forces.reshape(-1, d.rows.energy.size),
                -d.rows.virial / vol,
            ]
        std, lo, hi = self.posterior_.summary(np.vstack(blocks))
        start = 0
        for d, r in zip(designs, out, strict=True):
            n = d.n_atoms
            parts = {"energy": (1, ()), "forces": (3 * n, (n, 3)), "stress": (6, (6,))}
            for key, (size, shape) in parts.items():
                s = slice(start, start + size)
                start += size
                sd = std[s].reshape(shape)
                if key == "stress" and not np.isfinite(d.volume):
                    sd = np.full(shape, np.nan)
                if return_std:
                    r[f"{key}_std"] = sd if shape else float(sd)
                if return_bounds:
                    r[f"{key}_bounds"] = np.stack(
                        [r[key] + lo[s].reshape(shape), r[key] + hi[s].reshape(shape)]
                    )

    def predict(
        self,
        structures: Sequence[Atoms],
        coef: np.ndarray | None = None,
        return_std: bool = False,
        return_bounds: bool = False,
        progress: bool | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Energies (eV), forces (eV/Å), stresses (eV/Å³) of ``structures`` (a single ``Atoms``
        is a list of one); see predict_designs.

        ``return_std`` / ``return_bounds`` add the posterior's uncertainty keys
        (``energy_std``, ``forces_bounds``, ...) to each structure's dict; ``progress`` is the
        descriptor pass's (None: a bar on a terminal, a line in a log; False: silent).
        """
        if coef is None:
            self._check_fitted()
        structures = structure_list(structures)
        names = [describe(a, k) for k, a in enumerate(structures)]
        return self.predict_designs(
            self.structure_designs(structures, progress), coef, return_std, return_bounds, names
        )

    def as_calculator(self, coef: np.ndarray | None = None) -> PotentialCalculator:
        """An ASE calculator evaluating this model (optionally with other parameters)."""
        from potforge.model.calculator import PotentialCalculator

        self._check_fitted()
        return PotentialCalculator(self, coef)

    # --- LAMMPS export --------------------------------------------------------------------------
    def lammps_commands(
        self,
        directory: str | Path,
        prefix: str = "potforge",
        coef: np.ndarray | None = None,
        folder_variable: str | None = None,
    ) -> list[str]:
        """Write the potential files into ``directory``; return its pair_style/pair_coeff lines
        (:func:`potforge.model.lammps.lammps_commands`)."""
        from potforge.model.lammps import lammps_commands

        return lammps_commands(self, directory, prefix, coef, folder_variable)

    def to_lammps(
        self,
        directory: str | Path,
        prefix: str = "potforge",
        location: str | Path | None = None,
    ) -> Path:
        """Write LAMMPS files and an ``include``-able ``potential.in`` into ``directory``, read
        from ``location`` (default ``directory``) — :func:`potforge.model.lammps.write_lammps`."""
        from potforge.model.lammps import write_lammps

        return write_lammps(self, directory, prefix, location)

    # --- persistence ----------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters by name, ``terms`` included (scikit-learn style; the terms
        are not estimators, so ``deep`` changes nothing)."""
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def __repr__(self) -> str:
        """``LinearPotential('snap+const', alpha=1e-06)``: the terms and non-default settings."""
        sig = inspect.signature(type(self).__init__).parameters
        terms = self.terms if isinstance(self.terms, str) else list(self.terms)
        args = [repr(terms)] + [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k != "terms" and v != sig[k].default
        ]
        return f"{type(self).__name__}({', '.join(args)})"

    def set_params(self, **params: Any) -> LinearPotential:
        """Set constructor parameters (scikit-learn style); returns self.

        Takes effect at the next :meth:`fit` (which validates the values); unknown names raise
        :class:`ModelError`.
        """
        allowed = set(_PARAM_NAMES)
        for key, value in params.items():
            if key not in allowed:
                raise ModelError(
                    f"LinearPotential has no parameter {key!r}; valid: {', '.join(sorted(allowed))}"
                )
            setattr(self, key, value)
        return self

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (and ``posterior.npz``) into ``directory``
        (:func:`potforge.model.io.save_model`)."""
        from potforge.model.io import save_model

        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, posterior: bool = True) -> LinearPotential:
        """Read a model written by :meth:`save`; ``posterior=False`` skips its posterior
        (:func:`potforge.model.io.load_model`)."""
        from potforge.model.io import load_model

        return load_model(cls, directory, posterior)
