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

from potforge.active.uncertainty import ExtrapolationGrade, force_deviation
from potforge.errors import DataError


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


@dataclass
class Screen:
    """Per-frame results of :func:`screen`, each of shape (F,).

    Attributes
    ----------
    u : ndarray
        U = max over atoms of the ensemble force spread, eV/Å.
    u_atom : ndarray of int
        The atom (index in the frame) where U is reached.
    gamma, gamma_atom : ndarray or None
        Largest per-atom extrapolation grade and its atom (None without a grade).
    n_atoms : ndarray of int
    """

    u: np.ndarray
    u_atom: np.ndarray
    gamma: np.ndarray | None
    gamma_atom: np.ndarray | None
    n_atoms: np.ndarray


def screen(
    model,
    frames: Iterable[Atoms],
    coefs: np.ndarray,
    grade: TrainingGrade | None = None,
    chunk: int = 32,
    observe: Callable[[int], None] | None = None,
) -> Screen:
    """U and (with ``grade``) the largest γ of every frame.

    Parameters
    ----------
    model : LinearPotential
        Fitted model whose descriptors are evaluated.
    frames : iterable of ase.Atoms
        Consumed ``chunk`` frames at a time.
    coefs : ndarray, shape (K, P)
        Parameter vectors of the ensemble (e.g. :meth:`~LinearPotential.sample_coef`), K ≥ 2.
    grade : TrainingGrade, optional
    observe : callable, optional
        Called with the number of frames finished after each chunk (progress).
    """
    coefs = np.asarray(coefs, dtype=float)
    if coefs.ndim != 2 or coefs.shape[0] < 2:
        raise DataError(f"the ensemble needs K ≥ 2 parameter vectors, got shape {coefs.shape}")
    u: list[float] = []
    ua: list[int] = []
    g: list[float] = []
    ga: list[int] = []
    n: list[int] = []

    def run(batch: list[Atoms]) -> None:
        designs = model.structure_designs(batch, progress=False)
        preds = model.predict_designs(designs, coefs)
        for d, p in zip(designs, preds, strict=True):
            dev = force_deviation(p["forces"])
            u.append(float(dev.max()))
            ua.append(int(dev.argmax()))
            n.append(d.n_atoms)
            if grade is not None:
                gam = grade.atom_grades(d.rows.forces)
                g.append(float(gam.max()))
                ga.append(int(gam.argmax()))
        if observe is not None:
            observe(len(u))

    batch: list[Atoms] = []
    for atoms in frames:
        batch.append(atoms)
        if len(batch) == chunk:
            run(batch)
            batch = []
    if batch:
        run(batch)
    return Screen(
        np.array(u),
        np.array(ua, dtype=int),
        np.array(g) if grade is not None else None,
        np.array(ga, dtype=int) if grade is not None else None,
        np.array(n, dtype=int),
    )


def default_threshold(u_train: np.ndarray, n_std: float = 3.0) -> float:
    """U threshold from the training structures' own U: mean + ``n_std`` std, eV/Å."""
    u_train = np.asarray(u_train, dtype=float)
    if u_train.size == 0:
        raise DataError("no training structures to set the U threshold from")
    return float(u_train.mean() + n_std * u_train.std())
