"""Per-atom descriptors for entropy-maximising generation, and the fixed space they are compared in.

Two descriptors are offered:

* :class:`SnapDescriptor` (default): the SNAP bispectrum of each atom, computed by LAMMPS
  ``compute snap ... bikflag 1`` with the settings of :class:`potforge.terms.snap.SNAP`
  (``bzeroflag 0``, linear), so the per-atom rows summed over the atoms of a structure are that
  term's energy row.  With ``dgradflag 1`` LAMMPS also returns every per-pair derivative
  ∂B_i/∂r_j (dense in N × 3N), which the generator chains with the entropy gradient.
* :class:`QuestsDescriptor`: the QUESTS descriptor (sorted neighbour distances and their
  pairwise distances, ``quests.descriptor.get_descriptors``), species-blind and without a
  gradient: it can measure and compress a data set, not drive the generator.

Several elements (SNAP): the descriptor of an atom is the block of *its* element in a vector of
``n_elements`` blocks of ``n_bispectrum(2J)`` components, the other blocks zero — the layout of
``compute snap`` and of the SNAP term's design rows.  Atoms of different elements therefore never
look alike; the elements of the neighbours enter only through their weights ``wj`` and radii
(LAMMPS without ``chemflag``).

:class:`DescriptorSpace` is the fixed linear map (centring, scaling and Cholesky whitening fitted
once on a reference set) and the kernel bandwidth in which entropies are measured; it is saved as
a JSON-ready dict so that a resumed generation measures in the same space.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from potforge.engines.lammps import (
    compute_snap,
    lammps_frame,
    new_lammps,
    setup_structure,
    to_ase_vectors,
    to_ase_voigt,
)
from potforge.errors import DataError, EngineError
from potforge.generate.entropy import silverman_bandwidth
from potforge.terms.snap import n_bispectrum

MAX_GRADIENT_ATOMS = 256
"""Largest structure whose per-pair descriptor gradient is computed: LAMMPS returns it dense,
3·N² rows of ``3 + n_bispectrum`` numbers (≈ 50 MB at 256 atoms and 2J = 6) — generator cells
hold at most a few hundred atoms."""

_LOCAL = threading.local()


def _instance():
    """One LAMMPS instance per thread, cleared before each structure (as the SNAP term does)."""
    lmp = getattr(_LOCAL, "lmp", None)
    if lmp is None:
        lmp = _LOCAL.lmp = new_lammps()
    return lmp


def _check_elements(elements: Sequence[str]) -> tuple[str, ...]:
    els = tuple(str(e) for e in elements)
    if not els:
        raise DataError("elements must name at least one chemical element, got none")
    for e in els:
        if e not in chemical_symbols[1:]:
            raise DataError(f"elements holds {e!r}, which is not a chemical symbol such as 'W'")
    if len(set(els)) != len(els):
        raise DataError(f"elements must not repeat a symbol, got {list(els)}")
    return els


def _check_per_element(name: str, mapping: dict[str, float] | None, elements: tuple[str, ...]):
    out = {str(k): float(v) for k, v in (mapping or {}).items()}
    for key, value in out.items():
        if key not in elements:
            raise DataError(
                f"{name} has a value for {key!r}, which is not one of the elements {list(elements)}"
            )
        if not (np.isfinite(value) and value > 0):
            raise DataError(f"{name}[{key!r}] must be a finite number > 0, got {value!r}")
    return out


@dataclass(frozen=True, eq=True)
class SnapDescriptor:
    """SNAP bispectrum of each atom (LAMMPS ``compute snap``, ``bikflag 1``).

    Parameters
    ----------
    elements : sequence of str
        Element of each block, in order (LAMMPS types 1, 2, ...); every atom's symbol must be one.
    twojmax : int, default=6
        Band limit 2J ≥ 0; ``n_bispectrum(twojmax)`` components per element (30 at 2J = 6).
    rcutfac : float, default=4.6
        Cutoff scale, Å, in (0, 20]; the pair cutoff is ``rcutfac * (R_i + R_j)``.
    rfac0 : float, default=0.99363
        Angular mapping factor, in (0, 1].
    rmin0 : float, default=0.0
        Inner radial offset, Å, ≥ 0.
    radii : dict of str to float, optional
        Per-element R > 0 (default 0.5: the cutoff is ``rcutfac``).
    wj : dict of str to float, optional
        Per-element neighbour weights > 0 (default 1.0).

    Attributes
    ----------
    dimension : int
        Length D of one descriptor, ``len(elements) * n_bispectrum(twojmax)``.
    """

    elements: tuple[str, ...]
    twojmax: int = 6
    rcutfac: float = 4.6
    rfac0: float = 0.99363
    rmin0: float = 0.0
    radii: dict[str, float] = field(default_factory=dict)
    wj: dict[str, float] = field(default_factory=dict)

    kind = "snap"
    has_gradient = True

    def __post_init__(self) -> None:
        els = _check_elements(self.elements)
        object.__setattr__(self, "elements", els)
        if isinstance(self.twojmax, bool) or int(self.twojmax) != self.twojmax or self.twojmax < 0:
            raise DataError(f"twojmax must be an integer ≥ 0, got {self.twojmax!r}")
        object.__setattr__(self, "twojmax", int(self.twojmax))
        if not (np.isfinite(self.rcutfac) and 0 < self.rcutfac <= 20.0):
            raise DataError(f"rcutfac must be in (0, 20] Å, got {self.rcutfac!r}")
        if not (np.isfinite(self.rfac0) and 0 < self.rfac0 <= 1):
            raise DataError(f"rfac0 must be in (0, 1], got {self.rfac0!r}")
        object.__setattr__(self, "radii", _check_per_element("radii", self.radii, els))
        object.__setattr__(self, "wj", _check_per_element("wj", self.wj, els))
        smallest = 2.0 * self.rcutfac * min(self.radii.get(e, 0.5) for e in els)
        if not (np.isfinite(self.rmin0) and 0 <= self.rmin0 < smallest):
            raise DataError(
                f"rmin0 must be ≥ 0 and below the smallest pair cutoff {smallest:g} Å, "
                f"got {self.rmin0!r}"
            )

    @property
    def n_per_element(self) -> int:
        """Bispectrum components per element block."""
        return n_bispectrum(self.twojmax)

    @property
    def dimension(self) -> int:
        """Length D of one descriptor (all element blocks)."""
        return len(self.elements) * self.n_per_element

    @property
    def cutoff(self) -> float:
        """Largest pair cutoff, Å."""
        return 2.0 * self.rcutfac * max(self.radii.get(e, 0.5) for e in self.elements)

    def _compute_args(self) -> str:
        radii = " ".join(repr(self.radii.get(e, 0.5)) for e in self.elements)
        weights = " ".join(repr(self.wj.get(e, 1.0)) for e in self.elements)
        return (
            f"{self.rcutfac!r} {self.rfac0!r} {self.twojmax} {radii} {weights} "
            f"rmin0 {self.rmin0!r} bzeroflag 0 quadraticflag 0 bikflag 1"
        )

    def _run(self, atoms: Atoms, gradient: bool):
        lmp = _instance()
        lmp.command("clear")
        frame = setup_structure(lmp, atoms, self.elements)
        flags = " dgradflag 1" if gradient else ""
        args = self._compute_args() + flags
        return frame, compute_snap(lmp, self.cutoff, args, atoms.get_chemical_formula())

    def compute(self, atoms: Atoms) -> np.ndarray:
        """Per-atom bispectrum of ``atoms``.

        Parameters
        ----------
        atoms : ase.Atoms
            Structure whose symbols are all in ``elements``; three non-degenerate cell vectors.

        Returns
        -------
        ndarray, shape (N, D)
            Row i is B_i in the block of atom i's element (zeros elsewhere); dimensionless.
        """
        n = len(atoms)
        if n == 0:
            return np.zeros((0, self.dimension))
        _, arr = self._run(atoms, gradient=False)
        # rows: N per-atom B, 3N force rows, 6 virial rows; last column: reference pair style
        if arr.shape != (4 * n + 6, self.dimension + 1):
            raise EngineError(
                f"compute snap returned shape {arr.shape}, expected ({4 * n + 6}, "
                f"{self.dimension + 1})"
            )
        out = arr[:n, :-1].copy()
        if not np.all(np.isfinite(out)):
            raise EngineError(
                f"compute snap returned non-finite descriptors for {atoms.get_chemical_formula()}"
            )
        return out

    def compute_gradient(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom bispectrum and its derivative with respect to every atom's position.

        Dense in N × 3N (LAMMPS ``dgradflag 1``): refused above :data:`MAX_GRADIENT_ATOMS` atoms.

        Parameters
        ----------
        atoms : ase.Atoms
            Structure whose symbols are all in ``elements``.

        Returns
        -------
        B : ndarray, shape (N, D)
            As :meth:`compute`.
        dB : ndarray, shape (N, D, N, 3)
            ``dB[i, k, j, a] = ∂B_ik / ∂r_ja`` in the ASE frame, 1/Å (zero outside atom i's
            element block).
        """
        n = len(atoms)
        if n > MAX_GRADIENT_ATOMS:
            raise DataError(
                f"descriptor gradients are dense in N × 3N and limited to {MAX_GRADIENT_ATOMS} "
                f"atoms, got a structure of {n} atoms"
            )
        nb = self.n_per_element
        if n == 0:
            return np.zeros((0, self.dimension)), np.zeros((0, self.dimension, 0, 3))
        frame, arr = self._run(atoms, gradient=True)
        # rows: N per-atom B_i, then 3N² rows (i, j, α, −∂B_i/∂r_jα), then one reference row;
        # columns are one element-agnostic block of nb components after the three indices.
        if arr.shape != (n + 3 * n * n + 1, 3 + nb):
            raise EngineError(
                f"compute snap (dgradflag 1) returned shape {arr.shape}, expected "
                f"({n + 3 * n * n + 1}, {3 + nb})"
            )
        rows = arr[n : n + 3 * n * n]
        idx = rows[:, :3].astype(np.intp)
        g = np.zeros((n, n, 3, nb))
        g[idx[:, 0], idx[:, 1], idx[:, 2]] = -rows[:, 3:]
        g = to_ase_vectors(frame, g.transpose(0, 1, 3, 2))  # (i, j, k, α) in ASE's frame
        block = self._blocks(atoms)
        B = np.zeros((n, self.dimension))
        dB = np.zeros((n, self.dimension, n, 3))
        for b in range(len(self.elements)):
            sel = np.flatnonzero(block == b)
            cols = slice(b * nb, (b + 1) * nb)
            B[sel, cols] = arr[sel, 3:]
            dB[sel, cols] = g[sel].transpose(0, 2, 1, 3)
        if not (np.all(np.isfinite(B)) and np.all(np.isfinite(dB))):
            raise EngineError(
                f"compute snap returned non-finite descriptors or gradients for "
                f"{atoms.get_chemical_formula()}"
            )
        return B, dB

    def compute_strain_gradient(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-atom bispectrum, its position derivative and its homogeneous-strain derivative.

        One LAMMPS ``compute snap`` in which every atom is its own LAMMPS type (with its
        element's radius and weight, so the bispectrum is unchanged): the per-type sums of the
        force and virial rows are then per-atom, giving ``∂B_i/∂r_j`` and each atom's own
        virial ``Σ_j (r_j − r_i) ⊗ ∂B_i/∂r_j`` (periodic images resolved, which the
        ``dgradflag`` rows of :meth:`compute_gradient` are not).  Dense in N × 3N, limited to
        :data:`MAX_GRADIENT_ATOMS` atoms.

        Parameters
        ----------
        atoms : ase.Atoms
            Structure whose symbols are all in ``elements``; three non-degenerate cell vectors.

        Returns
        -------
        B : ndarray, shape (N, D)
            As :meth:`compute`.
        dB : ndarray, shape (N, D, N, 3)
            As :meth:`compute_gradient`, 1/Å.
        dB_strain : ndarray, shape (N, D, 3, 3)
            ``dB_strain[i, k, a, b] = ∂B_ik/∂ε_ab`` at ε = 0 for the deformation of positions
            and cell ``x → x (I + ε)`` (ASE's row-vector frame; ε need not be symmetric);
            symmetric in ``a, b`` (B is rotation invariant); dimensionless.
        """
        n = len(atoms)
        if n > MAX_GRADIENT_ATOMS:
            raise DataError(
                f"descriptor gradients are dense in N × 3N and limited to {MAX_GRADIENT_ATOMS} "
                f"atoms, got a structure of {n} atoms"
            )
        nb, d = self.n_per_element, self.dimension
        if n == 0:
            return np.zeros((0, d)), np.zeros((0, d, 0, 3)), np.zeros((0, d, 3, 3))
        block = self._blocks(atoms)
        symbols = atoms.get_chemical_symbols()
        frame = lammps_frame(atoms)
        xhi, yhi, zhi, xy, xz, yz = frame.box
        bnd = " ".join("p" if p else "s" for p in atoms.pbc)
        radii = " ".join(repr(self.radii.get(e, 0.5)) for e in symbols)
        weights = " ".join(repr(self.wj.get(e, 1.0)) for e in symbols)
        args = (
            f"{self.rcutfac!r} {self.rfac0!r} {self.twojmax} {radii} {weights} "
            f"rmin0 {self.rmin0!r} bzeroflag 0 quadraticflag 0 bikflag 1"
        )
        lmp = _instance()
        lmp.command("clear")
        try:
            lmp.commands_list(
                [
                    "units metal",
                    "atom_style atomic",
                    "atom_modify map array sort 0 0.0",
                    f"boundary {bnd}",
                    f"region cell prism 0 {xhi!r} 0 {yhi!r} 0 {zhi!r} {xy!r} {xz!r} {yz!r} "
                    "units box",
                    f"create_box {n} cell",
                    *(
                        f"mass {t + 1} {float(atomic_masses[atomic_numbers[e]])!r}"
                        for t, e in enumerate(symbols)
                    ),
                ]
            )
            ids = list(range(1, n + 1))
            if lmp.create_atoms(n, ids, ids, frame.positions.ravel().tolist()) != n:
                raise EngineError(f"LAMMPS did not accept the {n} atoms")
        except Exception as exc:
            raise EngineError(
                f"LAMMPS compute snap failed on {atoms.get_chemical_formula()}: {exc}"
            ) from exc
        arr = compute_snap(lmp, self.cutoff, args, atoms.get_chemical_formula())
        # rows: N per-atom B, 3N force rows (j, α), 6 virial rows (xx, yy, zz, yz, xz, xy);
        # columns: one block of nb per LAMMPS type (= atom), then the reference pair style
        if arr.shape != (4 * n + 6, n * nb + 1):
            raise EngineError(
                f"compute snap returned shape {arr.shape}, expected ({4 * n + 6}, {n * nb + 1})"
            )
        own = arr[:n, :-1].reshape(n, n, nb)[np.arange(n), np.arange(n)]  # (i, k)
        force = arr[n : 4 * n, :-1].reshape(n, 3, n, nb)  # (j, α, i, k): −∂B_ik/∂r_jα
        g = -to_ase_vectors(frame, force.transpose(2, 3, 0, 1))  # (i, k, j, α), ASE frame
        vir = arr[4 * n : 4 * n + 6, :-1][[0, 1, 2, 5, 4, 3]]  # LAMMPS order xx yy zz xy xz yz
        voigt = -to_ase_voigt(frame, vir)  # (6, n·nb), ASE Voigt (xx, yy, zz, yz, xz, xy)
        full = np.empty((3, 3, n * nb))
        for c, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
            full[a, b] = full[b, a] = voigt[c]
        t = full.reshape(3, 3, n, nb).transpose(2, 3, 0, 1)  # (i, k, a, b)
        B = np.zeros((n, d))
        dB = np.zeros((n, d, n, 3))
        dS = np.zeros((n, d, 3, 3))
        for e in range(len(self.elements)):
            sel = np.flatnonzero(block == e)
            cols = slice(e * nb, (e + 1) * nb)
            B[sel, cols] = own[sel]
            dB[sel, cols] = g[sel]
            dS[sel, cols] = t[sel]
        if not (np.all(np.isfinite(B)) and np.all(np.isfinite(dB)) and np.all(np.isfinite(dS))):
            raise EngineError(
                f"compute snap returned non-finite descriptors or gradients for "
                f"{atoms.get_chemical_formula()}"
            )
        return B, dB, dS

    def _blocks(self, atoms: Atoms) -> np.ndarray:
        index = {e: i for i, e in enumerate(self.elements)}
        try:
            return np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.intp)
        except KeyError as exc:
            raise DataError(
                f"structure {atoms.get_chemical_formula()} contains element {exc.args[0]}, "
                f"which is not one of the descriptor's elements {list(self.elements)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (:func:`descriptor_from_dict` rebuilds the descriptor)."""
        return {
            "kind": self.kind,
            "elements": list(self.elements),
            "twojmax": self.twojmax,
            "rcutfac": self.rcutfac,
            "rfac0": self.rfac0,
            "rmin0": self.rmin0,
            "radii": dict(self.radii),
            "wj": dict(self.wj),
        }


@dataclass(frozen=True, eq=True)
class QuestsDescriptor:
    """QUESTS descriptor of each atom (``quests.descriptor.get_descriptors``), no gradient.

    Species-blind: the element of an atom and of its neighbours is ignored.

    Parameters
    ----------
    k : int, default=32
        Number of nearest neighbours, ≥ 2; the descriptor has ``2k − 1`` components.
    cutoff : float, default=5.0
        Cutoff of the neighbour weight function, Å, > 0.
    """

    k: int = 32
    cutoff: float = 5.0

    kind = "quests"
    has_gradient = False

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or int(self.k) != self.k or self.k < 2:
            raise DataError(f"QUESTS k must be an integer ≥ 2, got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))
        if not (np.isfinite(self.cutoff) and self.cutoff > 0):
            raise DataError(f"QUESTS cutoff must be a finite number > 0 Å, got {self.cutoff!r}")

    @property
    def dimension(self) -> int:
        """Length D = 2k − 1 of one descriptor."""
        return 2 * self.k - 1

    def compute(self, atoms: Atoms) -> np.ndarray:
        """Per-atom QUESTS descriptors, shape (N, 2k − 1) (distances in Å⁻¹-like weights)."""
        import warnings

        from quests.descriptor import get_descriptors

        if len(atoms) == 0:
            return np.zeros((0, self.dimension))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba's unsafe-cast warning inside quests
            x = np.asarray(get_descriptors([atoms], k=self.k, cutoff=self.cutoff), dtype=float)
        return x.reshape(len(atoms), -1)

    def compute_gradient(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        """Not available: raises :class:`DataError` (QUESTS gives no position derivatives)."""
        raise DataError(
            "the QUESTS descriptor has no position gradient; generate with a SnapDescriptor"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (:func:`descriptor_from_dict` rebuilds the descriptor)."""
        return {"kind": self.kind, "k": self.k, "cutoff": self.cutoff}


Descriptor = SnapDescriptor | QuestsDescriptor


def descriptor_from_dict(data: dict[str, Any]) -> Descriptor:
    """Rebuild a descriptor from the ``to_dict`` of :class:`SnapDescriptor` or
    :class:`QuestsDescriptor`."""
    settings = dict(data)
    kind = settings.pop("kind", None)
    if kind == "snap":
        settings["elements"] = tuple(settings.get("elements", ()))
        return SnapDescriptor(**settings)
    if kind == "quests":
        return QuestsDescriptor(**settings)
    raise DataError(f"descriptor kind must be 'snap' or 'quests', got {kind!r}")


def snap_descriptors(
    atoms: Atoms,
    *,
    elements: Sequence[str] | None = None,
    twojmax: int = 6,
    rcutfac: float = 4.6,
    rfac0: float = 0.99363,
    rmin0: float = 0.0,
    radii: dict[str, float] | None = None,
    wj: dict[str, float] | None = None,
    gradient: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-atom SNAP bispectrum of one structure (and its position gradient).

    Parameters
    ----------
    atoms : ase.Atoms
        The structure.
    elements : sequence of str, optional
        Element blocks in order; default: the elements of ``atoms`` by atomic number.
    twojmax, rcutfac, rfac0, rmin0, radii, wj
        As :class:`SnapDescriptor` (defaults 6, 4.6 Å, 0.99363, 0 Å, 0.5, 1.0).
    gradient : bool, default=False
        Also return ∂B/∂r (dense; at most :data:`MAX_GRADIENT_ATOMS` atoms).

    Returns
    -------
    B : ndarray, shape (N, D)
        D = ``len(elements) * n_bispectrum(twojmax)``; atom i's values in its element's block.
    dB : ndarray, shape (N, D, N, 3)
        Only with ``gradient``: ``dB[i, k, j, a] = ∂B_ik/∂r_ja``, 1/Å, ASE frame.
    """
    if elements is None:
        elements = sorted(set(atoms.get_chemical_symbols()), key=chemical_symbols.index)
    desc = SnapDescriptor(
        tuple(elements), twojmax, rcutfac, rfac0, rmin0, dict(radii or {}), dict(wj or {})
    )
    return desc.compute_gradient(atoms) if gradient else desc.compute(atoms)


def quests_descriptors(atoms: Atoms, *, k: int = 32, cutoff: float = 5.0) -> np.ndarray:
    """Per-atom QUESTS descriptors of one structure, shape (N, 2k − 1); no gradient exists."""
    return QuestsDescriptor(k, cutoff).compute(atoms)


def descriptor_matrix(structures: Iterable[Atoms], descriptor: Descriptor) -> np.ndarray:
    """Per-atom descriptors of several structures stacked, shape (Σ N_s, D)."""
    parts = [descriptor.compute(a) for a in structures]
    if not parts:
        return np.zeros((0, descriptor.dimension))
    return np.concatenate(parts, axis=0)


def _median_nearest(z: np.ndarray, block: int = 1024) -> float:
    """Median over rows of the distance to the nearest other row (exact, in row blocks)."""
    sq = np.einsum("ij,ij->i", z, z)
    nearest = np.empty(z.shape[0])
    for start in range(0, z.shape[0], block):
        part = z[start : start + block]
        d2 = sq[start : start + block, None] + sq[None, :] - 2.0 * part @ z.T
        rows = np.arange(part.shape[0])
        d2[rows, start + rows] = np.inf
        nearest[start : start + block] = d2.min(axis=1)
    return float(np.median(np.sqrt(np.maximum(nearest, 0.0))))


@dataclass(frozen=True, eq=False)
class DescriptorSpace:
    """A fixed whitening of descriptors and the kernel bandwidth used in it.

    ``z = (b[keep] − mean) @ transform``: columns that are constant on the reference set (spread
    at most ``tol`` × their magnitude) are dropped, the rest scaled to unit variance and
    decorrelated by the Cholesky factor of their correlation matrix with ``floor`` added to its
    diagonal (the floor caps the amplification of nearly collinear directions at
    ``1/sqrt(floor)``).  Build it with :meth:`fit`; it never changes afterwards.

    Attributes
    ----------
    descriptor : SnapDescriptor or QuestsDescriptor
        What produces the descriptors b (D,).
    keep : ndarray of int, shape (d,)
        Columns of b that are kept.
    mean : ndarray, shape (d,)
        Reference mean of the kept columns.
    transform : ndarray, shape (d, d)
        Whitening map (upper triangular times a diagonal scaling).
    bandwidth : float
        Kernel bandwidth h in the whitened space (Silverman's rule for the reference size
        unless another rule or a number was given).
    n_reference : int
        Number of environments the space was fitted on.
    """

    descriptor: Descriptor
    keep: np.ndarray
    mean: np.ndarray
    transform: np.ndarray
    bandwidth: float
    n_reference: int

    @classmethod
    def fit(
        cls,
        reference: np.ndarray,
        descriptor: Descriptor,
        *,
        bandwidth: float | str = "silverman",
        floor: float = 1e-4,
        tol: float = 1e-9,
    ) -> DescriptorSpace:
        """Fit the whitening on reference environments.

        Parameters
        ----------
        reference : ndarray, shape (M, D)
            Descriptors of M ≥ 2 reference environments (e.g. :func:`descriptor_matrix`).
        descriptor : SnapDescriptor or QuestsDescriptor
            The descriptor that produced them (D must match).
        bandwidth : float or {"silverman", "nearest"}, default="silverman"
            Kernel bandwidth h > 0 in the whitened space, or a rule: ``"silverman"``,
            ``(4/(d+2))^(1/(d+4)) M^(−1/(d+4))`` (≈ 0.7–0.8 for d = 14–30); ``"nearest"``, the
            median distance from each reference environment to its nearest other one (O(M² d)
            work).  In d ≳ 10 whitened dimensions the nearest neighbours lie several Silverman
            bandwidths apart (≈ 2.5 at d = 14 and ≈ 4.8 at d = 30 for random W cells), so the
            kernels barely overlap, the entropy is close to ``ln N`` and its gradient small;
            ``"nearest"`` keeps neighbouring kernels overlapping.
        floor : float, default=1e-4
            Added to the diagonal of the correlation matrix, ≥ 0.
        tol : float, default=1e-9
            A column whose spread (standard deviation) is at most ``tol`` × its largest
            magnitude counts as constant and is dropped, in [0, 1) (round-off in LAMMPS is
            ~1e-14 relative).

        Returns
        -------
        DescriptorSpace
        """
        x = np.asarray(reference, dtype=float)
        if x.ndim != 2 or x.shape[1] != descriptor.dimension:
            raise DataError(
                f"reference must have shape (M, {descriptor.dimension}) for this descriptor, "
                f"got {x.shape}"
            )
        if x.shape[0] < 2:
            raise DataError(
                f"reference must hold at least 2 environments to fit a space, got {x.shape[0]}"
            )
        if not np.all(np.isfinite(x)):
            raise DataError("reference holds non-finite descriptors (NaN or inf)")
        if not (np.isfinite(floor) and floor >= 0):
            raise DataError(f"floor must be a finite number ≥ 0, got {floor!r}")
        if not (0 <= tol < 1):
            raise DataError(f"tol must be in [0, 1), got {tol!r}")
        spread = x.std(axis=0)
        keep = np.flatnonzero(spread > tol * np.abs(x).max(axis=0))
        if keep.size == 0:
            raise DataError(
                f"every descriptor component has zero variance over the {x.shape[0]} reference "
                "environments (all alike); fit the space on a set of different environments"
            )
        xk = x[:, keep]
        mean = xk.mean(axis=0)
        scale = xk.std(axis=0)
        corr = np.atleast_2d(np.corrcoef(xk, rowvar=False))
        corr = 0.5 * (corr + corr.T) + floor * np.eye(keep.size)
        try:
            chol = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:
            raise DataError(
                "the reference descriptors' correlation matrix is not positive definite; "
                "raise floor above 0"
            ) from None
        # z = ((b − μ)/s) L⁻ᵀ  ⇒  cov(z) = L⁻¹ R L⁻ᵀ ≈ I
        transform = np.linalg.solve(chol, np.diag(1.0 / scale)).T
        d = int(keep.size)
        if isinstance(bandwidth, str):
            if bandwidth == "silverman":
                h = silverman_bandwidth(x.shape[0], d)
            elif bandwidth == "nearest":
                h = _median_nearest((xk - mean) @ transform)
                if h <= 0:
                    raise DataError(
                        "the reference environments coincide with their nearest neighbours "
                        "(median distance 0), so the 'nearest' bandwidth rule gives 0; give a "
                        "number or use 'silverman'"
                    )
            else:
                raise DataError(
                    f"bandwidth must be a number > 0, 'silverman' or 'nearest', got {bandwidth!r}"
                )
        else:
            h = float(bandwidth)
            if not (np.isfinite(h) and h > 0):
                raise DataError(f"bandwidth must be a finite number > 0, got {bandwidth!r}")
        return cls(descriptor, keep.astype(np.intp), mean, transform, h, int(x.shape[0]))

    @property
    def dimension(self) -> int:
        """Dimension d of the whitened space."""
        return int(self.keep.size)

    def transform_descriptors(self, b: np.ndarray) -> np.ndarray:
        """Whitened descriptors: (M, D) → (M, d)."""
        b = np.asarray(b, dtype=float)
        if b.ndim != 2 or b.shape[1] != self.descriptor.dimension:
            raise DataError(
                f"descriptors must have shape (M, {self.descriptor.dimension}), got {b.shape}"
            )
        return (b[:, self.keep] - self.mean) @ self.transform

    def transform_gradient(self, db: np.ndarray) -> np.ndarray:
        """Whitened descriptor gradient: (N, D, N, 3) → (N, d, N, 3) (the map is linear)."""
        return np.einsum("ikja,kl->ilja", db[:, self.keep], self.transform, optimize=True)

    def pull_back(self, dz: np.ndarray) -> np.ndarray:
        """A gradient with respect to whitened descriptors (M, d) as one w.r.t. b (M, D)."""
        out = np.zeros((dz.shape[0], self.descriptor.dimension))
        out[:, self.keep] = dz @ self.transform.T
        return out

    def environments(self, structures: Iterable[Atoms]) -> np.ndarray:
        """Whitened descriptors of every atom of ``structures``, shape (Σ N_s, d)."""
        return self.transform_descriptors(descriptor_matrix(structures, self.descriptor))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists and numbers); :meth:`from_dict` restores it exactly."""
        return {
            "descriptor": self.descriptor.to_dict(),
            "keep": self.keep.tolist(),
            "mean": self.mean.tolist(),
            "transform": self.transform.tolist(),
            "bandwidth": self.bandwidth,
            "n_reference": self.n_reference,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescriptorSpace:
        """Rebuild a space from :meth:`to_dict` output."""
        try:
            descriptor = descriptor_from_dict(data["descriptor"])
            keep = np.asarray(data["keep"], dtype=np.intp)
            mean = np.asarray(data["mean"], dtype=float)
            transform = np.asarray(data["transform"], dtype=float).reshape(keep.size, keep.size)
            bandwidth = float(data["bandwidth"])
            n_ref = int(data["n_reference"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"a saved descriptor space is malformed: {exc}") from None
        if mean.shape != keep.shape or (keep.size and keep.max() >= descriptor.dimension):
            raise DataError(
                f"a saved descriptor space does not match its descriptor of dimension "
                f"{descriptor.dimension}"
            )
        return cls(descriptor, keep, mean, transform, bandwidth, n_ref)


__all__ = [
    "MAX_GRADIENT_ATOMS",
    "Descriptor",
    "DescriptorSpace",
    "QuestsDescriptor",
    "SnapDescriptor",
    "descriptor_from_dict",
    "descriptor_matrix",
    "quests_descriptors",
    "snap_descriptors",
]
