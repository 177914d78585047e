"""Readers: extxyz (and anything ``ase.io`` reads), ASE databases, mlearn/maml JSON.

Every reader returns ``list[ase.Atoms]`` with labels attached as in
:mod:`potforge.data.structures` (eV, eV/Å, eV/Å³ in ASE sign and Voigt order), a group label
in ``atoms.info["group"]`` and the file in ``atoms.info["source"]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import GPa

from potforge.data.structures import attach_labels, check_labels, check_structure, labels
from potforge.errors import DataError

KBAR = 0.1 * GPa
"""One kilobar in eV/Å³."""

VASP_TO_ASE_VOIGT = (0, 1, 2, 4, 5, 3)
"""Index into VASP's (xx, yy, zz, xy, yz, zx) giving ASE's (xx, yy, zz, yz, xz, xy)."""

MLEARN_TO_ASE_VOIGT = (0, 1, 2, 5, 4, 3)
"""mlearn's ``virial_stress`` is ordered (xx, yy, zz, xy, zx, yz): its shear components, matched
one by one against the published Mo SNAP in LAMMPS, say so (``tests/test_readers.py``)."""

VASP_STRESS_SIGN = -1.0
"""VASP reports stress positive under compression (a pressure); ASE's is positive under tension.
Verified against the published Mo SNAP in ``tests/test_readers.py``."""


def vasp_kbar_to_ase(
    stress_kbar: Sequence[float], order: Sequence[int] = VASP_TO_ASE_VOIGT
) -> np.ndarray:
    """Convert a VASP stress (kbar, compression > 0) to ASE's (eV/Å³, tension > 0).

    Parameters
    ----------
    stress_kbar : sequence of float, length 6
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


def _pymatgen_structure(d: dict, where: str) -> Atoms:
    try:
        cell = np.array(d["lattice"]["matrix"], dtype=float)
        sites = d["sites"]
        symbols = [s["species"][0]["element"] for s in sites]
        positions = np.array([s["xyz"] for s in sites], dtype=float)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise DataError(
            f"{where}: 'structure' is not a pymatgen Structure dict ({exc!r} missing or bad)"
        ) from exc
    try:
        return Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)
    except KeyError as exc:
        raise DataError(f"{where}: unknown element {exc.args[0]!r}") from exc


def read_json(path: str | os.PathLike, group: str | None = None) -> list[Atoms]:
    """Read the mlearn / maml JSON layout: a list of {structure, outputs, group, ...}.

    ``outputs.energy`` (eV, total), ``outputs.forces`` (eV/Å), and ``outputs.virial_stress``
    (mlearn, order xx yy zz xy zx yz) or ``outputs.stress`` (maml, VASP order xx yy zz xy yz zx),
    both in kbar with compression positive.  The group comes from ``group`` (mlearn)
    or, for maml files whose ``group`` is only the element, from the file name
    (``Nb_Elastic.json`` → "Elastic").
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of structures, got {type(entries).__name__}")
    stem_group = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
    out = []
    for i, e in enumerate(entries):
        where = f"{path} entry {i}"
        if not isinstance(e, dict) or "structure" not in e:
            raise DataError(f"{where}: no 'structure' field")
        atoms = _pymatgen_structure(e["structure"], where)
        outputs = e.get("outputs") or {}
        if "virial_stress" in outputs:
            stress, order = outputs["virial_stress"], MLEARN_TO_ASE_VOIGT
        else:
            stress, order = outputs.get("stress"), VASP_TO_ASE_VOIGT
        forces = outputs.get("forces")
        try:
            attach_labels(
                atoms,
                energy=outputs.get("energy"),
                forces=None if forces is None else np.array(forces, dtype=float),
                stress=None if stress is None else vasp_kbar_to_ase(stress, order),
            )
        except (ValueError, TypeError) as exc:
            raise DataError(f"{where}: malformed outputs ({exc})") from exc
        g = group or e.get("group")
        if g is None or (isinstance(g, str) and g == atoms.get_chemical_symbols()[0]):
            g = stem_group
        atoms.info.update(group=str(g), source=str(path), index=i)
        if e.get("description"):
            atoms.info["description"] = str(e["description"])
        out.append(atoms)
    return out


def read_ase(path: str | os.PathLike, group: str | None = None) -> list[Atoms]:
    """Read extxyz or any format ``ase.io.read`` knows (all frames); ASE databases too."""
    import ase.io

    path = Path(path)
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
            f"{path}: cannot be read as {path.suffix or 'a structure file'} ({exc})"
        ) from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    for i, a in enumerate(frames):
        a.info.setdefault("group", group or a.info.get("config_type") or path.stem)
        if group:
            a.info["group"] = group
        a.info.update(source=str(path), index=i)
        lab = labels(a)  # freeze whatever labels came with the file
        if lab:
            attach_labels(a, **lab)
    return frames


def read_structures(
    path: str | os.PathLike,
    group: str | None = None,
    require: Sequence[str] = ("energy", "forces"),
    validate: bool = True,
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

    Returns
    -------
    list of ase.Atoms
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    frames = read_json(path, group) if path.suffix == ".json" else read_ase(path, group)
    if not frames:
        raise DataError(f"{path}: contains no structures")
    if validate:
        for i, a in enumerate(frames):
            name = f"{path} structure {i} ({a.get_chemical_formula()})"
            check_structure(a, name)
            check_labels(a, name, require)
    return frames


def read_many(paths: Sequence[str | os.PathLike], **kwargs) -> list[Atoms]:
    """Concatenate :func:`read_structures` over several files."""
    out: list[Atoms] = []
    for p in paths:
        out.extend(read_structures(p, **kwargs))
    return out


def write_extxyz(path: str | os.PathLike, structures: Sequence[Atoms]) -> None:
    """Write labelled structures to extxyz (labels, group and source kept)."""
    import ase.io

    ase.io.write(str(path), list(structures), format="extxyz")
