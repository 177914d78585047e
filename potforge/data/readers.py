"""Readers: extxyz (and anything ``ase.io`` reads), ASE databases, mlearn/maml JSON.

Every reader returns ``list[ase.Atoms]`` with labels attached as in
:mod:`potforge.data.structures` (eV, eV/Å, eV/Å³ in ASE sign and Voigt order), a group label
in ``atoms.info["group"]`` and the file in ``atoms.info["source"]``.

The shear order of mlearn/maml stresses
---------------------------------------
mlearn/maml JSON files store a VASP stress as six numbers whose last three (the shear
components) come in an order that differs between files of the same repository: mlearn's Mo
file uses xy zx yz, its other elements and maml's files VASP's xy yz zx.  A wrong guess swaps
two shear stresses silently, so the reader decides the order of each file from the file's own
sheared cells (:func:`detect_stress_order`), or takes it from ``stress_order=``
(:data:`STRESS_ORDERS`, or three shear names such as ``"xy,zx,yz"``), and records what it used
in ``atoms.info["stress_order"]`` / ``atoms.info["stress_order_from"]``
(:func:`stress_orders` lists them per file).
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.units import GPa

from potforge.data.structures import attach_labels, check_labels, check_structure, labels
from potforge.errors import DataError

KBAR = 0.1 * GPa
"""One kilobar in eV/Å³."""

VASP_TO_ASE_VOIGT = (0, 1, 2, 4, 5, 3)
"""Index into VASP's (xx, yy, zz, xy, yz, zx) giving ASE's (xx, yy, zz, yz, xz, xy)."""

MLEARN_TO_ASE_VOIGT = (0, 1, 2, 5, 4, 3)
"""Index into mlearn Mo's (xx, yy, zz, xy, zx, yz) giving ASE's (xx, yy, zz, yz, xz, xy)."""

VASP_STRESS_SIGN = -1.0
"""VASP reports stress positive under compression (a pressure); ASE's is positive under tension.
Verified against the published Mo SNAP in ``tests/test_readers.py``."""

LABELS = ("energy", "forces", "stress")
"""Label names ``read_structures(require=...)`` accepts."""

SHEAR = ("yz", "zx", "xy")
"""The shear components in ASE's Voigt order (ASE writes the middle one ``xz``: the same)."""

STRESS_ORDERS: dict[str, tuple[str, str, str]] = {
    "vasp": ("xy", "yz", "zx"),
    "mlearn-mo": ("xy", "zx", "yz"),
    "voigt": ("yz", "zx", "xy"),
}
"""Named orders of the shear columns 4-6 of a six-number JSON stress (columns 1-3: xx yy zz).

``vasp``: VASP's OUTCAR/vasprun order xx yy zz xy yz zx (maml's files, mlearn's non-Mo
elements). ``mlearn-mo``: xx yy zz xy zx yz (mlearn's Mo ``virial_stress``). ``voigt``: ASE's and
the textbook Voigt order xx yy zz yz zx xy.  ``stress_order="drop"`` (:data:`DROP`) reads no
stress at all (for files whose stresses are not needed, e.g. structures to relabel)."""

DROP = "drop"
"""The ``stress_order`` that reads a file's six-number stresses not at all."""

_SHEAR_ALIASES = {"xy": "xy", "yx": "xy", "yz": "yz", "zy": "yz", "zx": "zx", "xz": "zx"}

MIN_SHEAR = 2e-3
"""Engineering shear strain (2ε) from which a cell counts as sheared for order detection."""

MAX_STRAIN = 0.15
"""Cells strained more than this from their group's reference are not elastic variants of it."""

DOMINANCE = 4.0
"""Order detection: the stress column a shear strain drives must respond this many times more
strongly than either other shear column."""

MIN_R2 = 0.5
"""Order detection: share of a chosen column's variance the fitted shear stiffness must explain."""


