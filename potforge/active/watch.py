"""Watching a user's own MD: the frame uncertainty U (``max_devi_f`` over K posterior samples)
and the largest per-atom extrapolation grade γ of every frame of a trajectory.

Each frame costs one descriptor pass; the K force sets are K matrix products on its design rows
(:meth:`potforge.model.LinearPotential.predict_designs`), and γ comes from the same rows.
Frames are taken in chunks, so a long dump is never held in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from potforge.active.uncertainty import ExtrapolationGrade, bound_halfwidth, force_deviation
from potforge.errors import DataError
from potforge.params import unknown_name


@dataclass
class TrainingGrade:
    """An :class:`ExtrapolationGrade` fitted on the training structures' per-atom force rows.

    Attributes
    ----------
    grade : ExtrapolationGrade
        Fitted on the kept columns of the (subsampled) rows.
    columns : ndarray of int
        Parameter columns the force rows span (the force-free ones, e.g. a per-element
        constant energy, are left out: no force row can extrapolate along them).
    n_rows : int
        Training force rows available (3 per atom).
    n_used : int
        Rows the active set was chosen from (``n_rows``, or a random subsample of it).
    """

    grade: ExtrapolationGrade
    columns: np.ndarray
    n_rows: int
    n_used: int

    def atom_grades(self, force_rows: np.ndarray) -> np.ndarray:
        """γ of each atom from its force rows ``(N, 3, P)`` → ``(N,)``."""
        return self.grade.atom_grades(np.asarray(force_rows)[..., self.columns])


def training_grade(model, designs: Sequence, max_rows: int = 20000, seed: int = 0) -> TrainingGrade:
    """Fit the extrapolation grade on the force rows ``design.rows.forces.reshape(-1, P)`` of
    the training structures' ``designs``; more than ``max_rows`` rows are subsampled at random
    (``seed``) first."""
    P = model.n_params
    rows = np.concatenate([d.rows.forces.reshape(-1, P) for d in designs])
    n_rows = len(rows)
    if n_rows > max_rows:
        pick = np.random.default_rng(seed).choice(n_rows, max_rows, replace=False)
        rows = rows[np.sort(pick)]
    norm = np.linalg.norm(rows, axis=0)
    columns = np.flatnonzero(norm > 1e-12 * max(float(norm.max(initial=0.0)), 1e-300))
    if columns.size == 0:
        raise DataError("the training structures' force rows are all zero: no grade to fit")
    if len(rows) < columns.size:
        raise DataError(
            f"the extrapolation grade needs at least {columns.size} training force rows (one "
            f"per force parameter); the training structures give {len(rows)}"
        )
    grade = ExtrapolationGrade().fit(rows[:, columns])
    return TrainingGrade(grade, columns, n_rows, len(rows))


UNCERTAINTIES = ("max_devi_f", "pops_halfwidth")
"""Per-frame uncertainty signals: the ensemble force spread (DP-GEN's ``max_devi_f``), or the
half-width of the POPS force bounds (:func:`~potforge.active.uncertainty.bound_halfwidth`)."""


@dataclass
class Screen:
    """Per-frame results of :func:`screen`, each of shape (F,) unless stated.

    Attributes
    ----------
    u : ndarray
        U = max over atoms of the ensemble force spread (``max_devi_f``), eV/Å.
    u_atom : ndarray of int
        The atom (index in the frame) where U is reached.
    gamma, gamma_atom : ndarray or None
        Largest per-atom extrapolation grade and its atom (None without a grade).
    n_atoms : ndarray of int
    energy : ndarray
        Model energy per atom at ``coef_``, eV/atom (NaN for an unfitted model).
    descriptor : ndarray, shape (F, P)
        Energy design row per atom (for deduplicating near-identical frames).
    halfwidth : ndarray or None
        Max over atoms of the POPS force-bound half-width, eV/Å (with ``halfwidth=True``).
    """

    u: np.ndarray
    u_atom: np.ndarray
    gamma: np.ndarray | None
    gamma_atom: np.ndarray | None
    n_atoms: np.ndarray
    energy: np.ndarray
    descriptor: np.ndarray
    halfwidth: np.ndarray | None = None

    def signal(self, name: str) -> np.ndarray:
        """The per-frame uncertainty called ``name`` (:data:`UNCERTAINTIES`)."""
        if name == "max_devi_f":
            return self.u
        if name == "pops_halfwidth" and self.halfwidth is not None:
            return self.halfwidth
        if name == "pops_halfwidth":
            raise DataError("the POPS half-width was not computed: screen(..., halfwidth=True)")
        raise DataError(unknown_name(name, UNCERTAINTIES, "uncertainty"))


def screen(
    model,
    frames: Iterable[Atoms],
    coefs: np.ndarray,
    grade: TrainingGrade | None = None,
    chunk: int = 32,
    observe: Callable[[int], None] | None = None,
    *,
    threads: int = 1,
    halfwidth: bool = False,
    designs: Sequence | None = None,
) -> Screen:
    """U, energy, descriptor and (with ``grade``) the largest γ of every frame, from one
    descriptor pass per frame.

    Parameters
    ----------
    model : LinearPotential
        Model whose descriptors are evaluated (fitted, or only set up when just U is needed).
    frames : iterable of ase.Atoms
        Consumed ``chunk`` frames at a time (a long dump is never held in memory at once).
    coefs : ndarray, shape (K, P)
        Parameter vectors of the ensemble (e.g. :meth:`~LinearPotential.sample_coef`), K ≥ 2.
    grade : TrainingGrade, optional
    chunk : int, default=32
    observe : callable, optional
        Called with the number of frames finished after each chunk (progress).
    threads : int, default=1
        Threads computing the descriptors of a chunk at once (LAMMPS releases the GIL).
    halfwidth : bool, default=False
        Also the POPS bound half-width (needs ``model``'s posterior).
    designs : sequence of StructureDesign, optional
        The frames' designs when already computed (one per frame, in order): no descriptor
        pass then.
    """
    coefs = np.asarray(coefs, dtype=float)
    if coefs.ndim != 2 or coefs.shape[0] < 2:
        raise DataError(f"the ensemble needs K ≥ 2 parameter vectors, got shape {coefs.shape}")
    if halfwidth and not model.has_posterior:
        raise DataError("the POPS half-width needs a model with a posterior (fit_posterior)")
    fitted = getattr(model, "coef_", None) is not None
    cols: dict[str, list] = {k: [] for k in ("u", "ua", "g", "ga", "n", "e", "d", "h")}

    def run(batch: list[Atoms]) -> None:
        if designs is None:
            ds = model.structure_designs(batch, progress=False, threads=threads)
        else:
            ds = list(designs[len(cols["u"]) : len(cols["u"]) + len(batch)])
            if len(ds) != len(batch):
                raise DataError(f"{len(designs)} designs given for more frames than that")
        preds = model.predict_designs(ds, coefs)
        mean = model.predict_designs(ds, return_bounds=halfwidth) if fitted else None
        for k, (d, p) in enumerate(zip(ds, preds, strict=True)):
            dev = force_deviation(p["forces"])
            cols["u"].append(float(dev.max()))
            cols["ua"].append(int(dev.argmax()))
            cols["n"].append(d.n_atoms)
            cols["d"].append(d.rows.energy / d.n_atoms)
            cols["e"].append(float(mean[k]["energy"]) / d.n_atoms if mean else np.nan)
            if halfwidth and mean:
                cols["h"].append(float(bound_halfwidth(mean[k]["forces_bounds"]).max()))
            if grade is not None:
                gam = grade.atom_grades(d.rows.forces)
                cols["g"].append(float(gam.max()))
                cols["ga"].append(int(gam.argmax()))
        if observe is not None:
            observe(len(cols["u"]))

    batch: list[Atoms] = []
    for atoms in frames:
        batch.append(atoms)
        if len(batch) == chunk:
            run(batch)
            batch = []
    if batch:
        run(batch)
    has_g = grade is not None
    return Screen(
        np.array(cols["u"]),
        np.array(cols["ua"], dtype=int),
        np.array(cols["g"]) if has_g else None,
        np.array(cols["ga"], dtype=int) if has_g else None,
        np.array(cols["n"], dtype=int),
        np.array(cols["e"]),
        np.array(cols["d"]).reshape(len(cols["u"]), -1),
        np.array(cols["h"]) if halfwidth else None,
    )


def default_threshold(u_train: np.ndarray, n_std: float = 3.0) -> float:
    """U threshold from the training structures' own U: mean + ``n_std`` std, eV/Å."""
    u_train = np.asarray(u_train, dtype=float)
    if u_train.size == 0:
        raise DataError("no training structures to set the U threshold from")
    return float(u_train.mean() + n_std * u_train.std())
