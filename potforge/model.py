"""LinearPotential: a sum of terms, linear in its parameters θ; fit, predict, export.

>>> model = LinearPotential("snap(twojmax=6)+zbl+const").fit(train)     # doctest: +SKIP
>>> atoms.calc = model.as_calculator()                                   # doctest: +SKIP
>>> model.to_lammps("lmp/")                                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from potforge import __version__
from potforge.data.structures import check_labels, check_structure, describe, elements_of
from potforge.design import (
    ROW_TYPES,
    DesignMatrix,
    StructureDesign,
    assemble,
    compute_designs,
    structure_design,
)
from potforge.errors import DataError, ModelError, NotFittedError
from potforge.fitting import weighted_lstsq
from potforge.terms import Constant, Term, parse_spec, term_from_dict, term_to_dict
from potforge.terms.base import write_files

DEFAULT_SPEC = "snap(twojmax=6,rcutfac=4.6,quadratic=True)+zbl(inner=1.0,outer=1.6)+const"
"""The default model (chosen on the Zuo Mo benchmark; see BENCHMARKS.md)."""

MODEL_FILE = "model.json"


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
    """

    def __init__(
        self,
        terms: str | Sequence[Term] = DEFAULT_SPEC,
        elements: Sequence[str] | None = None,
        sigma_energy: float = 1e-4,
        sigma_force: float = 0.2,
        sigma_stress: float = 0.005,
        group_weights: dict[str, float] | None = None,
        alpha: float = 1e-10,
        n_jobs: int = 1,
    ):
        self.terms = terms
        self.elements = elements
        self.sigma_energy = sigma_energy
        self.sigma_force = sigma_force
        self.sigma_stress = sigma_stress
        self.group_weights = group_weights
        self.alpha = alpha
        self.n_jobs = n_jobs

    # --- set-up --------------------------------------------------------------------------------
    def setup(self, structures: Sequence[Atoms] | None = None) -> LinearPotential:
        """Build the terms (``terms_``, ``elements_``) without fitting; returns self.

        With ``structures``, data-dependent ranges (e.g. the embedding density range) are set
        from them; :meth:`fit` calls this.  Set ``coef_`` afterwards to evaluate any θ.
        """
        terms = parse_spec(self.terms) if isinstance(self.terms, str) else list(self.terms)
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
        if not hasattr(self, "terms_"):
            raise NotFittedError("this LinearPotential is not fitted yet: call fit() or load()")

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this LinearPotential is not fitted yet: call fit() or load()")

    @property
    def sigma(self) -> tuple[float, float, float]:
        return (self.sigma_energy, self.sigma_force, self.sigma_stress)

    # --- design ---------------------------------------------------------------------------------
    def structure_designs(
        self, structures: Sequence[Atoms], progress: bool | None = None
    ) -> list[StructureDesign]:
        """Per-structure design rows of every term (one descriptor pass)."""
        self._check_built()
        return compute_designs(self.terms_, structures, self.n_jobs, progress)

    def design(
        self,
        structures: Sequence[Atoms],
        use: Sequence[str] = ROW_TYPES,
        designs: Sequence[StructureDesign] | None = None,
    ) -> DesignMatrix:
        """The design matrix of labelled ``structures`` (rows for every present label)."""
        designs = self.structure_designs(structures) if designs is None else designs
        return assemble(designs, structures, use)

    # --- fit ------------------------------------------------------------------------------------
    def fit(self, structures: Sequence[Atoms], y: Any = None) -> LinearPotential:
        """Weighted least squares on labelled structures.

        Parameters
        ----------
        structures : sequence of ase.Atoms
            With labels attached (energy and forces required; stress used where present).
        y : ignored
            For scikit-learn compatibility.

        Returns
        -------
        self
        """
        structures = list(structures)
        if not structures:
            raise DataError("the training set is empty")
        for k, a in enumerate(structures):
            name = describe(a, k)
            check_structure(a, name)
            check_labels(a, name, ("energy", "forces"))
        t0 = time.perf_counter()
        self.setup(structures)
        designs = self.structure_designs(structures)
        t1 = time.perf_counter()
        dm = assemble(designs, structures)
        w = dm.weights(self.sigma, self.group_weights)
        self.coef_ = weighted_lstsq(dm.A, dm.y, w, self.alpha, self.param_names)
        t2 = time.perf_counter()
        self.fit_info_ = {
            "n_structures": len(structures),
            "n_atoms": int(dm.n_atoms.sum()),
            "n_rows": int(len(dm.y)),
            "descriptor_seconds": t1 - t0,
            "solve_seconds": t2 - t1,
            "fit_seconds": t2 - t0,
        }
        return self

    # --- predict --------------------------------------------------------------------------------
    def predict_designs(
        self, designs: Sequence[StructureDesign], coef: np.ndarray | None = None
    ) -> list[dict[str, np.ndarray]]:
        """Energies, forces and stresses from precomputed designs.

        Parameters
        ----------
        coef : ndarray, shape (P,) or (K, P), optional
            Parameter vector(s); default ``coef_``.  K vectors give a leading K axis on every
            output (an ensemble from one descriptor pass).

        Returns
        -------
        list of dict
            Per structure: ``energy`` () or (K,) eV, ``forces`` (N, 3) or (K, N, 3) eV/Å,
            ``stress`` (6,) or (K, 6) eV/Å³.
        """
        if coef is None:
            self._check_fitted()
            coef = self.coef_
        coef = np.asarray(coef, dtype=float)
        out = []
        for d in designs:
            e = d.rows.energy @ coef.T + d.fixed.energy
            f = (
                np.moveaxis(d.rows.forces @ coef.T, -1, 0)
                if coef.ndim == 2
                else d.rows.forces @ coef
            )
            f = f + d.fixed.forces
            w = (d.rows.virial @ coef.T).T if coef.ndim == 2 else d.rows.virial @ coef
            out.append({"energy": e, "forces": f, "stress": -(w + d.fixed.virial) / d.volume})
        return out

    def predict(
        self, structures: Sequence[Atoms], coef: np.ndarray | None = None
    ) -> list[dict[str, np.ndarray]]:
        """Energies (eV), forces (eV/Å), stresses (eV/Å³) of ``structures``; see predict_designs."""
        if coef is None:
            self._check_fitted()
        return self.predict_designs(self.structure_designs(list(structures)), coef)

    def as_calculator(self, coef: np.ndarray | None = None) -> PotentialCalculator:
        """An ASE calculator evaluating this model (optionally with other parameters)."""
        self._check_fitted()
        return PotentialCalculator(self, coef)

    # --- LAMMPS export --------------------------------------------------------------------------
    def lammps_commands(
        self, directory: str | Path, prefix: str = "potforge", coef: np.ndarray | None = None
    ) -> list[str]:
        """Write the potential files into ``directory``; return its pair_style/pair_coeff lines."""
        self._check_fitted()
        coef = self.coef_ if coef is None else np.asarray(coef, dtype=float)
        blocks, start = {}, 0
        for t in self.linear_terms:
            blocks[id(t)] = coef[start : start + t.n_params]
            start += t.n_params
        const = [t for t in self.linear_terms if isinstance(t, Constant)]
        offsets = const[0].offsets(blocks[id(const[0])]) if const else None
        absorber = next((t for t in self.linear_terms if t.absorbs_offsets), None)
        parts = []
        for k, t in enumerate(self.terms_):
            if isinstance(t, Constant) and absorber is not None:
                continue
            part = t.lammps(
                blocks.get(id(t), np.zeros(0)),
                f"{prefix}_{k}_{t.kind}",
                offsets if t is absorber else None,
            )
            write_files(directory, part.files)
            parts.append(part)
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

    def to_lammps(self, directory: str | Path, prefix: str = "potforge") -> Path:
        """Write LAMMPS files and ``potential.in`` (an ``include``-able file) into ``directory``.

        Use it from a LAMMPS input running in ``directory`` with ``units metal`` and atom types
        in the order of ``elements_``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lines = self.lammps_commands(directory, prefix)
        path = directory / "potential.in"
        head = (
            f"# potforge {__version__} linear potential; units metal; atom types: "
            f"{' '.join(self.elements_)}\n"
        )
        path.write_text(head + "\n".join(lines) + "\n")
        return path

    # --- persistence ----------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "elements": self.elements,
            "sigma_energy": self.sigma_energy,
            "sigma_force": self.sigma_force,
            "sigma_stress": self.sigma_stress,
            "group_weights": self.group_weights,
            "alpha": self.alpha,
            "n_jobs": self.n_jobs,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (exact: floats are written with full precision)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc = {
            "potforge_version": __version__,
            "elements": self.elements_,
            "terms": [term_to_dict(t) for t in self.terms_],
            "params": self.get_params(),
            "coef": [float(c) for c in self.coef_],
            "param_names": self.param_names,
            "fit_info": getattr(self, "fit_info_", {}),
        }
        tmp = directory / (MODEL_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(directory / MODEL_FILE)
        return directory / MODEL_FILE

    @classmethod
    def load(cls, directory: str | Path) -> LinearPotential:
        """Read a model written by :meth:`save`."""
        path = Path(directory) / MODEL_FILE
        if not path.exists():
            raise DataError(f"{path}: no such file (is {directory} a potforge model folder?)")
        try:
            doc = json.loads(path.read_text())
            terms = [term_from_dict(d) for d in doc["terms"]]
            model = cls(terms, **doc["params"])
            model.elements = doc["params"].get("elements")
            for t in terms:
                t.setup(doc["elements"])
            model.terms_, model.elements_ = terms, list(doc["elements"])
            model.coef_ = np.array(doc["coef"], dtype=float)
            model.fit_info_ = doc.get("fit_info", {})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed model file ({exc!r})") from exc
        if len(model.coef_) != model.n_params:
            raise DataError(
                f"{path}: {len(model.coef_)} coefficients for {model.n_params} parameters"
            )
        return model


class PotentialCalculator(Calculator):
    """ASE calculator of a fitted :class:`LinearPotential` (descriptors from LAMMPS/numpy).

    Implements ``energy``, ``free_energy``, ``forces`` and ``stress`` (eV, eV/Å, eV/Å³).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: LinearPotential, coef: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.coef = None if coef is None else np.asarray(coef, dtype=float)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = structure_design(self.model.terms_, self.atoms)
        r = self.model.predict_designs([d], self.coef)[0]
        self.results = {
            "energy": float(r["energy"]),
            "free_energy": float(r["energy"]),
            "forces": r["forces"],
            "stress": r["stress"],
        }