def vasp_kbar_to_ase(
    stress_kbar: Sequence[float] | np.ndarray, order: Sequence[int] = VASP_TO_ASE_VOIGT
) -> np.ndarray:
    """Convert a VASP stress (kbar, compression > 0) to ASE's (eV/Å³, tension > 0).

    Parameters
    ----------
    stress_kbar : sequence of float or ndarray, length 6
    order : sequence of int, length 6
        Indices into ``stress_kbar`` giving ASE's xx yy zz yz xz xy.

    Returns
    -------
    ndarray, shape (6,)
        eV/Å³, ASE Voigt order (xx yy zz yz xz xy), tension > 0.
    """
    s = np.asarray(stress_kbar, dtype=float)
    if s.shape != (6,):
        raise DataError(f"a stress needs 6 components, got {s.size}")
    return VASP_STRESS_SIGN * KBAR * s[list(order)]


# --- stress order ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StressOrder:
    """The order of the shear columns of a file's six-number stresses, and how it was chosen.

    Attributes
    ----------
    slots : tuple of str
        The shear component held by columns 4, 5 and 6, e.g. ``("xy", "zx", "yz")``; empty for
        ``stress_order="drop"`` (the stresses are not read).
    how : str
        ``"given"``, ``"detected from N sheared cells"`` or ``"not needed: ..."``.
    """

    slots: tuple[str, ...]
    how: str = "given"

    @property
    def name(self) -> str:
        """The :data:`STRESS_ORDERS` name of :attr:`slots`, or ``""``."""
        return next((k for k, v in STRESS_ORDERS.items() if v == self.slots), "")

    @property
    def text(self) -> str:
        """``"xy,zx,yz"`` (or ``"drop"``): the value stored in ``atoms.info["stress_order"]``."""
        return ",".join(self.slots) if self.slots else DROP

    @property
    def ase_index(self) -> tuple[int, ...]:
        """Indices into the six raw columns giving ASE's xx yy zz yz xz xy."""
        return (0, 1, 2, *(3 + self.slots.index(c) for c in SHEAR))

    def __str__(self) -> str:
        if not self.slots:
            return f"stresses not read (stress_order {DROP!r}), {self.how}"
        name = f" ({self.name})" if self.name else ""
        return f"xx,yy,zz,{self.text}{name}, {self.how}"


