"""LinearPotential: a sum of terms, linear in its parameters θ; fit, predict, export.

>>> model = LinearPotential("snap(twojmax=6)+zbl+const").fit(train)     # doctest: +SKIP
>>> atoms.calc = model.as_calculator()                                   # doctest: +SKIP
>>> model.to_lammps("lmp/")                                              # doctest: +SKIP
>>> model.fit_posterior(train)                      # POPS posterior  # doctest: +SKIP
>>> model.predict([atoms], return_bounds=True)[0]["energy_bounds"]       # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from potforge import __version__
from potforge.data.structures import (
    check_labels,
    check_structure,
    describe,
    elements_of,
    labels,
)
from potforge.design import (
    ROW_TYPES,
    DesignMatrix,
    StructureDesign,
    assemble,
    compute_designs,
    design_rows,
    structure_design,
)
from potforge.errors import DataError, ModelError, NotFittedError, check_is_fitted
from potforge.fitting import check_loss, irls_factors, robust_lstsq
from potforge.options import DEFAULT_SPEC, MODEL_PARAMETERS
from potforge.params import validate
from potforge.terms import Constant, Term, check_terms, parse_spec, term_from_dict, term_to_dict
from potforge.terms.base import write_files
from potforge.uq.centred import METHODS as POSTERIOR_METHODS
from potforge.uq.centred import ParameterPosterior, fit_centred_posterior

MODEL_FILE = "model.json"
POSTERIOR_FILE = "posterior.npz"
UQ_PROPERTIES = (
    "energy_std", "forces_std", "stress_std", "energy_bounds", "forces_bounds", "stress_bounds",
)
"""Extra calculator properties of a model with a posterior (std: (), (N, 3), (6,); bounds: a
leading axis of 2, lower then upper)."""


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
    "terms", "elements", "sigma_energy", "sigma_force", "sigma_stress", "group_weights", "alpha",
    "n_jobs", "loss", "huber_delta",
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
        squares (:func:`potforge.fitting.robust_lstsq`).
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
        self._check_built()
        return [t for t in self.terms_ if not t.fixed]

    @property
    def param_names(self) -> list[str]:
        return [n for t in self.linear_terms for n in t.param_names]

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def cutoff(self) -> float:
        self._check_built()
        return max(t.cutoff for t in self.terms_)

    def _check_built(self) -> None:
        check_is_fitted(self, "terms_", "call fit() or load()")

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_", "call fit() or load()")

    @property
    def sigma(self) -> tuple[float, float, float]:
        return (self.sigma_energy, self.sigma_force, self.sigma_stress)

    # --- design ---------------------------------------------------------------------------------
    def structure_designs(
        self, structures: Sequence[Atoms], progress: bool | None = None
    ) -> list[StructureDesign]:
        """Per-structure design rows of every term (one descriptor pass)."""
        self._check_built()
        return compute_designs(self.terms_, structure_list(structures), self.n_jobs, progress)

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
            Precomputed designs of ``structures`` (from :meth:`structure_designs` after
            :meth:`setup` on the same structures), to share one descriptor pass with
            :meth:`fit_posterior`.
        progress : bool or None, default=None
            Progress bar over the descriptor pass: None shows it on a terminal only.

        Returns
        -------
        self

        Notes
        -----
        With ``loss="huber"`` or ``"l1"``, ``fit_info_`` also records ``loss_iterations`` and
        ``loss_converged`` (a :class:`potforge.fitting.ConvergenceWarning` is issued when the
        iteration limit is reached).
        """
        check_loss(self.loss, self.huber_delta)
        structures = _checked_training(structures, "the training set is empty")
        t0 = time.perf_counter()
        self.setup(structures)
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
                + ("; same sizes, other labels" if len(structures) == fit_info["n_structures"]
                   and int(dm.n_atoms.sum()) == fit_info["n_atoms"] else "")
                + "): the posterior is centred on coef_, fitted to other data, so its training "
                "rows need not lie inside their bounds",
                UserWarning, stacklevel=2,
            )
        w = self._fit_weights(dm)
        post = fit_centred_posterior(
            dm.A, dm.y, w, dm.row_type, self.coef_, alpha=self.alpha, method=method,
            column_names=self.param_names, **options,
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
            blocks += [d.rows.energy[None, :], d.rows.forces.reshape(-1, d.rows.energy.size),
                       -d.rows.virial / vol]
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
        """Write the potential files into ``directory``; return its pair_style/pair_coeff lines.

        File names in the lines are relative to ``directory`` or, with ``folder_variable``
        (e.g. ``"potforge_dir"``), written ``${potforge_dir}/name`` for LAMMPS to substitute
        (:meth:`to_lammps` defines that variable).
        """
        import re

        from potforge.terms.base import LammpsPart

        self._check_fitted()
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", prefix):
            raise ModelError(
                f"LAMMPS file prefix {prefix!r}: use letters, digits and _ . + - only"
            )
        coef = self.coef_ if coef is None else np.asarray(coef, dtype=float)
        blocks, start = {}, 0
        for t in self.linear_terms:
            blocks[id(t)] = coef[start : start + t.n_params]
            start += t.n_params
        const = [t for t in self.linear_terms if isinstance(t, Constant)]
        offsets = const[0].offsets(blocks[id(const[0])]) if const else None
        absorber = next((t for t in self.linear_terms if t.absorbs_offsets), None)

        def refer(words: str, files: dict[str, str]) -> str:
            """``words`` with each file name of ``files`` written against ``folder_variable``."""
            if folder_variable is None:
                return words
            var = "${" + folder_variable + "}"  # unquoted: LAMMPS does not substitute in quotes
            return " ".join(f"{var}/{w}" if w in files else w for w in words.split())

        parts = []
        for k, t in enumerate(self.terms_):
            if isinstance(t, Constant) and absorber is not None:
                continue
            part = t.lammps(
                blocks.get(id(t), np.zeros(0)),
                f"{prefix}_{k}_{t.kind}",
                offsets if t is absorber else None,
            )
            named = {w for line in [part.style, *part.coeffs] for w in line.split()}
            if set(part.files) - named:
                raise ModelError(
                    f"{t.kind}: its LAMMPS export writes {sorted(set(part.files) - named)} "
                    "but its pair_style/pair_coeff arguments do not name them"
                )
            write_files(directory, part.files)
            parts.append(
                LammpsPart(
                    refer(part.style, part.files), [refer(c, part.files) for c in part.coeffs]
                )
            )
        if len(parts) == 1:
            p = parts[0]
            return [f"pair_style {p.style}"] + [f"pair_coeff {c}" for c in p.coeffs]
        styles = [p.style.split()[0] for p in parts]
        lines = ["pair_style hybrid/overlay " + " ".join(p.style for p in parts)]
        for k, p in enumerate(parts):
            name = styles[k]
            if styles.count(name) > 1:
                name += f" {styles[: k + 1].count(name)}"
            for c in p.coeffs:
                i, j, *rest = c.split()
                lines.append(f"pair_coeff {i} {j} {name} {' '.join(rest)}".rstrip())
        return lines

    def to_lammps(
        self,
        directory: str | Path,
        prefix: str = "potforge",
        location: str | Path | None = None,
    ) -> Path:
        """Write LAMMPS files and ``potential.in`` (an ``include``-able file) into ``directory``.

        ``potential.in`` starts with ``variable potforge_dir index <absolute folder>`` and names
        every file ``${potforge_dir}/file``, so ``include /path/to/potential.in`` works from any
        working directory; after moving the folder, run LAMMPS with
        ``-var potforge_dir /new/place`` (a command-line ``-var`` takes precedence over an
        ``index`` variable of the input).  It sets the ``mass`` of every type
        (``ase.data.atomic_masses``) and the pair style.  Include it after ``read_data`` (or
        ``create_box``) in an input with ``units metal`` whose atom types are the elements
        ``elements_``, in that order.  LAMMPS splits file names at blanks: for a folder with a
        blank (or a double quote) ``potforge_dir`` is ``.`` (the working directory), with a
        warning.

        Parameters
        ----------
        directory : path
            Folder to write into (created if needed).
        prefix : str
            Stem of the coefficient files' names.
        location : path, optional
            Folder LAMMPS will read the files from, when it is not ``directory`` (a staging
            folder renamed afterwards, say); default ``directory``.

        Returns
        -------
        Path
            ``directory/potential.in``.
        """
        import re

        from ase.data import atomic_masses, atomic_numbers

        directory = Path(directory)
        folder = str(Path(directory if location is None else location).resolve())
        if re.search(r'[\s"]', folder):
            # ${potforge_dir}/file is split at blanks; fall back to the working directory
            warnings.warn(
                f"LAMMPS cannot take the folder {folder!r} (a blank or a double quote) in a file "
                "name: potential.in reads its files from the working directory "
                "(potforge_dir = .); run LAMMPS in that folder, or pass "
                "-var potforge_dir <path without blanks>, e.g. a symbolic link",
                UserWarning,
                stacklevel=2,
            )
            folder = "."
        # quoted when it has '#', '$' or "'" (no comment, no substitution inside quotes)
        word = folder if re.fullmatch(r"[^#$']+", folder) else f'"{folder}"'
        directory.mkdir(parents=True, exist_ok=True)
        lines = self.lammps_commands(directory, prefix, folder_variable="potforge_dir")
        masses = [
            f"mass {k + 1} {float(atomic_masses[atomic_numbers[el]])!r}"
            for k, el in enumerate(self.elements_)
        ]
        head = [
            f"# potforge {__version__} linear potential; units metal; atom types: "
            f"{' '.join(self.elements_)}",
            "# Include after read_data or create_box. Files are read from ${potforge_dir}; after",
            "# moving this folder run LAMMPS with: -var potforge_dir /new/place",
            f"variable potforge_dir index {word}",
        ]
        path = directory / "potential.in"
        path.write_text("\n".join(head + masses + lines) + "\n")
        return path

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
        """Write ``model.json`` (exact: floats are written with full precision).

        A posterior (:meth:`fit_posterior`) goes to ``posterior.npz`` (exact float64 arrays)
        with its method, kind and diagnostics under ``"posterior"`` in ``model.json``; a stale
        ``posterior.npz`` of a model without one is removed.
        """
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.has_posterior:
            self.posterior_.save_arrays(directory / POSTERIOR_FILE)
        elif (directory / POSTERIOR_FILE).exists():
            (directory / POSTERIOR_FILE).unlink()
        doc = {
            "potforge_version": __version__,
            "elements": self.elements_,
            "terms": [term_to_dict(t) for t in self.terms_],
            "spec": self.terms if isinstance(self.terms, str) else None,
            "params": {k: v for k, v in self.get_params().items() if k != "terms"},
            "coef": [float(c) for c in self.coef_],
            "param_names": self.param_names,
            "fit_info": getattr(self, "fit_info_", {}),
        }
        if self.has_posterior:
            doc["posterior"] = {"file": POSTERIOR_FILE, **self.posterior_.meta()}
        tmp = directory / (MODEL_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(directory / MODEL_FILE)
        return directory / MODEL_FILE

    @classmethod
    def load(cls, directory: str | Path, posterior: bool = True) -> LinearPotential:
        """Read a model written by :meth:`save`; ``posterior=False`` skips its posterior (e.g.
        to replace an unreadable one)."""
        path = Path(directory) / MODEL_FILE
        if not path.exists():
            raise DataError(f"{path}: no such file (is {directory} a potforge model folder?)")
        try:
            doc = json.loads(path.read_text())
            terms = [term_from_dict(d) for d in doc["terms"]]
            model = cls(doc.get("spec") or terms, **doc["params"])
            model.elements = doc["params"].get("elements")
            for t in terms:
                t.setup(doc["elements"])
            model.terms_, model.elements_ = terms, list(doc["elements"])
            model.coef_ = np.array(doc["coef"], dtype=float)
            model.fit_info_ = doc.get("fit_info", {})
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a text file (expected potforge's JSON)") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed model file ({str(exc)[:200]!r})") from exc
        if len(model.coef_) != model.n_params:
            raise DataError(
                f"{path}: {len(model.coef_)} coefficients for {model.n_params} parameters"
            )
        meta = doc.get("posterior")
        if meta is not None and posterior:
            if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
                raise DataError(f"{path}: malformed 'posterior' entry (needs a 'file' name)")
            post = ParameterPosterior.load(Path(directory) / meta["file"], meta)
            if post.n_params != model.n_params:
                raise DataError(
                    f"{Path(directory) / meta['file']}: posterior has {post.n_params} "
                    f"parameters, the model {model.n_params}"
                )
            model.posterior_ = post
        return model


class PotentialCalculator(Calculator):
    """ASE calculator of a fitted :class:`LinearPotential` (descriptors from LAMMPS/numpy).

    Implements ``energy``, ``free_energy``, ``forces`` and ``stress`` (eV, eV/Å, eV/Å³); when
    the model has a posterior (and ``coef`` is not overridden) also :data:`UQ_PROPERTIES`:
    ``energy_std`` (eV), ``forces_std`` (N, 3), ``stress_std`` (6,), ``energy_bounds`` (2,),
    ``forces_bounds`` (2, N, 3), ``stress_bounds`` (2, 6) — lower then upper, exact over the
    posterior — read with ``atoms.calc.get_property("energy_bounds", atoms)``. They are computed
    only when asked for, so plain energy/force calls cost nothing extra.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: LinearPotential, coef: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.coef = None if coef is None else np.asarray(coef, dtype=float)
        self.implemented_properties = list(type(self).implemented_properties)
        if self.coef is None and model.has_posterior:
            self.implemented_properties += list(UQ_PROPERTIES)

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name in UQ_PROPERTIES and name not in self.implemented_properties:
            why = ("its parameters were given explicitly (the posterior describes coef_)"
                   if self.coef is not None else
                   "the model has no posterior (run `potforge uq` or "
                   "LinearPotential.fit_posterior)")
            raise PropertyNotImplementedError(f"{name} is not available from this calculator: "
                                              f"{why}")
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = structure_design(self.model.terms_, self.atoms)
        uq = any(p in UQ_PROPERTIES for p in properties)
        r = self.model.predict_designs(
            [d], self.coef, return_std=uq, return_bounds=uq, names=[describe(self.atoms)]
        )[0]
        self.results = {
            "energy": float(r["energy"]),
            "free_energy": float(r["energy"]),
            "forces": r["forces"],
            "stress": r["stress"],
        }
        if uq:
            self.results.update({p: r[p] for p in UQ_PROPERTIES})
