"""Entropy-maximising generation of new configurations (METHODS.md §2).

Each configuration starts at random — an atom count and a volume per atom drawn from ranges, a
randomly strained and sheared cube, the elements in a given composition, atoms placed at random
at least the repulsion floor apart where the density allows — and its positions and cell shape
are then moved by L-BFGS-B to minimise, per new atom,

    L(r, ε) = −[N · H(X ∪ Z(r, ε)) − n · H(X)] / m + (w/m) · Σ_{i<j, r_ij < r_min} (1 − r_ij/r_min)²

where ``X`` (n, d) are the whitened descriptors of the existing data set (possibly none),
``Z`` (m, d) those of the m new atoms (:class:`~potforge.generate.descriptors.DescriptorSpace`),
``N = n + m``, ``H`` the kernel entropy of :func:`potforge.generate.entropy.joint_entropy` (so
``N·H`` is the total entropy of every environment, and the objective is minus its gain per new
atom; ``H(∅) = 0``), and the penalty a soft, C¹ repulsion that is zero beyond ``r_min`` (Å;
periodic images counted).

Gradients: positions analytically, ``∂H/∂r_j = Σ_i ∂H/∂z_i · ∂z_i/∂r_j`` with ∂H/∂z from
:func:`~potforge.generate.entropy.joint_entropy` and ∂B/∂r from LAMMPS ``compute snap dgradflag 1``
(dense N × 3N, hence the small cells); the cell through the six components of a symmetric,
volume-preserving strain (positions scaled with the cell: the volume stays the random start's, so
the volume-per-atom range holds exactly), differentiated analytically from each atom's descriptor
virial (one ``compute snap`` with every atom its own LAMMPS type resolves ``∂B_i/∂r_j`` and
``Σ_j r_ij ⊗ ∂B_i/∂r_j`` per atom, periodic images included) or, with
``cell_gradient="finite_difference"``, by central differences (12 more objective calls).
After the optimiser stops, if some pair is still closer than ``(1 − floor_tolerance) · r_min``,
the repulsion is made ten times stiffer and the optimisation continued (at most three times).

Everything is deterministic for a seed (numpy ``default_rng``, LAMMPS, L-BFGS-B).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.optimize import minimize

from potforge.errors import DataError, EngineError
from potforge.generate.descriptors import (
    MAX_GRADIENT_ATOMS,
    DescriptorSpace,
    SnapDescriptor,
    _check_elements,
    descriptor_matrix,
)
from potforge.generate.entropy import (
    delta_entropy,
    entropy_reference,
    joint_entropy,
    kernel_sums,
    self_sums,
)
from potforge.progress import Progress

MAX_PACKING = math.pi / (3.0 * math.sqrt(2.0))
"""Densest packing fraction of equal spheres (≈ 0.7405): no arrangement keeps every pair
``r_min`` apart when ``π r_min³ / 6`` exceeds this fraction of the volume per atom."""

CELL_GRADIENTS = ("analytic", "finite_difference")
"""How :class:`GeneratorSettings` differentiates the objective with respect to the cell."""

_STIFFENING = 10.0
_MAX_STIFFENING_ROUNDS = 3


def _pair(name: str, value: Any, kind: type) -> tuple[Any, Any]:
    try:
        low, high = value
        low, high = kind(low), kind(high)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a pair (low, high), got {value!r}") from None
    return low, high


@dataclass(frozen=True)
class GeneratorSettings:
    """What random starts look like and how they are optimised.

    Parameters
    ----------
    elements : sequence of str
        Elements of the new configurations.
    volume_per_atom : (float, float)
        Range of the volume per atom, Å³/atom, ``0 < low ≤ high``; each start draws one
        uniformly and keeps it (the cell optimisation preserves volume).
    r_min : float
        Repulsion floor, Å, > 0 (e.g. 0.8 × the nearest-neighbour distance); must fit the
        smallest volume per atom (``π r_min³ / 6 ≤ 0.74 × low``).
    composition : sequence of float, optional
        Fraction of each element (≥ 0, not all 0; normalised); default equal.  The counts of a
        start are the fractions × its atom count rounded by largest remainder.
    n_atoms : (int, int), default=(8, 64)
        Range of the atom count, ``1 ≤ low ≤ high ≤ 256``, drawn uniformly.
    max_strain : float, default=0.15
        Bound on each of the six components of the random symmetric strain of the start's cube,
        in [0, 0.3] (below 1/3 the strained cell cannot degenerate).
    cell_strain : float, default=0.1
        Bound on each component of the optimised strain, in [0, 0.3]; 0 keeps the cell fixed.
    repulsion : float, default=100.0
        Penalty weight w, nats per overlapping pair at zero distance, > 0.
    max_iter : int, default=30
        L-BFGS-B iterations per round, ≥ 0 (0: the random start is returned as it is).
    floor_tolerance : float, default=0.02
        Accepted shortfall of the closest pair below ``r_min``, as a fraction, in [0, 0.5).
    placement_tries : int, default=200
        Random trial positions per atom when placing a start, ≥ 1 (the farthest-from-the-others
        trial is kept when none clears ``r_min``).
    strain_step : float, default=1e-5
        Finite-difference step of the strain components, in (0, 0.01] (``cell_gradient``
        "finite_difference" only).
    cell_gradient : {"analytic", "finite_difference"}, default="analytic"
        How the objective's derivative with respect to the cell strain is computed:
        "analytic" from each atom's descriptor virial (one LAMMPS call per gradient,
        :meth:`EntropyObjective.value_gradient_strain`), or by central differences (twelve
        more objective evaluations per gradient).
    """

    elements: tuple[str, ...]
    volume_per_atom: tuple[float, float]
    r_min: float
    composition: tuple[float, ...] | None = None
    n_atoms: tuple[int, int] = (8, 64)
    max_strain: float = 0.15
    cell_strain: float = 0.1
    repulsion: float = 100.0
    max_iter: int = 30
    floor_tolerance: float = 0.02
    placement_tries: int = 200
    strain_step: float = 1e-5
    cell_gradient: str = "analytic"
    _fractions: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        els = _check_elements(self.elements)
        object.__setattr__(self, "elements", els)
        lo, hi = _pair("n_atoms", self.n_atoms, float)
        if not (lo == int(lo) and hi == int(hi) and 1 <= lo <= hi <= MAX_GRADIENT_ATOMS):
            raise DataError(
                f"n_atoms must be a range (low, high) of integers with 1 ≤ low ≤ high ≤ "
                f"{MAX_GRADIENT_ATOMS}, got {tuple(self.n_atoms)}"
            )
        object.__setattr__(self, "n_atoms", (int(lo), int(hi)))
        vlo, vhi = _pair("volume_per_atom", self.volume_per_atom, float)
        if not (np.isfinite(vlo) and np.isfinite(vhi) and 0 < vlo <= vhi):
            raise DataError(
                f"volume_per_atom must be a range (low, high) in Å³/atom with 0 < low ≤ high, "
                f"got {tuple(self.volume_per_atom)}"
            )
        object.__setattr__(self, "volume_per_atom", (vlo, vhi))
        r = float(self.r_min)
        if not (np.isfinite(r) and r > 0):
            raise DataError(f"r_min must be a finite distance > 0 Å, got {self.r_min!r}")
        packing = math.pi * r**3 / 6.0 / vlo
        if packing > MAX_PACKING:
            raise DataError(
                f"r_min = {r:g} Å cannot be kept at {vlo:g} Å³/atom (spheres of that diameter "
                f"would fill {packing:.2f} of the volume, above the densest packing 0.74); "
                "lower r_min or raise the volume per atom"
            )
        object.__setattr__(self, "r_min", r)
        if self.composition is None:
            frac = np.full(len(els), 1.0 / len(els))
        else:
            frac = np.asarray(self.composition, dtype=float).ravel()
            if frac.shape != (len(els),) or not np.all(np.isfinite(frac)) or np.any(frac < 0):
                raise DataError(
                    f"composition must give one fraction ≥ 0 per element of {list(els)}, got "
                    f"{self.composition!r}"
                )
            if frac.sum() <= 0:
                raise DataError("composition must have at least one fraction above 0")
            frac = frac / frac.sum()
            object.__setattr__(self, "composition", tuple(float(f) for f in frac))
        object.__setattr__(self, "_fractions", frac)
        for name, top in (("max_strain", 0.3), ("cell_strain", 0.3)):
            v = getattr(self, name)
            if not (np.isfinite(v) and 0 <= v <= top):
                raise DataError(f"{name} must be in [0, {top}], got {v!r}")
        if not (np.isfinite(self.repulsion) and self.repulsion > 0):
            raise DataError(f"repulsion must be a finite weight > 0, got {self.repulsion!r}")
        for name, low in (("max_iter", 0), ("placement_tries", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < low:
                raise DataError(f"{name} must be an integer ≥ {low}, got {v!r}")
        if not (0 <= self.floor_tolerance < 0.5):
            raise DataError(f"floor_tolerance must be in [0, 0.5), got {self.floor_tolerance!r}")
        if not (0 < self.strain_step <= 0.01):
            raise DataError(f"strain_step must be in (0, 0.01], got {self.strain_step!r}")
        if self.cell_gradient not in CELL_GRADIENTS:
            raise DataError(
                f"cell_gradient must be one of {', '.join(CELL_GRADIENTS)}, got "
                f"{self.cell_gradient!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (``GeneratorSettings(**d)`` rebuilds them)."""
        return {
            "elements": list(self.elements),
            "volume_per_atom": list(self.volume_per_atom),
            "r_min": self.r_min,
            "composition": None if self.composition is None else list(self.composition),
            "n_atoms": list(self.n_atoms),
            "max_strain": self.max_strain,
            "cell_strain": self.cell_strain,
            "repulsion": self.repulsion,
            "max_iter": int(self.max_iter),
            "floor_tolerance": self.floor_tolerance,
            "placement_tries": int(self.placement_tries),
            "strain_step": self.strain_step,
            "cell_gradient": self.cell_gradient,
        }

    def counts(self, n: int) -> np.ndarray:
        """Atoms of each element in a start of ``n`` atoms (largest-remainder rounding)."""
        exact = self._fractions * n
        counts = np.floor(exact).astype(int)
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[: n - counts.sum()]] += 1
        return counts