def parse_stress_order(value: str | Sequence[str] | StressOrder) -> StressOrder:
    """A :class:`StressOrder` from a name or a list of component names.

    Parameters
    ----------
    value : str or sequence of str or StressOrder
        A :data:`STRESS_ORDERS` name (``"vasp"``, ``"mlearn-mo"``, ``"voigt"``), the three
        shear components of columns 4-6 (``"xy,zx,yz"``; ``xz``/``yx``/``zy`` allowed), or all
        six (``"xx,yy,zz,xy,zx,yz"``); commas or spaces separate.  ``"drop"``: read no
        six-number stresses.

    Returns
    -------
    StressOrder
        With ``how="given"``.
    """
    if isinstance(value, StressOrder):
        return value
    allowed = (
        f"allowed: {', '.join(repr(k) for k in STRESS_ORDERS)}, the three shear components "
        f"of columns 4-6 such as 'xy,yz,zx', or {DROP!r} to read no stress"
    )
    if isinstance(value, str):
        text = value.strip().lower()
        if text in STRESS_ORDERS:
            return StressOrder(STRESS_ORDERS[text])
        if text == DROP:
            return StressOrder(())
        if text == "mlearn":
            raise DataError(
                "stress_order 'mlearn' is ambiguous: mlearn's Mo file uses 'mlearn-mo' "
                "(xy,zx,yz) and its other elements 'vasp' (xy,yz,zx)"
            )
        parts = text.replace(",", " ").split()
    elif isinstance(value, Sequence):
        parts = [str(p).strip().lower() for p in value]
    else:
        raise DataError(f"stress_order must be a string, got {type(value).__name__} ({allowed})")
    if len(parts) == 6 and parts[:3] == ["xx", "yy", "zz"]:
        parts = parts[3:]
    slots = tuple(_SHEAR_ALIASES.get(p, "?") for p in parts)
    if len(slots) != 3 or "?" in slots or len(set(slots)) != 3:
        names = [*STRESS_ORDERS, DROP]
        close = difflib.get_close_matches(str(value).strip().lower(), names, 1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(f"stress_order {value!r} is not a shear order ({allowed}){hint}")
    return StressOrder(slots)


def _small_strain(reference: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Small-strain tensors (n, 3, 3) taking ``reference`` (rows: lattice vectors) to ``cells``."""
    f_t = np.linalg.solve(reference[None], cells)  # C = C0 Fᵀ → Fᵀ = C0⁻¹ C
    return 0.5 * (f_t + f_t.transpose(0, 2, 1)) - np.eye(3)


def detect_stress_order(
    cells: Sequence[np.ndarray],
    families: Sequence[Hashable],
    raw_stress: Sequence[Sequence[float]] | np.ndarray,
    where: str = "data",
) -> StressOrder:
    """Decide which shear component each of the columns 4-6 of a VASP-sign stress holds.

    Method: the structures are grouped into families (the file's own group label and the
    composition) of at least three; each family's reference cell ``C0`` is the element-wise
    median of its cell matrices (in an elastic set most cells leave any given matrix element at
    its unstrained value, so the median is the unstrained cell whether or not the file holds
    it).  The small strain ``ε = sym(C0⁻¹ C)ᵀ - I`` of each cell (rows of ``C``: lattice
    vectors) gives engineering shear strains γ = 2ε (yz, zx, xy).  Cells strained from their
    reference by 1e-4 to :data:`MAX_STRAIN` are the family's elastic variants (cells at the
    reference itself, e.g. MD snapshots, only add noise; cells further away are other
    structures); those with ``|γ| ≥`` :data:`MIN_SHEAR` are the sheared ones.  Least squares
    over the family-centred variants fits the shear stiffness ``K`` between γ and the raw
    columns 4-6 (tension positive).  In the right order each shear strain drives one column,
    with a positive modulus (C44, C55, C66 of a mechanically stable crystal), at least
    :data:`DOMINANCE` times more strongly than the other two columns, and the fit explains at
    least :data:`MIN_R2` of that column's variance.  Each strained component so found names its
    column; two found fix the third.  Only the elastic response is used, so the decision does
    not depend on a model, and a crystal whose shear block is not diagonal-dominant (some
    low-symmetry cells) is refused rather than guessed.

    Parameters
    ----------
    cells : sequence of ndarray, shape (3, 3)
        Lattice vectors (rows), Å.
    families : sequence of hashable
        Family key of each structure (group label and composition).
    raw_stress : sequence of six floats, or ndarray, shape (n, 6)
        The file's stresses as stored (VASP sign: compression positive; any unit).
    where : str
        The file, for messages.

    Returns
    -------
    StressOrder
        ``how`` says how many sheared cells decided it.

    Raises
    ------
    DataError
        When the data cannot decide (no sheared cell, or only one shear component strained, or
        a response that does not single out one column); the message asks for ``stress_order``.
    """
    cells_a = np.asarray(cells, dtype=float).reshape(-1, 3, 3)
    stress = VASP_STRESS_SIGN * np.asarray(raw_stress, dtype=float).reshape(-1, 6)[:, 3:]
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for k, fam in enumerate(families):
        groups[fam].append(k)
    g_parts, s_parts, n_sheared = [], [], 0
    for idx in groups.values():
        if len(idx) < 3:
            continue
        ref = np.median(cells_a[idx], axis=0)
        if abs(np.linalg.det(ref)) < 1e-8:
            continue
        eps = _small_strain(ref, cells_a[idx])
        size = np.abs(eps).max(axis=(1, 2))
        ok = (size <= MAX_STRAIN) & (size >= 1e-4)  # strained variants of the reference
        gamma = 2.0 * eps[:, [1, 0, 0], [2, 2, 1]]  # yz, zx, xy
        sheared = ok & (np.abs(gamma).max(axis=1) >= MIN_SHEAR)
        if not sheared.any():
            continue
        n_sheared += int(sheared.sum())
        g, s = gamma[ok], stress[idx][ok]
        g_parts.append(g - g.mean(axis=0))
        s_parts.append(s - s.mean(axis=0))
    ask = (
        "; pass stress_order (CLI --stress-order) as 'vasp' (xx yy zz xy yz zx), 'mlearn-mo' "
        "(xx yy zz xy zx yz), 'voigt' (xx yy zz yz zx xy), three names such as 'xy,yz,zx', or "
        "'drop' to read no stress"
    )
    if not n_sheared:
        raise DataError(
            f"{where}: cannot tell the order of the shear stress columns: no cell is sheared "
            f"relative to the others of its group{ask}"
        )
    g_all, s_all = np.vstack(g_parts), np.vstack(s_parts)
    strained = [k for k in range(3) if np.abs(g_all[:, k]).max() >= MIN_SHEAR]
    g_e = g_all[:, strained]
    sv = np.linalg.svd(g_e / np.abs(g_e).max(axis=0), compute_uv=False)
    if sv.min() < 1e-3 * sv.max():
        names = " and ".join(SHEAR[k] for k in strained)
        raise DataError(
            f"{where}: cannot tell the order of the shear stress columns: the sheared cells "
            f"strain {names} only together, never apart{ask}"
        )
    stiff = np.linalg.lstsq(g_e, s_all, rcond=None)[0]  # (strained, 3 columns)
    fit = g_e @ stiff
    r2 = 1.0 - ((s_all - fit) ** 2).sum(axis=0) / np.maximum((s_all**2).sum(axis=0), 1e-300)
    found: dict[int, int] = {}  # component → column
    for row, comp in enumerate(strained):
        resp = stiff[row]
        j = int(np.argmax(np.abs(resp)))
        others = np.abs(np.delete(resp, j)).max()
        if resp[j] < 0 and abs(resp[j]) >= DOMINANCE * others:
            raise DataError(
                f"{where}: shear stress column {4 + j} falls as the {SHEAR[comp]} shear strain "
                "grows, the opposite of VASP's compression-positive sign, so the shear order "
                f"cannot be read from the data{ask}"
            )
        if resp[j] > 0 and resp[j] >= DOMINANCE * others and r2[j] >= MIN_R2:
            found[comp] = j
    columns = list(found.values())
    if len(set(columns)) != len(columns):
        raise DataError(
            f"{where}: cannot tell the order of the shear stress columns: two shear strains "
            f"drive the same column{ask}"
        )
    if len(found) == 2:
        (rest,) = set(range(3)) - set(found)
        (free,) = set(range(3)) - set(columns)
        found[rest] = free
    if len(found) < 3:
        unclear = [SHEAR[k] for k in strained if k not in found]
        if unclear:
            why = f"the {' and '.join(unclear)} shear strain drives no single column clearly"
        else:
            untold = [SHEAR[k] for k in range(3) if k not in found]
            why = (
                f"its {n_sheared} sheared cells strain only {SHEAR[strained[0]]}, so the "
                f"{' and '.join(untold)} columns cannot be told apart"
            )
        raise DataError(f"{where}: cannot tell the order of the shear stress columns: {why}{ask}")
    slots = [""] * 3
    for comp, j in found.items():
        slots[j] = SHEAR[comp]
    return StressOrder(tuple(slots), f"detected from {n_sheared} sheared cells")


def stress_orders(structures: Iterable[Atoms]) -> dict[str, str]:
    """How the shear columns of each source file were read, for printing.

    Returns
    -------
    dict of str to str
        ``atoms.info["source"]`` → e.g. ``"xx,yy,zz,xy,zx,yz (mlearn-mo), detected from 28
        sheared cells"``, for the structures whose reader recorded an order (mlearn/maml JSON).
    """
    out: dict[str, str] = {}
    for a in structures:
        text = a.info.get("stress_order")
        if text and a.info.get("source") not in out:
            slots = () if text == DROP else tuple(text.split(","))
            order = StressOrder(slots, a.info.get("stress_order_from", ""))
            out[str(a.info.get("source"))] = str(order)
    return out


# --- mlearn / maml JSON ----------------------------------------------------------------------


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a data file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        what = "a PNG image" if raw.startswith(b"\x89PNG") else "binary data"
        raise DataError(
            f"{path}: not a JSON text file (byte 0x{raw[exc.start]:02x} at offset {exc.start} "
            f"is not UTF-8; it looks like {what})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = exc.msg[:1].lower() + exc.msg[1:]
        msg = msg[: -len(" at")] if msg.endswith(" at") else msg
        end = " (the file ends early: truncated?)" if exc.pos >= len(text.rstrip()) else ""
        raise DataError(
            f"{path}: not valid JSON: {msg} at line {exc.lineno}, column {exc.colno}{end}"
        ) from None


def _field(d: Any, keys: Sequence[str | int], where: str, what: str) -> Any:
    """``d[k0][k1]...`` or a DataError naming the dotted field."""
    cur = d
    for k in keys:
        try:
            cur = cur[k]
        except (KeyError, IndexError, TypeError):
            raise DataError(f"{where}: {what} is missing") from None
    return cur


def _numbers(
    value: Any, shape: tuple[int, ...], where: str, what: str, unit: str, alt: str = ""
) -> np.ndarray:
    """``value`` as a float array of ``shape``, or one sentence naming the field."""
    want = f"{what} must be {'×'.join(str(n) for n in shape)} numbers ({unit}){alt}"
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {want}, got {_short(value)}") from None
    if arr.shape != shape or _has_text(value):
        got = "strings" if _has_text(value) else f"shape {'×'.join(map(str, arr.shape)) or '()'}"
        raise DataError(f"{where}: {want}, got {got}")
    return arr


def _has_text(value: Any) -> bool:
    if isinstance(value, str | bool):
        return True
    if isinstance(value, list | tuple):
        return any(_has_text(v) for v in value)
    return False


def _pymatgen_structure(d: Any, where: str) -> Atoms:
    if not isinstance(d, dict):
        raise DataError(f"{where}: 'structure' must be a pymatgen Structure dict, got {_short(d)}")
    cell = _numbers(
        _field(d, ("lattice", "matrix"), where, "structure.lattice.matrix"),
        (3, 3),
        where,
        "structure.lattice.matrix",
        "Å",
    )
    sites = _field(d, ("sites",), where, "structure.sites")
    if not isinstance(sites, list) or not sites:
        raise DataError(f"{where}: structure.sites must be a non-empty list, got {_short(sites)}")
    symbols, positions = [], []
    for k, site in enumerate(sites):
        name = f"structure.sites[{k}]"
        sym = _field(site, ("species", 0, "element"), where, f"{name}.species[0].element")
        if not isinstance(sym, str) or sym not in chemical_symbols[1:]:
            close = [s for s in chemical_symbols[1:] if s.lower() == str(sym).strip().lower()]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"{where}: {name} has unknown element {sym!r} (expected a chemical symbol "
                f"such as 'Mo'){hint}"
            )
        symbols.append(sym)
        if isinstance(site, dict) and "xyz" not in site and "abc" in site:
            frac = _numbers(site["abc"], (3,), where, f"{name}.abc", "fractional")
            positions.append(frac @ cell)
        else:
            xyz = _field(site, ("xyz",), where, f"{name}.xyz")
            positions.append(_numbers(xyz, (3,), where, f"{name}.xyz", "Å"))
    return Atoms(symbols=symbols, positions=np.array(positions), cell=cell, pbc=True)


def _energy(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, Real) or isinstance(value, bool):
        raise DataError(f"{where}: outputs.energy must be a number (eV), got {_short(value)}")
    return float(value)


def read_json(
    path: str | os.PathLike,
    group: str | None = None,
    stress_order: str | Sequence[str] | StressOrder | None = None,
) -> list[Atoms]:
    """Read the mlearn / maml JSON layout: a list of {structure, outputs, group, ...}.

    ``outputs.energy`` (eV, total), ``outputs.forces`` (eV/Å, one row per site), and
    ``outputs.virial_stress`` (mlearn) or ``outputs.stress`` (maml), both VASP stresses in kbar
    with compression positive: six numbers xx yy zz and three shear components in the order
    ``stress_order`` names or, by default, the order :func:`detect_stress_order` finds in the
    file's sheared cells (a 3×3 stress needs no order).  The group comes from ``group``
    (mlearn) or, for maml files whose ``group`` is only the element, from the file name
    (``Nb_Elastic.json`` → "Elastic").

    Parameters
    ----------
    path : path
    group : str, optional
        Overrides the group label of every structure.
    stress_order : str or sequence of str, optional
        Shear order of the six-number stresses (see :func:`parse_stress_order`); when given it
        is used as is (a warning says so if the file's sheared cells clearly disagree).
        ``"drop"`` reads no stress.

    Returns
    -------
    list of ase.Atoms
        With ``info["stress_order"]`` (e.g. ``"xy,zx,yz"``) and ``info["stress_order_from"]``
        on every structure when the file has six-number stresses.

    Raises
    ------
    DataError
        For an unreadable or malformed file, and when ``stress_order`` is not given and the
        file's data cannot decide the order.
    """
    path = Path(path)
    given = None if stress_order is None else parse_stress_order(stress_order)
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of structures, got {type(entries).__name__}")
    stem_group = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
    out: list[Atoms] = []
    raw: list[np.ndarray | None] = []
    families: list[tuple[str, str]] = []  # the file's own group and composition
    for i, e in enumerate(entries):
        where = f"{path} entry {i}"
        if not isinstance(e, dict):
            raise DataError(
                f"{where}: expected an object with 'structure' and 'outputs', got {_short(e)}"
            )
        if "structure" not in e:
            raise DataError(f"{where}: no 'structure' field")
        atoms = _pymatgen_structure(e["structure"], where)
        outputs = e.get("outputs")
        if outputs is None:
            outputs = {}
        if not isinstance(outputs, dict):
            raise DataError(f"{where}: 'outputs' must be an object, got {_short(outputs)}")
        key = "virial_stress" if "virial_stress" in outputs else "stress"
        stress = outputs.get(key)
        if stress is not None:
            square = isinstance(stress, list) and all(isinstance(r, list) for r in stress)
            if square:
                stress = _numbers(stress, (3, 3), where, f"outputs.{key}", "kbar")
            else:
                stress = _numbers(stress, (6,), where, f"outputs.{key}", "kbar", " or a 3×3 matrix")
        raw.append(stress)
        forces = outputs.get("forces")
        attach_labels(
            atoms,
            energy=_energy(outputs.get("energy"), where),
            forces=None
            if forces is None
            else _numbers(forces, (len(atoms), 3), where, "outputs.forces", "eV/Å"),
        )
        g = e.get("group")
        if g is None or (isinstance(g, str) and g == atoms.get_chemical_symbols()[0]):
            g = stem_group
        families.append((str(g), atoms.get_chemical_formula()))
        atoms.info.update(group=str(group or g), source=str(path), index=i)
        if e.get("description"):
            atoms.info["description"] = str(e["description"])
        out.append(atoms)
    six = [k for k, s in enumerate(raw) if s is not None and s.shape == (6,)]
    order = _file_stress_order(
        path,
        [np.array(out[k].cell) for k in six],
        [families[k] for k in six],
        np.array([raw[k] for k in six]).reshape(-1, 6),
        given,
    )
    for atoms, s in zip(out, raw, strict=True):
        if s is None:
            continue
        if not order.slots:  # stress_order="drop"
            atoms.info.update(stress_order=order.text, stress_order_from=order.how)
            continue
        if s.shape == (3, 3):
            ase_stress = VASP_STRESS_SIGN * KBAR * s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        else:
            ase_stress = vasp_kbar_to_ase(s, order.ase_index)
            atoms.info.update(stress_order=order.text, stress_order_from=order.how)
        _attach(atoms, {**labels(atoms), "stress": ase_stress})
    return out


def _attach(atoms: Atoms, lab: dict[str, np.ndarray | float]) -> None:
    """:func:`attach_labels` with what :func:`labels` returned (a float energy, array forces and
    stress; absent keys stay absent)."""
    energy, forces, stress = lab.get("energy"), lab.get("forces"), lab.get("stress")
    attach_labels(
        atoms,
        None if energy is None else float(energy),
        None if forces is None else np.asarray(forces),
        None if stress is None else np.asarray(stress),
    )


def _file_stress_order(
    path: Path,
    cells: Sequence[np.ndarray],
    families: Sequence[Hashable],
    stresses: np.ndarray,
    given: StressOrder | None,
) -> StressOrder:
    """The order used for the six-number stresses (n, 6) of one file."""
    if given is not None:
        if len(stresses) and given.slots:
            try:
                found = detect_stress_order(cells, families, stresses, str(path))
            except DataError:
                return given
            if found.slots != given.slots:
                warnings.warn(
                    f"{path}: stress_order {given.text} was given and is used, but the file's "
                    f"sheared cells say {found.text}",
                    stacklevel=4,
                )
        return given
    if not np.any(np.abs(stresses[:, 3:]) > 0):
        return StressOrder(STRESS_ORDERS["vasp"], "not needed: no shear stress is non-zero")
    return detect_stress_order(cells, families, stresses, str(path))


# --- ASE formats -----------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_ase(path: str | os.PathLike, group: str | None = None) -> list[Atoms]:
    """Read extxyz or any format ``ase.io.read`` knows (all frames); ASE databases too.

    Stresses are ASE's own (3×3 in extxyz), so no order is involved; a ``stress_order`` entry a
    previous JSON reader left in ``info`` is dropped, as it does not describe this file.
    """
    import ase.io

    path = Path(path)
    frames: Atoms | list[Atoms]  # ase.io.read gives one Atoms for a single frame
    try:
        if path.suffix == ".db":
            import ase.db

            with ase.db.connect(str(path)) as db:
                frames = [row.toatoms(add_additional_information=True) for row in db.select()]
            for a in frames:
                a.info.update(a.info.pop("key_value_pairs", {}))
        else:
            frames = ase.io.read(str(path), index=":")
    except DataError:
        raise
    except Exception as exc:  # ase.io raises many types for malformed files
        raise DataError(
            f"{path}: cannot be read as {path.suffix or 'a structure file'} ({_one_line(exc)})"
        ) from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    for i, a in enumerate(frames):
        a.info.setdefault("group", group or a.info.get("config_type") or path.stem)
        if group:
            a.info["group"] = group
        a.info.update(source=str(path), index=i)
        a.info.pop("stress_order", None)
        a.info.pop("stress_order_from", None)
        lab = labels(a)  # freeze whatever labels came with the file
        if lab:
            _attach(a, lab)
    return frames


# --- entry points ----------------------------------------------------------------------------


def read_structures(
    path: str | os.PathLike,
    group: str | None = None,
    require: Sequence[str] = ("energy", "forces"),
    validate: bool = True,
    stress_order: str | Sequence[str] | StressOrder | None = None,
) -> list[Atoms]:
    """Read one file of labelled structures, checked for physics and labels.

    Parameters
    ----------
    path : path
        ``.json`` (mlearn/maml), ``.db`` (ASE database), or any ``ase.io`` format (extxyz...).
    group : str, optional
        Overrides the group label of every structure.
    require : sequence of str
        Labels every structure must carry ("energy", "forces", "stress"); empty for none.
    validate : bool
        Check distances (≥ 0.5 Å), finiteness and labels.
    stress_order : str or sequence of str, optional
        Shear order of mlearn/maml six-number stresses: ``"vasp"`` (xx yy zz xy yz zx),
        ``"mlearn-mo"`` (xx yy zz xy zx yz), ``"voigt"`` (xx yy zz yz zx xy) or three names such
        as ``"xy,zx,yz"``; ``"drop"`` reads no stress.  Default: detected from the file's
        sheared cells (:func:`detect_stress_order`), an error when they cannot decide.  Ignored
        for ASE formats, whose stresses carry no order question.

    Returns
    -------
    list of ase.Atoms
    """
    path = Path(path)
    order = None if stress_order is None else parse_stress_order(stress_order)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file (name the files inside it)")
    bad = [r for r in require if r not in LABELS]
    if bad:
        raise DataError(f"require names unknown label(s) {bad} (allowed: {', '.join(LABELS)})")
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if empty:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".json":
        frames = read_json(path, group, order)
    else:
        frames = read_ase(path, group)
    if not frames:
        raise DataError(f"{path}: contains no structures")
    if validate:
        for i, a in enumerate(frames):
            name = f"{path} structure {i} ({a.get_chemical_formula()})"
            check_structure(a, name)
            check_labels(a, name, require)
    return frames


def read_many(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    group: str | None = None,
    require: Sequence[str] = ("energy", "forces"),
    validate: bool = True,
    stress_order: str | Sequence[str] | StressOrder | None = None,
) -> list[Atoms]:
    """Concatenate :func:`read_structures` over several files (same options for each).

    ``stress_order`` applies to every JSON file; without it each file's order is detected on
    its own.  A single path is accepted as a list of one.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    order = None if stress_order is None else parse_stress_order(stress_order)
    out: list[Atoms] = []
    for p in paths:
        out.extend(read_structures(p, group, require, validate, order))
    return out


def write_extxyz(path: str | os.PathLike, structures: Sequence[Atoms]) -> None:
    """Write labelled structures to extxyz (labels, group and source kept)."""
    import ase.io

    ase.io.write(str(path), list(structures), format="extxyz")
