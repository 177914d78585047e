"""Model design: FIM pruning drops a duplicated basis column, the Pareto front is
non-dominated, grouped block folds keep structures (and trajectory blocks) together, the search
is reproducible for a seed and never looks at the test file (real LAMMPS, the W SNAP oracle)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from potforge.cli import main
from potforge.data.builders import w_structures
from potforge.data.readers import write_extxyz
from potforge.errors import DataError
from potforge.model.cv import block_folds
from potforge.modeldesign.evaluate import Evaluation, ScoreWeights, evaluate, prune_order
from potforge.modeldesign.search import (
    Config,
    Trial,
    _moves,
    design,
    neighbour_shells,
    pareto_front,
)
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process


@pytest.fixture(scope="module")
def train():
    return label_in_process(w_structures(0), make_oracle("lammps:W_2940_2017_2.snap").build())


def test_prune_order_drops_a_duplicated_column_and_nothing_else():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(60, 5))
    assert prune_order(A.T @ A) == []
    B = np.column_stack([A, A[:, 2]])  # column 5 duplicates column 2
    assert prune_order(B.T @ B) == [5]
    assert prune_order(B.T @ B, protect=[5]) == [2]
    C = np.column_stack([A, 2 * A[:, 1] - A[:, 3]])  # a dependent combination
    dropped = prune_order(C.T @ C)
    assert len(dropped) == 1 and dropped[0] in (1, 3, 5)
    with pytest.raises(DataError, match="square"):
        prune_order(np.zeros((2, 3)))


def _trial(p, f, e):
    ev = Evaluation("x", p, e, f, 1.0, 0)
    return Trial(Config((("snap", 0),), 4.7), ev, "t")


def test_pareto_front_is_non_dominated():
    rng = np.random.default_rng(1)
    trials = [_trial(int(p), f, e) for p, f, e in zip(rng.integers(5, 50, 40), rng.random(40),
                                                       rng.random(40), strict=True)]  # fmt: skip
    front = pareto_front(trials)
    key = [(t.evaluation.n_params, t.evaluation.cv_force_mae, t.evaluation.cv_energy_mae)
           for t in trials]  # fmt: skip
    for t in front:
        k = (t.evaluation.n_params, t.evaluation.cv_force_mae, t.evaluation.cv_energy_mae)
        assert not any(all(a <= b for a, b in zip(o, k, strict=True)) and o != k for o in key)
    for t, k in zip(trials, key, strict=True):  # everything left out is dominated
        if t not in front:
            assert any(all(a <= b for a, b in zip(o, k, strict=True)) and o != k for o in key)


def test_moves_swap_snap_for_qsnap_of_the_same_twojmax_and_cutoff():
    c = Config((("snap", 2), ("pod", 1)), 4.7)  # snap 2J=6
    moves = dict(_moves(c))
    swap = moves["swap snap for qsnap at twojmax=6"]
    assert swap.rungs == (("qsnap", 2), ("pod", 1)) and swap.cutoff == c.cutoff
    assert swap.spec().startswith("qsnap(twojmax=6,rcutfac=4.7)+pod(")
    assert not any(w.startswith("add qsnap") for w in moves)  # one bispectrum term at most
    assert not any(w.startswith("swap") for w, _ in _moves(swap))  # no snap term left
    assert dict(_moves(Config((("snap", 3),), 4.7)))["swap snap for qsnap at twojmax=8"].rungs == (
        ("qsnap", 3),
    )
    assert not any(w.startswith("swap") for w, _ in _moves(Config((("pod", 0),), 4.7)))


def test_sigma_moves_step_each_weight_within_its_range():
    c = Config((("snap", 1),), 4.7, sigma_energy=1e-3, sigma_force=0.1)
    moves = dict(_moves(c))
    assert moves["σ_E 0.001 → 0.00316"].sigma_energy == pytest.approx(10**-2.5, rel=1e-3)
    assert moves["σ_E 0.001 → 0.000316"].rungs == c.rungs
    assert moves["σ_F 0.1 → 0.2"].sigma_force == 0.2 and moves["σ_F 0.1 → 0.05"].sigma_force == 0.05
    assert not any(w.startswith("σ") for w, _ in _moves(c, sigma=False))
    edge = Config((("snap", 1),), 4.7, sigma_energy=1e-5, sigma_force=1.0)
    words = [w for w, _ in _moves(edge)]
    assert "σ_E 1e-05 → 3.16e-05" in words and not any("→ 3.16e-06" in w for w in words)
    assert "σ_F 1 → 0.5" in words and "σ_F 1 → 2" not in words


def test_block_folds_keep_trajectory_blocks_and_groups_spread(train):
    fold = block_folds(train, 3, random_state=0)
    groups = np.array([a.info["group"] for a in train])
    for g in set(groups):
        f = fold[groups == g]
        changes = np.count_nonzero(np.diff(f))  # contiguous: at most n_folds − 1 changes
        assert changes <= 2
    assert set(fold) == {0, 1, 2}
    assert np.array_equal(block_folds(train, 3, random_state=0), fold)


def test_evaluation_reports_fim_cv_and_score(train):
    ev = evaluate("snap(twojmax=4)+zbl(inner=1.0,outer=1.6)+const", train, n_folds=3)
    assert ev.n_params == 15 and ev.cv_force_mae > 0 and ev.cv_energy_mae > 0
    assert len(ev.eigenvalues) == 15 and ev.condition > 1
    w = ScoreWeights(energy=0.0, force=1.0, properties=0.0)
    assert evaluate("snap(twojmax=4)+const", train, n_folds=3, weights=w).score == pytest.approx(
        evaluate("snap(twojmax=4)+const", train, n_folds=3).cv_force_mae / 0.2, rel=1e-9
    )
    with pytest.raises(DataError, match="not all 0"):
        ScoreWeights(energy=0, force=0, properties=0)


def test_neighbour_shells_of_bcc_w(train):
    shells = neighbour_shells(train)
    assert shells[0] == pytest.approx(2.74, abs=0.1) and shells[1] == pytest.approx(3.17, abs=0.1)


def test_design_is_reproducible_and_never_reads_the_test_file(train, tmp_path, capsys):
    kw = dict(max_params=16, minutes=30.0, n_trials=2, n_folds=3, seed=3)
    a = design(train, **kw)
    b = design(train, **kw)
    assert a.chosen.config == b.chosen.config and a.log == b.log
    assert a.chosen.evaluation.n_params <= 16
    assert any("FIM" in line for line in a.log)
    write_extxyz(tmp_path / "train.extxyz", train)
    write_extxyz(tmp_path / "test.extxyz", train[:5])
    base = ["design", "--train", str(tmp_path / "train.extxyz"), "--max-params", "10",
            "--minutes", "30", "--trials", "1", "--folds", "3", "--quiet"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "without")]) == 0
    assert main([*base, "--test", str(tmp_path / "test.extxyz"), "--out",
                 str(tmp_path / "with")]) == 0  # fmt: skip
    one = json.loads((tmp_path / "without" / "design.json").read_text())
    two = json.loads((tmp_path / "with" / "design.json").read_text())
    assert one["chosen"] == two["chosen"] and one["trials"] == two["trials"]
    assert one["test"] is None and two["test"]["n_structures"] == 5
    for name in ("model/model.json", "fim.png", "design.log"):
        assert (tmp_path / "with" / name).stat().st_size > 0


def test_sparsified_qsnap_keeps_the_most_informative_columns_within_max_params(train):
    from potforge.modeldesign.evaluate import DesignCache, informative_columns
    from potforge.modeldesign.search import prune_sloppy, sparsify

    rng = np.random.default_rng(0)
    A = rng.normal(size=(80, 6))
    B = np.column_stack([A, 3 * A[:, 1], A[:, 0] + A[:, 2]])  # columns 6, 7 add nothing
    assert sorted(informative_columns(B.T @ B, 10)) == [0, 1, 2, 3, 4, 5]
    assert informative_columns(B.T @ B, 2, protect=[0, 1]) not in ([6], [7])
    cache = DesignCache(train)
    c = Config((("qsnap", 1),), 4.7)  # 2J=4: 14 linear + 105 quadratic columns + const
    cut = sparsify(c, train, cache, max_params=40)
    assert cut is not None and cut.columns is not None and len(cut.columns) == 40 - 14 - 1
    assert cut.model().setup(train[:1]).n_params == 40
    assert "25 quadratic columns" in cut.describe() and "[" not in cut.spec(full=False)
    assert sparsify(Config((("snap", 1),), 4.7), train, cache, 40) is None
    assert cut.replace(rungs=(("qsnap", 0),)).columns is None  # a subset of another size
    ev_cut = evaluate(cut.model(), train, n_folds=3, cache=cache)
    rnd = sorted(rng.choice(105, 25, replace=False).tolist())
    ev_rnd = evaluate(c.replace(columns=tuple(rnd)).model(), train, n_folds=3, cache=cache)
    assert ev_cut.n_params == ev_rnd.n_params == 40
    assert ev_cut.n_sloppy <= ev_rnd.n_sloppy  # the FIM's pick is no less identifiable
    # 33 structures cannot pin 2J=4's 105 quadratic columns: the FIM prunes some
    pruned = prune_sloppy(c, train, cache, 1e-10)
    assert pruned is not None and 0 < pruned[1] < 105
    full = evaluate(c.model(), train, n_folds=3, cache=cache)
    after = evaluate(pruned[0].model(), train, n_folds=3, cache=cache)
    assert after.n_params == full.n_params - pruned[1] and after.n_sloppy < full.n_sloppy
    assert (
        prune_sloppy(pruned[0], train, cache, 1e-10) is None
    )  # what is left is the linear block's


def test_gram_cv_equals_the_svd_cross_validation(train):
    """The search's CV from per-fold Gram blocks is ``cv_score``'s (SVD per fold), with and
    without a ridge, and the FIM beside it is the training FIM."""
    from potforge.model import LinearPotential
    from potforge.model.cv import cv_score
    from potforge.modeldesign.evaluate import fold_grams, gram_cv, training_fisher

    folds = block_folds(train, 3, random_state=0)
    for alpha in (1e-10, 1e-4):
        spec = "qsnap(twojmax=4,rcutfac=4.7)+pair(n_basis=6,rcut=4.7)+const"
        m = LinearPotential(spec, sigma_energy=3e-4, sigma_force=0.15, alpha=alpha).setup(train)
        designs = m.structure_designs(train, progress=False)
        ref = cv_score(m, train, designs=designs, folds=folds, progress=False)
        dm = m.design(train, designs=designs)
        w = dm.weights(m.sigma, m.group_weights)
        grams = fold_grams(dm, w, folds)
        e, f = gram_cv(dm, w, folds, m.alpha, grams)
        assert e == pytest.approx(ref.cv_energy_mae, rel=1e-6)
        assert f == pytest.approx(ref.cv_force_mae, rel=1e-6)
        F = training_fisher(m, train, designs)
        assert np.allclose(grams[0].sum(axis=0), F, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    ev = evaluate(m.with_terms(), train, n_folds=3, folds=folds)
    assert ev.cv_energy_mae == pytest.approx(ref.cv_energy_mae, rel=1e-6)
    huber = evaluate(m.with_terms().set_params(loss="huber"), train, n_folds=3, folds=folds)
    assert huber.cv_force_mae != pytest.approx(ev.cv_force_mae, rel=1e-9)  # the SVD path


def test_design_cache_slices_sparsified_qsnap_and_builds_the_fim_from_blocks(train):
    """A sparsified qsnap's rows are the full term's kept columns (no descriptor pass of
    its own), and the cache's block FIM is the training FIM, sparsified or not."""
    from potforge.model import LinearPotential
    from potforge.modeldesign.evaluate import DesignCache, training_fisher

    cols = [0, 3, 7, 20, 50, 104]
    spec = f"qsnap(twojmax=4,rcutfac=4.7,quadratic_columns={cols})+embed(n_basis=4,rcut=4.7)+const"
    m = LinearPotential(spec, sigma_energy=1e-3, sigma_force=0.1).setup(train)
    cache = DesignCache(train)
    sliced = cache.designs(m)
    assert len(cache._parts) == 3 and not any("quadratic_columns', [" in k[1] for k in cache._parts)
    direct = m.structure_designs(train, progress=False)
    for a, b in zip(sliced, direct, strict=True):
        assert np.allclose(a.rows.forces, b.rows.forces) and np.allclose(
            a.rows.energy, b.rows.energy
        )
        assert np.allclose(a.rows.virial, b.rows.virial)
    F = training_fisher(m, train, direct)
    assert np.allclose(cache.fisher(m), F, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    full = LinearPotential(spec.replace(f",quadratic_columns={cols}", "")).setup(train)
    Ff = training_fisher(full, train, full.structure_designs(train, progress=False))
    assert np.allclose(cache.fisher(full), Ff, rtol=1e-10, atol=1e-12 * np.abs(Ff).max())
    # the cached per-fold blocks are the folds' Gram blocks; the CV from them is the direct one
    from potforge.modeldesign.evaluate import fold_grams

    folds = block_folds(train, 3, random_state=0)
    dm = m.design(train, designs=direct)
    G, c = fold_grams(dm, dm.weights(m.sigma), folds)
    Gc, cc = cache.grams(m, folds)
    assert np.allclose(Gc, G, rtol=1e-10, atol=1e-12 * np.abs(G).max())
    assert np.allclose(cc, c, rtol=1e-10, atol=1e-12 * np.abs(c).max())
    assert np.array_equal(cache.matrix(m).A, dm.A) and np.array_equal(cache.matrix(m).y, dm.y)
    a = evaluate(m.with_terms(), train, n_folds=3, folds=folds, cache=cache)
    b = evaluate(m.with_terms(), train, n_folds=3, folds=folds)
    assert a.cv_energy_mae == pytest.approx(b.cv_energy_mae, rel=1e-8)
    assert a.cv_force_mae == pytest.approx(b.cv_force_mae, rel=1e-8) and a.n_sloppy == b.n_sloppy