# --------------------------------------------------------------------------- geometry helpers

_SHIFTS = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])


def _strain(e: np.ndarray) -> np.ndarray:
    """Symmetric strain matrix from Voigt components (xx, yy, zz, yz, xz, xy)."""
    xx, yy, zz, yz, xz, xy = e
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _deformation(e: np.ndarray) -> np.ndarray:
    """Volume-preserving ``F = (I + ε) / det(I + ε)^(1/3)`` (rows: ``x' = x F``)."""
    f = np.eye(3) + _strain(e)
    return f / np.cbrt(np.linalg.det(f))


def _deformation_derivative(e: np.ndarray) -> np.ndarray:
    """``∂F/∂e_k`` of :func:`_deformation`, shape (6, 3, 3): with ``M = I + ε``,
    ``c = det(M)^(1/3)``, ``dF = [dM − M · tr(M⁻¹ dM) / 3] / c``."""
    m = np.eye(3) + _strain(e)
    c = np.cbrt(np.linalg.det(m))
    inv = np.linalg.inv(m)
    out = np.empty((6, 3, 3))
    for k in range(6):
        dm = _strain(np.eye(6)[k])
        out[k] = (dm - m * np.trace(inv @ dm) / 3.0) / c
    return out


def min_distance(atoms: Atoms, cutoff: float) -> float:
    """Shortest interatomic distance (periodic images included, Å); ``inf`` when every pair is
    at least ``cutoff`` apart."""
    d = neighbor_list("d", atoms, cutoff, self_interaction=False)
    return float(d.min()) if d.size else math.inf


