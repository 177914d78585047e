"""Layer 6: composable model design guided by Fisher information and multi-property errors
(seed 002, ../shared/METHODS.md §3) — evaluation of candidate models
(:mod:`~potforge.modeldesign.evaluate`) and the search over terms and hyperparameters
(:mod:`~potforge.modeldesign.search`)."""
