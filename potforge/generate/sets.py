"""Environments of whole data sets in one descriptor space: what ``potforge entropy`` and
``potforge compress`` (and the transferability benchmark) compare.

Two descriptors:

* ``"snap"`` (default) — per-atom SNAP bispectrum (:class:`SnapDescriptor`, 2J = 6, rcutfac
  4.6 unless given), whitened by a :class:`DescriptorSpace` fitted on the union of every given
  set (at most ``max_reference`` environments of it, drawn at random with ``seed``), so each
  set is measured with the same ruler; bandwidth by the ``"nearest"`` rule (the median distance
  from a reference environment to its nearest other one) unless a number is given;
* ``"quests"`` — the QUESTS descriptor (k = 32 neighbours, 5 Å), raw, bandwidth 0.015 unless
  given: the values are those of the ``quests`` package on the same structures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from potforge.errors import DataError
from potforge.generate.descriptors import (
    DescriptorSpace,
    QuestsDescriptor,
    SnapDescriptor,
    descriptor_matrix,
)
from potforge.generate.entropy import DEFAULT_BANDWIDTH

DESCRIPTORS = ("snap", "quests")


@dataclass
class DescribedSets:
    """Per-structure environments of several data sets in one space.

    Attributes
    ----------
    envs : list of list of ndarray
        ``envs[s][t]``: environments of structure t of set s, shape (n_atoms, d).
    h : float
        Kernel bandwidth in that space.
    space : DescriptorSpace or None
        The whitening (None for the raw QUESTS descriptor).
    rule : str
        How ``h`` was chosen (for tables and logs).
    """

    envs: list[list[np.ndarray]]
    h: float
    space: DescriptorSpace | None
    rule: str

    def stacked(self, s: int) -> np.ndarray:
        """Every environment of set ``s``, shape (Σ n_atoms, d)."""
        return np.vstack(self.envs[s])


def describe_sets(
    sets: Sequence[Sequence[Atoms]],
    *,
    descriptor: str = "snap",
    twojmax: int = 6,
    rcutfac: float = 4.6,
    bandwidth: float | str | None = None,
    max_reference: int = 4000,
    seed: int = 0,
) -> DescribedSets:
    """Describe every structure of every set in one descriptor space.

    Parameters
    ----------
    sets : sequence of sequences of ase.Atoms
        The data sets (each non-empty).
    descriptor : {"snap", "quests"}, default="snap"
    twojmax, rcutfac
        SNAP settings.
    bandwidth : float or {"nearest", "silverman"}, optional
        Default: ``"nearest"`` for SNAP, 0.015 for QUESTS (the ``quests`` package's default).
    max_reference : int, default=4000
        Environments the whitening and the bandwidth rule are fitted on (a random subset of
        the union; the rule costs O(M²)).
    seed : int, default=0
    """
    if descriptor not in DESCRIPTORS:
        from potforge.params import unknown_name

        raise DataError(unknown_name(descriptor, DESCRIPTORS, "descriptor"))
    sets = [list(s) for s in sets]
    if not sets or any(not s for s in sets):
        raise DataError("every data set needs at least one structure")
    if descriptor == "quests":
        if isinstance(bandwidth, str):
            raise DataError(
                f"bandwidth rule {bandwidth!r} is for the whitened SNAP space; give the QUESTS "
                "descriptor a number (default 0.015)"
            )
        d = QuestsDescriptor()
        h = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
        if not h > 0:
            raise DataError(f"bandwidth must be > 0, got {bandwidth!r}")
        envs = [[d.compute(a) for a in s] for s in sets]
        return DescribedSets(envs, h, None, f"QUESTS descriptor, h = {h:g}")
    elements = sorted({e for s in sets for a in s for e in a.get_chemical_symbols()})
    snap = SnapDescriptor(tuple(elements), twojmax=twojmax, rcutfac=rcutfac)
    raw = [[snap.compute(a) for a in s] for s in sets]
    union = np.vstack([b for s in raw for b in s])
    rng = np.random.default_rng(seed)
    if len(union) > max_reference:
        union = union[np.sort(rng.choice(len(union), max_reference, replace=False))]
    rule = bandwidth if bandwidth is not None else "nearest"
    space = DescriptorSpace.fit(union, snap, bandwidth=rule)
    envs = [[space.transform_descriptors(b) for b in s] for s in raw]
    how = f"rule '{rule}'" if isinstance(rule, str) else "given"
    text = (
        f"SNAP 2J={twojmax} whitened on {len(union)} environments of the union, "
        f"h = {space.bandwidth:.4g} ({how})"
    )
    return DescribedSets(envs, float(space.bandwidth), space, text)


def environments(structures: Sequence[Atoms], described: DescribedSets) -> list[np.ndarray]:
    """Environments of further structures in the space of ``described`` (SNAP only)."""
    if described.space is None:
        return [QuestsDescriptor().compute(a) for a in structures]
    d = described.space.descriptor
    return [described.space.transform_descriptors(descriptor_matrix([a], d)) for a in structures]


__all__ = ["DESCRIPTORS", "DescribedSets", "describe_sets", "environments"]