def random_start(settings: GeneratorSettings, rng: np.random.Generator) -> Atoms:
    """A random configuration as described by ``settings``.

    Parameters
    ----------
    settings : GeneratorSettings
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    ase.Atoms
        Periodic, ``N`` atoms with ``n_atoms[0] ≤ N ≤ n_atoms[1]``, volume ``N·v`` with ``v`` in
        ``volume_per_atom``; ``info["start_min_distance"]`` is its closest pair (Å), below
        ``r_min`` where random placement could not clear the floor.
    """
    lo, hi = settings.n_atoms
    n = int(rng.integers(lo, hi + 1))
    v = float(rng.uniform(*settings.volume_per_atom))
    e = rng.uniform(-settings.max_strain, settings.max_strain, size=6)
    cell = np.cbrt(n * v) * _deformation(e)
    symbols = np.repeat(np.array(settings.elements), settings.counts(n))
    symbols = symbols[rng.permutation(n)]
    frac = np.zeros((n, 3))
    r2 = settings.r_min**2
    tries = int(settings.placement_tries)
    for k in range(n):
        trial = rng.random((tries, 3))
        if k == 0:
            frac[0] = trial[0]
            continue
        diff = trial[:, None, None, :] - frac[None, :k, None, :]
        diff = diff - np.round(diff) + _SHIFTS[None, None, :, :]
        d2 = np.einsum("tksa,ab,tksb->tks", diff, cell @ cell.T, diff).min(axis=(1, 2))
        ok = np.flatnonzero(d2 >= r2)
        frac[k] = trial[ok[0]] if ok.size else trial[int(np.argmax(d2))]
    atoms = Atoms(symbols=list(symbols), scaled_positions=frac, cell=cell, pbc=True)
    atoms.info["start_min_distance"] = min_distance(atoms, 2.0 * settings.r_min)
    return atoms


# --------------------------------------------------------------------------- the objective


