"""Diverse-by-construction data (METHODS.md §2): the QUESTS kernel entropy of per-atom descriptors,
its analytic gradient, selection of structures by entropy, and the entropy-maximising generator.

:mod:`potforge.generate.entropy` is the array core (numpy/scipy only, no ASE): kernel sums,
entropy, diversity, novelty ``dH``, overlap, and the joint entropy of new + existing data with its
gradient.  :mod:`potforge.generate.compress` picks structures from a pool (greedy entropy,
farthest-point and random baselines).  :mod:`potforge.generate.descriptors` gives per-atom SNAP
(LAMMPS, with per-pair gradients) and QUESTS descriptors and the fixed whitened
:class:`~potforge.generate.descriptors.DescriptorSpace`; :mod:`potforge.generate.generator` makes
new configurations whose environments maximise the joint entropy with an existing set.

:mod:`potforge.generate.loop` runs the generator resumably through the store (Dask tasks);
:mod:`potforge.generate.sets` puts whole data sets in one descriptor space (``potforge entropy``,
``potforge compress``).
"""

from potforge.generate.compress import farthest_point, greedy_entropy, random_subset
from potforge.generate.descriptors import DescriptorSpace, QuestsDescriptor, SnapDescriptor
from potforge.generate.entropy import (
    delta_entropy,
    diversity,
    entropy,
    entropy_curve,
    joint_entropy,
    overlap,
)
from potforge.generate.generator import GeneratorSettings, generate_batch, generate_configuration
from potforge.generate.loop import GenerationResult, run_generation
from potforge.generate.sets import describe_sets

__all__ = [
    "DescriptorSpace",
    "GenerationResult",
    "GeneratorSettings",
    "QuestsDescriptor",
    "SnapDescriptor",
    "delta_entropy",
    "describe_sets",
    "diversity",
    "entropy",
    "entropy_curve",
    "farthest_point",
    "generate_batch",
    "generate_configuration",
    "greedy_entropy",
    "joint_entropy",
    "overlap",
    "random_subset",
    "run_generation",
]
