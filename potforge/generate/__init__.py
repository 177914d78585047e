"""Diverse-by-construction data (METHODS.md §2): the QUESTS kernel entropy of per-atom descriptors,
its analytic gradient, selection of structures by entropy, and the entropy-maximising generator.

:mod:`potforge.generate.entropy` is the array core (numpy/scipy only, no ASE): kernel sums,
entropy, diversity, novelty ``dH``, overlap, and the joint entropy of new + existing data with its
gradient.  :mod:`potforge.generate.compress` picks structures from a pool (greedy entropy,
farthest-point and random baselines).  :mod:`potforge.generate.descriptors` gives per-atom SNAP
(LAMMPS, with per-pair gradients) and QUESTS descriptors and the fixed whitened
:class:`~potforge.generate.descriptors.DescriptorSpace`; :mod:`potforge.generate.generator` makes
new configurations whose environments maximise the joint entropy with an existing set.
"""