class EntropyObjective:
    """Entropy-gain-per-atom objective of one new configuration against fixed existing data.

    ``L = −[N · H(X ∪ Z) − n · H(X)] / m + (w/m) Σ_{i<j} (1 − r_ij/r_min)²₊`` (nats per new
    atom; see the module docstring).

    Parameters
    ----------
    space : DescriptorSpace
        Whitening and bandwidth; its descriptor must be a :class:`SnapDescriptor`.
    existing : ndarray, shape (n, d), optional
        Whitened descriptors of the existing environments (``space.environments(structures)``);
        default none.
    r_min : float
        Repulsion floor, Å, > 0.
    repulsion : float
        Penalty weight w (nats per pair at zero distance), > 0.
    threads : int or None, default=None
        Threads of the entropy kernels (``None``: their default).
    x_sums : ndarray, shape (n,), optional
        ``self_sums(existing, space.bandwidth)`` if already known (computed here otherwise).

    Attributes
    ----------
    existing_entropy : float
        ``H(X)``, nats (0 for no existing environments).
    repulsion : float
        The current weight (the optimiser stiffens it when the floor is not met).
    """

    def __init__(
        self,
        space: DescriptorSpace,
        existing: np.ndarray | None = None,
        *,
        r_min: float,
        repulsion: float,
        threads: int | None = None,
        x_sums: np.ndarray | None = None,
    ):
        if not isinstance(space.descriptor, SnapDescriptor):
            raise DataError(
                f"the generator needs position gradients, which the {space.descriptor.kind} "
                "descriptor lacks; fit the space with a SnapDescriptor"
            )
        self.space = space
        self.existing = _check_existing(existing, space)
        self.r_min = float(r_min)
        self.repulsion = float(repulsion)
        if not (np.isfinite(self.r_min) and self.r_min > 0):
            raise DataError(f"r_min must be a finite distance > 0 Å, got {r_min!r}")
        if not (np.isfinite(self.repulsion) and self.repulsion > 0):
            raise DataError(f"repulsion must be a finite weight > 0, got {repulsion!r}")
        self.threads = threads
        h = space.bandwidth
        if x_sums is None:
            x_sums = self_sums(self.existing, h, threads=threads)
        self.x_sums = np.asarray(x_sums, dtype=float)
        if self.x_sums.shape != (self.existing.shape[0],):
            raise DataError(
                f"x_sums must hold one kernel sum per existing environment "
                f"({self.existing.shape[0]}), got shape {self.x_sums.shape}"
            )
        n = self.existing.shape[0]
        self.existing_entropy = float(np.log(n) - np.mean(np.log(self.x_sums))) if n else 0.0
        # prepared once: each step then costs only the kernel work against the existing set
        self._reference = (
            entropy_reference(self.existing, h, self.x_sums, threads=threads) if n else None
        )

    @property
    def h(self) -> float:
        """Kernel bandwidth in the whitened space."""
        return self.space.bandwidth

    def entropy(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """``H(X ∪ Z)`` (nats) and ``∂H/∂Z`` (m, d)."""
        if self._reference is None:
            return joint_entropy(z, self.existing, self.h, threads=self.threads)
        return joint_entropy(z, self._reference, threads=self.threads)

    def _penalty(
        self, atoms: Atoms, gradient: bool, strain: bool = False
    ) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """Repulsion, its position gradient (N, 3) and its strain derivative (3, 3)."""
        i, j, d, vec = neighbor_list("ijdD", atoms, self.r_min, self_interaction=False)
        gap = 1.0 - d / self.r_min
        # each unordered pair appears twice, (i, j) and (j, i): ½ w gap² for each
        value = 0.5 * self.repulsion * float(np.sum(gap**2))
        if not gradient:
            return value, None, None
        g = np.zeros((len(atoms), 3))
        dv = (-self.repulsion * gap / (self.r_min * d))[:, None] * vec  # ∂(½ w gap²)/∂r_j
        np.add.at(g, j, dv)
        np.add.at(g, i, -dv)
        # x → x (I + ε) moves each pair vector to vec (I + ε): ∂/∂ε_ab = Σ vec_a · dv_b
        w = np.einsum("pa,pb->ab", vec, dv) if strain else None
        return value, g, w

    def value(self, atoms: Atoms) -> float:
        """Objective ``L`` of ``atoms`` (nats per new atom)."""
        m = len(atoms)
        z = self.space.transform_descriptors(self.space.descriptor.compute(atoms))
        H, _ = self.entropy(z)
        pen, _, _ = self._penalty(atoms, gradient=False)
        return (self._gain(H, m) + pen) / m

    def _gain(self, H: float, m: int) -> float:
        """``−[N·H − n·H(X)]``: minus the total entropy the m new environments add."""
        n = self.existing.shape[0]
        return -((n + m) * H - n * self.existing_entropy)

    def value_and_gradient(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Objective ``L`` and its gradient with respect to the positions, (N, 3) per Å.

        ``∂B_ik/∂r_ja`` (from ``compute snap dgradflag 1``) is contracted with ``∂H/∂B_ik``
        (the whitening pulled back); the gradient is in ASE's frame.
        """
        m = len(atoms)
        b, db = self.space.descriptor.compute_gradient(atoms)
        z = self.space.transform_descriptors(b)
        H, dz = self.entropy(z)
        scale = -(self.existing.shape[0] + m) / m
        g_b = self.space.pull_back(dz)  # ∂H/∂B, (m, D)
        grad = scale * np.einsum("ik,ikja->ja", g_b, db, optimize=True)
        pen, g_pen, _ = self._penalty(atoms, gradient=True)
        assert g_pen is not None
        return (self._gain(H, m) + pen) / m, grad + g_pen / m

    def value_gradient_strain(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
        """Objective ``L``, its position gradient and its homogeneous-strain derivative.

        Parameters
        ----------
        atoms : ase.Atoms
            The new configuration (symbols in the space's descriptor).

        Returns
        -------
        value : float
            ``L``, nats per new atom.
        gradient : ndarray, shape (N, 3)
            ``∂L/∂r``, nats per atom per Å, ASE's frame (as :meth:`value_and_gradient`).
        strain : ndarray, shape (3, 3)
            ``∂L/∂ε_ab`` at ε = 0 for the deformation of positions and cell ``x → x (I + ε)``
            (row vectors), nats per atom; analytic, from each atom's descriptor virial
            (:meth:`~potforge.generate.descriptors.SnapDescriptor.compute_strain_gradient`)
            and the repulsion's pair virial.
        """
        m = len(atoms)
        desc = self.space.descriptor
        assert isinstance(desc, SnapDescriptor)  # checked in __init__
        b, db, ds = desc.compute_strain_gradient(atoms)
        z = self.space.transform_descriptors(b)
        H, dz = self.entropy(z)
        scale = -(self.existing.shape[0] + m) / m
        g_b = self.space.pull_back(dz)  # ∂H/∂B, (m, D)
        grad = scale * np.einsum("ik,ikja->ja", g_b, db, optimize=True)
        w = scale * np.einsum("ik,ikab->ab", g_b, ds, optimize=True)
        pen, g_pen, w_pen = self._penalty(atoms, gradient=True, strain=True)
        assert g_pen is not None and w_pen is not None
        return (self._gain(H, m) + pen) / m, grad + g_pen / m, w + w_pen / m


def _check_existing(existing: np.ndarray | None, space: DescriptorSpace) -> np.ndarray:
    if existing is None:
        return np.zeros((0, space.dimension))
    x = np.asarray(existing, dtype=float)
    if x.ndim != 2 or x.shape[1] != space.dimension:
        raise DataError(
            f"existing must be whitened descriptors of shape (n, {space.dimension}) from this "
            f"space (space.environments(structures)), got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise DataError("existing holds non-finite descriptors (NaN or inf)")
    return x


# --------------------------------------------------------------------------- optimisation


def _optimise(
    start: Atoms, objective: EntropyObjective, settings: GeneratorSettings, seed: int
) -> tuple[Atoms, int, float]:
    """L-BFGS-B on positions (Å, in the start's cell frame) and scaled volume-preserving strain;
    returns the final structure, the iterations used and the final repulsion weight."""
    n = len(start)
    cell0 = start.cell.array.copy()
    length = float(np.cbrt(start.get_volume()))  # strain variables scaled to Å
    relax_cell = settings.cell_strain > 0
    n_strain = 6 if relax_cell else 0
    step = settings.strain_step * length
    analytic = relax_cell and settings.cell_gradient == "analytic"

    def build(x: np.ndarray) -> tuple[Atoms, np.ndarray]:
        f = _deformation(x[3 * n :] / length) if relax_cell else np.eye(3)
        atoms = start.copy()
        atoms.set_cell(cell0 @ f, scale_atoms=False)
        atoms.positions = x[: 3 * n].reshape(n, 3) @ f
        return atoms, f

    def value(x: np.ndarray) -> float:
        return objective.value(build(x)[0])

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        atoms, f = build(x)
        grad = np.empty_like(x)
        if analytic:
            val, g_r, w = objective.value_gradient_strain(atoms)
            # x' = u (F + dF) = r (I + F⁻¹ dF): ∂L/∂e_k = Σ_ab w_ab (F⁻¹ ∂F/∂e_k)_ab
            df = np.linalg.solve(f, _deformation_derivative(x[3 * n :] / length))
            grad[3 * n :] = np.einsum("ab,kab->k", w, df) / length
        else:
            val, g_r = objective.value_and_gradient(atoms)
            for k in range(n_strain):
                xp, xm = x.copy(), x.copy()
                xp[3 * n + k] += step
                xm[3 * n + k] -= step
                grad[3 * n + k] = (value(xp) - value(xm)) / (2 * step)
        grad[: 3 * n] = (g_r @ f.T).ravel()  # r = u F  ⇒  ∂L/∂u = ∂L/∂r Fᵀ
        if not (np.isfinite(val) and np.all(np.isfinite(grad))):
            raise EngineError(
                f"generation from seed {seed} met a non-finite objective or gradient on "
                f"{atoms.get_chemical_formula()}"
            )
        return val, grad

    x = np.concatenate([start.positions.ravel(), np.zeros(n_strain)])
    bounds = [(None, None)] * (3 * n) + [
        (-settings.cell_strain * length, settings.cell_strain * length)
    ] * n_strain
    iterations = 0
    floor = (1.0 - settings.floor_tolerance) * settings.r_min
    atoms = start
    for _ in range(_MAX_STIFFENING_ROUNDS + 1):
        if settings.max_iter == 0:
            break
        res = minimize(
            fun,
            x,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            # the entropy gradient can be small (kernels far apart): stop on maxiter or on the
            # relative decrease of L, never on the gradient norm alone
            options={"maxiter": int(settings.max_iter), "gtol": 1e-12},
        )
        x = res.x
        iterations += int(res.nit)
        atoms, _ = build(x)
        if min_distance(atoms, settings.r_min) >= floor:
            break
        objective.repulsion *= _STIFFENING
    else:
        raise DataError(
            f"generation from seed {seed} could not keep every pair of "
            f"{atoms.get_chemical_formula()} at least {floor:.3g} Å apart even with a "
            f"{objective.repulsion:g} repulsion; lower r_min or raise the volume per atom"
        )
    return atoms, iterations, objective.repulsion


def _seed_of(seed: int, index: int) -> int:
    """The seed of the ``index``-th configuration of a batch seeded ``seed`` (64-bit)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def generate_configuration(
    space: DescriptorSpace,
    settings: GeneratorSettings,
    *,
    existing: np.ndarray | None = None,
    seed: int = 0,
    threads: int | None = None,
    x_sums: np.ndarray | None = None,
) -> Atoms:
    """One new configuration whose environments add the most entropy to ``existing``.

    Parameters
    ----------
    space : DescriptorSpace
        Whitening and bandwidth (its descriptor a :class:`SnapDescriptor` holding every element
        of ``settings``).
    settings : GeneratorSettings
        Random-start ranges, repulsion and optimiser settings.
    existing : ndarray, shape (n, d), optional
        Whitened descriptors of the existing data set; default none (the entropy of the new
        configuration alone is maximised).
    seed : int, default=0
        Seed of the random start (the result is a deterministic function of it).
    threads : int or None, default=None
        Threads of the entropy kernels.
    x_sums : ndarray, shape (n,), optional
        ``self_sums(existing, space.bandwidth)`` if already known (saves O(n²) work).

    Returns
    -------
    ase.Atoms
        Periodic configuration with ``info``: ``generate_seed``, ``generate_settings`` (JSON of
        the settings and the space's bandwidth), ``entropy`` (H of existing ∪ new, nats),
        ``entropy_gain`` (that minus H(existing), 0 for no existing data) and
        ``entropy_gain_start`` (the same for the random start), ``novelty`` (mean over the new
        atoms of ``dH(z | existing)``, nats; only with existing data), ``min_distance`` (Å),
        ``start_min_distance`` (Å), ``iterations``, ``repulsion`` (final weight) and
        ``n_existing``.
    """
    if not isinstance(settings, GeneratorSettings):
        raise DataError(f"settings must be GeneratorSettings, got {type(settings).__name__}")
    desc = space.descriptor
    if isinstance(desc, SnapDescriptor):
        missing = [e for e in settings.elements if e not in desc.elements]
        if missing:
            raise DataError(
                f"the descriptor space knows elements {list(desc.elements)}, not "
                f"{', '.join(missing)} of the generator settings"
            )
    objective = EntropyObjective(
        space,
        existing,
        r_min=settings.r_min,
        repulsion=settings.repulsion,
        threads=threads,
        x_sums=x_sums,
    )
    x = objective.existing
    h = space.bandwidth
    h_existing = objective.existing_entropy
    start = random_start(settings, np.random.default_rng(int(seed)))
    z0 = space.transform_descriptors(desc.compute(start))
    h_start, _ = objective.entropy(z0)
    atoms, iterations, weight = _optimise(start, objective, settings, int(seed))
    z = space.transform_descriptors(desc.compute(atoms))
    h_final, _ = objective.entropy(z)
    info: dict[str, Any] = {
        "generate_seed": int(seed),
        "generate_settings": json.dumps({**settings.to_dict(), "bandwidth": h}),
        "entropy": float(h_final),
        "entropy_gain": float(h_final - h_existing),
        "entropy_gain_start": float(h_start - h_existing),
        "min_distance": min_distance(atoms, 2.0 * settings.r_min),
        "start_min_distance": start.info["start_min_distance"],
        "iterations": iterations,
        "repulsion": weight,
        "n_existing": int(x.shape[0]),
    }
    if x.shape[0]:
        info["novelty"] = float(np.mean(delta_entropy(z, x, h, threads=threads)))
    atoms.info = info
    atoms.calc = None
    return atoms


def generate_batch(
    n: int,
    space: DescriptorSpace,
    settings: GeneratorSettings,
    *,
    existing: np.ndarray | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
) -> list[Atoms]:
    """``n`` configurations generated one after another, each joining the existing set of the next.

    Configuration ``k`` is :func:`generate_configuration` with the seed
    ``SeedSequence([seed, k])`` (63 bits, recorded in its ``info["generate_seed"]``, so it can be
    regenerated alone from the same existing set) and ``info["generate_index"] = k``; the
    existing set's kernel sums are updated incrementally (O(m·N) per configuration).

    Parameters
    ----------
    n : int
        Number of configurations, ≥ 0.
    space, settings, existing, threads
        As :func:`generate_configuration`.
    seed : int, default=0
        Seed of the batch.
    progress : bool or None, default=None
        Progress display (:class:`potforge.progress.Progress`).

    Returns
    -------
    list of ase.Atoms
    """
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise DataError(f"n must be an integer ≥ 0, got {n!r}")
    x = _check_existing(existing, space)
    h = space.bandwidth
    sums = self_sums(x, h, threads=threads)
    out: list[Atoms] = []
    bar = Progress(int(n), "generate", unit="structure", progress=progress)
    try:
        for k in range(int(n)):
            atoms = generate_configuration(
                space,
                settings,
                existing=x,
                seed=_seed_of(seed, k),
                threads=threads,
                x_sums=sums,
            )
            atoms.info["generate_index"] = k
            out.append(atoms)
            z = space.transform_descriptors(space.descriptor.compute(atoms))
            both = np.concatenate([x, z])
            sums = np.concatenate(
                [
                    sums + kernel_sums(x, z, h, threads=threads),
                    kernel_sums(z, both, h, threads=threads),
                ]
            )
            x = both
            bar.update(1)
            bar.set_postfix_str(f"H={atoms.info['entropy']:.3f}")
    finally:
        bar.close(finished=len(out) == n)
    return out


def generation_space(
    descriptor: SnapDescriptor,
    settings: GeneratorSettings,
    *,
    structures: Sequence[Atoms] = (),
    n_starts: int = 8,
    seed: int = 0,
    bandwidth: float | str = "silverman",
    floor: float = 1e-4,
) -> DescriptorSpace:
    """A descriptor space fitted on existing structures and on random starts of the generator.

    Whitening on the existing data alone makes every random start an outlier by many
    bandwidths (its kernels underflow and the entropy gradient vanishes); fitting on both
    keeps the generator's range inside the space.

    Parameters
    ----------
    descriptor : SnapDescriptor
        Holding every element of ``settings`` and of ``structures``.
    settings : GeneratorSettings
        Where the starts come from (:func:`random_start`).
    structures : sequence of ase.Atoms, default=()
        The existing data set (may be empty).
    n_starts : int, default=8
        Number of random starts, ≥ 0 (at least 2 environments in all are needed).
    seed : int, default=0
        Seed of the starts.
    bandwidth, floor
        As :meth:`DescriptorSpace.fit`.

    Returns
    -------
    DescriptorSpace
    """
    if isinstance(n_starts, bool) or int(n_starts) != n_starts or n_starts < 0:
        raise DataError(f"n_starts must be an integer ≥ 0, got {n_starts!r}")
    rng = np.random.default_rng(int(seed))
    starts = [random_start(settings, rng) for _ in range(int(n_starts))]
    ref = descriptor_matrix([*structures, *starts], descriptor)
    return DescriptorSpace.fit(ref, descriptor, bandwidth=bandwidth, floor=floor)


__all__ = [
    "CELL_GRADIENTS",
    "MAX_PACKING",
    "EntropyObjective",
    "GeneratorSettings",
    "generate_batch",
    "generate_configuration",
    "min_distance",
    "random_start",
    "generation_space",
]


def crystal_state(
    formula: str, phase: str | None = None, oracle: Any = None, say: Any = None, hint: str = ""
) -> tuple[str, float, float]:
    """Phase, volume per atom (Å³) and nearest-neighbour distance (Å) of one crystal.

    ``formula`` is an element (its bcc / fcc / hcp ground state from ASE's reference data unless
    ``phase`` is given) or a binary compound AB (``phase`` zincblende or rocksalt, default
    zincblende); relaxed with ``oracle`` (a :class:`potforge.oracles.Oracle`) when given, else
    at the suite's guessed lattice constant.  ``say`` (optional, like ``print``) gets one line.

    Raises
    ------
    DataError
        An element whose ground state is not bcc, fcc or hcp (``hint`` ends the sentence).
    """
    from ase.data import atomic_numbers, reference_states

    from potforge.properties.structures import bulk_phase, guess_lattice

    if phase is None:
        if formula in atomic_numbers:
            phase = str((reference_states[atomic_numbers[formula]] or {}).get("symmetry"))
            if phase not in ("bcc", "fcc", "hcp"):
                raise DataError(
                    f"{formula}'s ground state {phase!r} is not bcc, fcc or hcp"
                    + (f": {hint} in Å³/atom" if hint else "")
                )
        else:
            phase = "zincblende"
    if oracle is not None:
        from potforge.properties.bulk import relax_bulk

        atoms = relax_bulk(oracle.build(), formula, phase).atoms
    else:
        a, coa = guess_lattice(formula, phase)
        atoms = bulk_phase(formula, phase, a, coa)
    v = float(atoms.get_volume() / len(atoms))
    nn = float(neighbor_list("d", atoms.repeat(2), 6.0).min())
    if say is not None:
        src = f"relaxed with {oracle.spec}" if oracle is not None else "ASE reference data"
        say(f"{formula} {phase}: {v:.3f} Å³/atom, nearest neighbour {nn:.3f} Å ({src})")
    return phase, v, nn


def ground_state(
    elements: Sequence[str], oracle: Any = None, say: Any = None, hint: str = "give the volume"
) -> tuple[float, float]:
    """Volume per atom (Å³) and nearest-neighbour distance (Å) of the elements' ground states:
    composition-free averages of each element's own (:func:`crystal_state`)."""
    states = [crystal_state(el, None, oracle, say, hint)[1:] for el in elements]
    return float(np.mean([v for v, _ in states])), float(min(nn for _, nn in states))


NEAR_KINDS = ("strained", "rattled", "vacancy", "surface_110", "fault")
"""The structure kinds of :func:`near_equilibrium`."""

_CYCLE = ("strained", "rattled", "strained", "vacancy", "rattled", "surface_110", "fault")

FAULT_PLANE = {"bcc": "110", "fcc": "111"}
"""The slip system of a ``"fault"`` structure: that of the usf_110 / usf_111 QoIs."""


def near_equilibrium(
    formula: str,
    phase: str,
    volume: float,
    n: int,
    seed: int = 0,
    kinds: Sequence[str] = NEAR_KINDS,
) -> list[Atoms]:
    """``n`` unlabelled structures of the kinds material properties are made of, cycling
    strained, rattled, strained, vacancy, rattled, surface_110, fault (those among ``kinds``):
    homogeneously strained conventional cells (up to ±3 %), rattled (0.03–0.15 Å) 2×2×2
    supercells at ±2 % volume, 2×2×2 cells less their first atom, 4-layer (110) slabs (6 Å
    vacuum; not for hcp), and 12 Å slabs (6 Å vacuum) of the generalized stacking fault of
    :data:`FAULT_PLANE` with the upper half slipped by a random fraction of the fault's shift
    range (:data:`~potforge.properties.structures.GSF_PERIOD`; bcc and fcc elements only), each
    with ``info["group"]`` set to its kind.  Kinds a crystal cannot have are left out of the
    cycle.

    Parameters
    ----------
    formula : str
        An element or a binary compound AB.
    phase : str
        Its crystal (:func:`crystal_state`).
    volume : float
        Volume per atom, Å³.
    n : int
    seed : int, default=0
    kinds : sequence of str, default=NEAR_KINDS
    """
    from ase.build import surface

    from potforge.properties.structures import bulk_phase, guess_lattice

    unknown = [k for k in kinds if k not in NEAR_KINDS]
    if unknown or not kinds:
        raise DataError(f"near-equilibrium kinds {list(kinds)!r}: choose from {NEAR_KINDS}")
    a0, coa = guess_lattice(formula, phase)
    cell = bulk_phase(formula, phase, a0, coa, cubic=phase != "hcp")
    cell.set_cell(cell.cell * (volume * len(cell) / cell.get_volume()) ** (1 / 3), scale_atoms=True)
    rng = np.random.default_rng(seed)
    impossible = {"surface_110"} if phase == "hcp" else set()
    if phase not in FAULT_PLANE:
        impossible.add("fault")
    cycle = [k for k in _CYCLE if k in kinds and k not in impossible]
    if not cycle:
        raise DataError(
            f"near-equilibrium kinds {list(kinds)!r}: a {phase} {formula} has none of them"
            f" (it has no {' or '.join(sorted(impossible))})"
        )
    out: list[Atoms] = []
    for k in range(n):
        kind = cycle[k % len(cycle)]
        if kind == "strained":
            a = cell.copy()
            eps = rng.uniform(-0.03, 0.03, (3, 3))
            a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        elif kind == "surface_110":
            a = surface(cell, (1, 1, 0), 4, vacuum=6.0)
            a.rattle(0.03, seed=int(rng.integers(1 << 30)))
        elif kind == "fault":
            a = _fault_slab(formula, phase, float(cell.cell[0, 0]), float(rng.uniform()))
            a.rattle(0.03, seed=int(rng.integers(1 << 30)))
        else:
            a = cell.repeat(2)
            if kind == "vacancy":
                del a[0]
            else:
                a.set_cell(a.cell * rng.uniform(0.98, 1.02) ** (1 / 3), scale_atoms=True)
            a.rattle(rng.uniform(0.03, 0.15), seed=int(rng.integers(1 << 30)))
        a.info["group"] = kind
        out.append(a)
    return out


def _fault_slab(element: str, phase: str, a0: float, fraction: float) -> Atoms:
    """The usf slab of the property suite (:func:`~potforge.properties.stacking.fault_geometry`
    of :data:`FAULT_PLANE`, 12 Å: six planes of W, 6 Å vacuum), its upper half slipped by
    ``fraction`` of the shift range (unrelaxed)."""
    from potforge.properties.stacking import fault_geometry
    from potforge.properties.structures import GSF_PERIOD

    plane = FAULT_PLANE[phase]
    atoms, upper = fault_geometry(element, phase, a0, plane, thickness=12.0, vacuum=6.0)
    xhat = atoms.cell[0] / np.linalg.norm(atoms.cell[0])
    atoms.positions[upper] += fraction * GSF_PERIOD[(phase, plane)] * a0 * xhat
    atoms.wrap()
    return atoms


def elemental_references(
    elements: Sequence[str], references: dict[str, str] | None = None, n: int = 5, seed: int = 0
) -> list[Atoms]:
    """Unlabelled structures of each element's own reference state — what a compound's
    formation energy is measured from: ``n`` strained cells of a bulk reference, or the dimer of
    :func:`potforge.properties.compounds.reference_lattice` ("diatom" → "dimer") in its periodic
    box at ``n`` bond lengths from 0.9 to 1.1 × ASE's, each with ``info["group"]`` "reference".
    """
    from ase.data import atomic_numbers, covalent_radii, reference_states

    from potforge.properties.compounds import DIMER_BOX, reference_lattice

    out: list[Atoms] = []
    for el in elements:
        lattice = reference_lattice(el, references)
        if lattice == "dimer":
            ref: dict[str, Any] = reference_states[atomic_numbers[el]] or {}
            bond = float(ref.get("d", 2.0 * covalent_radii[atomic_numbers[el]]))
            centre = np.full(3, DIMER_BOX / 2)
            for f in np.linspace(0.9, 1.1, n):
                half = [f * bond / 2, 0.0, 0.0]
                out.append(
                    Atoms(
                        el * 2,
                        positions=[centre - half, centre + half],
                        cell=[DIMER_BOX] * 3,
                        pbc=True,
                    )  # fmt: skip
                )
        else:
            _, v, _ = crystal_state(el, lattice)
            out += near_equilibrium(el, lattice, v, n, seed, kinds=("strained",))
    for a in out:
        a.info["group"] = "reference"
    return out
