"""LAMMPS export of a fitted :class:`~potforge.model.LinearPotential`: its terms' pair styles
(hybrid/overlay when there are several), their coefficient files, and an ``include``-able
``potential.in`` that works from any working directory."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from potforge import __version__
from potforge.errors import ModelError
from potforge.terms import Constant
from potforge.terms.base import LammpsPart, write_files

if TYPE_CHECKING:
    from potforge.model.estimator import LinearPotential


def lammps_commands(
    model: LinearPotential,
    directory: str | Path,
    prefix: str = "potforge",
    coef: np.ndarray | None = None,
    folder_variable: str | None = None,
) -> list[str]:
    """Write the potential files into ``directory``; return its pair_style/pair_coeff lines.

    File names in the lines are relative to ``directory`` or, with ``folder_variable``
    (e.g. ``"potforge_dir"``), written ``${potforge_dir}/name`` for LAMMPS to substitute
    (:func:`write_lammps` defines that variable).
    """
    model._check_fitted()
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", prefix):
        raise ModelError(f"LAMMPS file prefix {prefix!r}: use letters, digits and _ . + - only")
    coef = model.coef_ if coef is None else np.asarray(coef, dtype=float)
    blocks, start = {}, 0
    for t in model.linear_terms:
        blocks[id(t)] = coef[start : start + t.n_params]
        start += t.n_params
    const = [t for t in model.linear_terms if isinstance(t, Constant)]
    offsets = const[0].offsets(blocks[id(const[0])]) if const else None
    absorber = next((t for t in model.linear_terms if t.absorbs_offsets), None)

    def refer(words: str, files: dict[str, str]) -> str:
        """``words`` with each file name of ``files`` written against ``folder_variable``."""
        if folder_variable is None:
            return words
        var = "${" + folder_variable + "}"  # unquoted: LAMMPS does not substitute in quotes
        return " ".join(f"{var}/{w}" if w in files else w for w in words.split())

    parts = []
    for k, t in enumerate(model.terms_):
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
            LammpsPart(refer(part.style, part.files), [refer(c, part.files) for c in part.coeffs])
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


def write_lammps(
    model: LinearPotential,
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
    lines = lammps_commands(model, directory, prefix, folder_variable="potforge_dir")
    masses = [
        f"mass {k + 1} {float(atomic_masses[atomic_numbers[el]])!r}"
        for k, el in enumerate(model.elements_)
    ]
    head = [
        f"# potforge {__version__} linear potential; units metal; atom types: "
        f"{' '.join(model.elements_)}",
        "# Include after read_data or create_box. Files are read from ${potforge_dir}; after",
        "# moving this folder run LAMMPS with: -var potforge_dir /new/place",
        f"variable potforge_dir index {word}",
    ]
    path = directory / "potential.in"
    path.write_text("\n".join(head + masses + lines) + "\n")
    return path
