"""Posteriors on a fitted LinearPotential: POPS about coef_, predictions with bounds, the ASE
calculator's uncertainty properties, save/load, and the uq/fit/eval CLI — on real Mo DFT data
with real LAMMPS descriptors (a small SNAP model on a subset, so the file stays fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from potforge.cli import main
from potforge.data import attach_labels, read_structures, write_extxyz
from potforge.data.structures import labels
from potforge.errors import DataError, ModelError, NotFittedError
from potforge.model import POSTERIOR_FILE, UQ_PROPERTIES, LinearPotential

SPEC = "snap(twojmax=4,rcutfac=4.6)+const"
METHODS = [
    ("pops", {}),
    ("pops", {"posterior": "hypercube"}),
    ("pops", {"posterior": "hypercube", "percentile_clipping": 5.0}),
    ("pops", {"leverage_percentile": 50.0, "max_members": 500, "random_state": 1}),
    ("bayes", {}),
    ("bayes", {"temperature": "frederiksen"}),
    ("bootstrap", {"n_members": 8, "random_state": 0}),
]


@pytest.fixture(scope="module")
def mo(mo_train, mo_test):
    return read_structures(mo_train)[::5], read_structures(mo_test, stress_order="mlearn-mo")[::2]


@pytest.fixture(scope="module")
def fitted(mo):
    """A small SNAP fitted on the subset with a POPS posterior; its training designs."""
    train, _ = mo
    model = LinearPotential(SPEC).setup(train)
    designs = model.structure_designs(train)
    model.fit(train, designs=designs)
    model.fit_posterior(train, designs=designs)
    return model, designs


def _copy_without_posterior(model, folder):
    m = LinearPotential.load(model.save(folder).parent)
    del m.posterior_
    return m


def _inside(y, lo, hi, rtol=1e-9):
    tol = rtol * np.maximum(1.0, np.abs(y))
    return (y >= lo - tol) & (y <= hi + tol)


def test_pops_bounds_cover_every_training_row(fitted, mo):
    model, designs = fitted
    train, _ = mo
    dm = model.design(train, designs=designs)
    std, lo, hi = model.functional_bounds(dm.A)
    mean = dm.A @ model.coef_
    assert np.all((lo <= mean) & (mean <= hi)) and np.all(std >= 0)
    outside = ~_inside(dm.y, lo, hi)
    info = model.posterior_.info
    # only rows without a usable correction (leverage ~0: design rows ~0) can lie outside
    assert outside.sum() <= info["n_excluded"] < 0.01 * len(dm.y)
    assert info["n_used"] + info["n_excluded"] == info["n_rows"] == len(dm.y)
    assert np.all(np.abs(dm.A[outside]).max(axis=1) < 1e-3 * np.abs(dm.A).max())
    # the same through predict(): every training energy lies inside its bounds
    preds = model.predict_designs(designs, return_std=True, return_bounds=True)
    for a, p in zip(train, preds, strict=True):
        lo_e, hi_e = p["energy_bounds"]
        assert lo_e <= p["energy"] <= hi_e
        assert _inside(np.array([labels(a)["energy"]]), lo_e, hi_e).all()
        assert p["forces_bounds"].shape == (2, len(a), 3) and p["forces_std"].shape == (len(a), 3)
        assert p["stress_bounds"].shape == (2, 6) and p["energy_std"] >= 0


def test_posterior_is_centred_on_the_fit_and_samples_lie_in_the_bounds(fitted, mo):
    model, _ = fitted
    P = model.n_params
    std, lo, hi = model.functional_bounds(np.eye(P))
    assert np.all(lo <= model.coef_) and np.all(model.coef_ <= hi) and np.all(hi > lo)
    thetas = model.sample_coef(50, seed=3)
    assert thetas.shape == (50, P)
    assert np.array_equal(thetas, model.sample_coef(50, seed=3))
    G = np.random.default_rng(0).normal(size=(7, P))
    _, glo, ghi = model.functional_bounds(G)
    vals = thetas @ G.T
    assert np.all(vals >= glo - 1e-12 * np.abs(glo)) and np.all(vals <= ghi + 1e-12 * np.abs(ghi))
    # the parameter vectors attaining the bounds (for nonlinear propagation at the extremes)
    ext = model.extreme_coef(G)
    assert ext.shape == (7, 2, P)
    at = np.einsum("mp,mkp->mk", G, ext)
    np.testing.assert_allclose(at, np.column_stack([glo, ghi]), rtol=1e-10)
    # energy bounds of predict() are functional bounds of the energy design row + fixed part
    a = mo[1][0]
    d = model.structure_designs([a])[0]
    p = model.predict([a], return_bounds=True)[0]
    _, elo, ehi = model.functional_bounds(d.rows.energy)
    np.testing.assert_allclose(p["energy_bounds"], [elo[0], ehi[0]], rtol=1e-12)


def test_filters_keep_a_subset_of_the_corrections(fitted, mo, tmp_path):
    """Leverage and residual filters drop the rows they name; the bounds of what is left lie
    inside the unfiltered ones (a subset of the members)."""
    model, designs = fitted
    train, test = mo
    m = _copy_without_posterior(model, tmp_path / "f")
    G = m.design(test).A
    full = m.fit_posterior(train, designs=designs).posterior_.info
    _, lo, hi = m.functional_bounds(G)
    info = m.fit_posterior(
        train, designs=designs, residual_percentile=90.0, leverage_percentile=10.0
    ).posterior_.info
    usable = full["n_used"]
    assert info["n_filtered_residual"] == pytest.approx(0.1 * usable, abs=2)
    assert info["n_filtered"] == pytest.approx(0.1 * usable, abs=2)
    assert usable - info["n_filtered"] - info["n_filtered_residual"] <= info["n_used"] < usable
    _, flo, fhi = m.functional_bounds(G)
    assert np.all(flo >= lo - 1e-12 * np.abs(lo)) and np.all(fhi <= hi + 1e-12 * np.abs(hi))
    for bad, match in (
        (0.0, r"residual_percentile must lie in \(0, 100\], got 0.0"),
        (101.0, "got 101.0"),
    ):
        with pytest.raises(ModelError, match=match):
            m.fit_posterior(train, designs=designs, residual_percentile=bad)
    with pytest.raises(ModelError, match="together leave no correction"):
        m.fit_posterior(train, designs=designs, leverage_percentile=99.9, residual_percentile=0.1)
    with pytest.raises(ModelError, match="max_members=5 subsamples the ensemble"):
        m.fit_posterior(train, designs=designs, posterior="hypercube", max_members=5)
    with pytest.raises(ModelError, match="n_sigma must be positive"):
        m.fit_posterior(train, "bayes", designs=designs, n_sigma=0)


def _in_memory_pops(
    A,
    y,
    w,
    t,
    coef,
    alpha,
    posterior="ensemble",
    threshold=1e-12,
    leverage_percentile=0.0,
    residual_percentile=100.0,
    max_members=None,
    percentile_clipping=0.0,
    random_state=None,
):
    """The model's POPS posterior as its own in-memory code computed it before the one engine
    (issue 15): every row at once, in the fit's normalised coordinates, about ``coef``."""
    from potforge.linalg import solve_ridge

    scale = np.sqrt(np.einsum("ij,ij,i->j", A, A, w))
    An = A / scale
    Xw = An * np.sqrt(w)[:, None]
    Ainv = solve_ridge(Xw.T @ Xw, An.T @ (w * y), alpha=alpha).inverse
    C = An @ Ainv
    q = np.einsum("ij,ij->i", C, An)
    e = y - An @ (coef * scale)
    h = w * q
    keep = h > threshold
    C = C[keep] * (e[keep] / q[keep])[:, None]
    rows = np.flatnonzero(keep)
    use = np.ones(C.shape[0], bool)
    if leverage_percentile > 0:
        use &= h[keep] >= np.percentile(h[keep], leverage_percentile)
    if residual_percentile < 100:
        r = np.sqrt(w[keep]) * np.abs(e[keep])
        use &= r <= np.percentile(r, residual_percentile)
    C, rows = C[use], rows[use]
    info = {
        "n_used": C.shape[0],
        "n_excluded": int((~keep).sum()),
        "used_by_type": {
            n: int((t[rows] == k).sum())
            for k, n in enumerate(("energy", "force", "stress"))
            if (t[rows] == k).any()
        },
    }
    if posterior == "ensemble":
        if max_members is not None and max_members < C.shape[0]:
            rng = np.random.default_rng(random_state)
            C = C[np.sort(rng.choice(C.shape[0], max_members, replace=False))]
        return {"members": C}, scale, info
    evals, evecs = np.linalg.eigh(C.T @ C / C.shape[0])
    order = np.argsort(evals)[::-1]
    evals, V = evals[order], evecs[:, order]
    V = V[:, : int((evals > 1e-8 * evals.max()).sum())]
    proj = C @ V
    c = percentile_clipping
    low, high = np.percentile(proj, c, axis=0), np.percentile(proj, 100 - c, axis=0)
    return {"components": V, "low": low, "high": high}, scale, info


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"leverage_percentile": 50.0, "max_members": 500, "random_state": 1},
        {"residual_percentile": 90.0, "leverage_percentile": 10.0},
        {"posterior": "hypercube"},
        {"posterior": "hypercube", "percentile_clipping": 5.0, "leverage_percentile": 1.0},
        {"posterior": "hypercube", "residual_percentile": 95.0, "leverage_threshold": 1e-6},
    ],
)
def test_pops_posterior_is_the_in_memory_posterior(fitted, mo, tmp_path, options):
    """fit_posterior through the one (streaming) POPS engine gives the posterior the model's
    former in-memory path gave, option by option, to rounding."""
    model, designs = fitted
    train, test = mo
    m = _copy_without_posterior(model, tmp_path / "m")
    post = m.fit_posterior(train, designs=designs, **options).posterior_
    dm = m.design(train, designs=designs)
    ref = dict(options)
    if "leverage_threshold" in ref:
        ref["threshold"] = ref.pop("leverage_threshold")
    arrays, scale, info = _in_memory_pops(
        dm.A, dm.y, m._fit_weights(dm), dm.row_type, m.coef_, m.alpha, **ref
    )
    assert np.array_equal(post.scale, scale)
    assert {k: post.info[k] for k in info} == info
    assert post.info["rows_by_type"] == {
        "energy": len(train),
        "force": int(3 * dm.n_atoms.sum()),
        "stress": int((dm.row_type == 2).sum()),
    }
    G = m.design(test).A / scale
    if post.kind == "ensemble":
        np.testing.assert_allclose(
            post.arrays["members"],
            arrays["members"],
            rtol=0,
            atol=1e-10 * np.abs(arrays["members"]).max(),
        )
        d = G @ arrays["members"].T
        ref_lo, ref_hi = d.min(axis=1), d.max(axis=1)
    else:
        V, lo, hi = post.arrays["components"], post.arrays["low"], post.arrays["high"]
        assert V.shape == arrays["components"].shape and not post.arrays["offset"].any()
        sign = np.sign(np.einsum("ij,ij->j", V, arrays["components"]))
        np.testing.assert_allclose(V * sign, arrays["components"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(np.where(sign > 0, lo, -hi), arrays["low"], rtol=1e-10)
        np.testing.assert_allclose(np.where(sign > 0, hi, -lo), arrays["high"], rtol=1e-10)
        a = G @ arrays["components"]
        mid, half = (
            a @ (0.5 * (arrays["low"] + arrays["high"])),
            np.abs(a) @ (0.5 * (arrays["high"] - arrays["low"])),
        )
        ref_lo, ref_hi = mid - half, mid + half
    _, lo, hi = post.summary(G * scale)
    scale_b = np.abs(np.concatenate([ref_lo, ref_hi])).max()
    np.testing.assert_allclose(lo, np.minimum(ref_lo, 0.0), rtol=0, atol=1e-10 * scale_b)
    np.testing.assert_allclose(hi, np.maximum(ref_hi, 0.0), rtol=0, atol=1e-10 * scale_b)


@pytest.mark.parametrize("method, options", METHODS)
def test_every_method_saves_and_loads_exactly(fitted, mo, tmp_path, method, options):
    model, designs = fitted
    train, test = mo
    m = _copy_without_posterior(model, tmp_path / "base")
    assert not m.has_posterior
    m.save(tmp_path / "base")
    m.fit_posterior(train, method, designs=designs, **options)
    m.save(tmp_path / "m")
    back = LinearPotential.load(tmp_path / "m")
    a, b = m.posterior_, back.posterior_
    assert (a.method, a.kind, a.info) == (b.method, b.kind, b.info)
    assert np.array_equal(a.scale, b.scale) and a.arrays.keys() == b.arrays.keys()
    for k in a.arrays:
        assert np.array_equal(a.arrays[k], b.arrays[k])
    assert np.array_equal(m.sample_coef(5, seed=1), back.sample_coef(5, seed=1))
    # every posterior kind names the parameter vectors attaining its exact bounds
    G = np.random.default_rng(2).normal(size=(5, m.n_params))
    _, lo, hi = m.functional_bounds(G)
    at = np.einsum("mp,mkp->mk", G, back.extreme_coef(G))
    np.testing.assert_allclose(at, np.column_stack([lo, hi]), rtol=1e-10, atol=1e-12)
    # ... and candidates for a nonlinear quantity's extremes: the extremes first, then members
    # (or box corners) ever less extreme, every one inside the exact bounds
    cand = back.candidate_coef(G, 4)
    np.testing.assert_allclose(cand[:, :, 0], back.extreme_coef(G), rtol=1e-12, atol=1e-12)
    val = np.einsum("mp,mskp->msk", G, cand) - (G @ m.coef_)[:, None, None]
    assert cand.shape == (5, 2, 1 if back.posterior_.kind == "gaussian" else 4, m.n_params)
    tol = 1e-10 * np.abs(val).max()
    assert np.all(np.diff(val[:, 0], axis=1) >= -tol) and np.all(np.diff(val[:, 1], axis=1) <= tol)
    mean = G @ m.coef_
    assert np.all(val >= (lo - mean)[:, None, None] - tol)
    assert np.all(val <= (hi - mean)[:, None, None] + tol)
    if back.posterior_.kind == "ensemble":  # the 4 lowest / highest members, exactly
        dev = np.sort(G @ (back.posterior_.arrays["members"] / back.posterior_.scale).T, axis=1)
        np.testing.assert_allclose(val[:, 0], dev[:, :4], atol=tol)
        np.testing.assert_allclose(val[:, 1], dev[:, ::-1][:, :4], atol=tol)
    pa = m.predict(test[:2], return_std=True, return_bounds=True)
    pb = back.predict(test[:2], return_std=True, return_bounds=True)
    for x, y in zip(pa, pb, strict=True):
        for key in ("energy_bounds", "forces_bounds", "stress_bounds", "forces_std"):
            assert np.array_equal(x[key], y[key])
        assert x["energy_bounds"][0] <= x["energy"] <= x["energy_bounds"][1]
    # saving a model without posterior over the folder drops the stale file
    LinearPotential.load(tmp_path / "base").save(tmp_path / "m")
    assert not (tmp_path / "m" / POSTERIOR_FILE).exists()
    assert not LinearPotential.load(tmp_path / "m").has_posterior


def test_calculator_uncertainty_properties(fitted, mo, tmp_path):
    model, _ = fitted
    atoms = mo[1][1].copy()
    atoms.calc = model.as_calculator()
    e = atoms.get_potential_energy()
    eb = atoms.calc.get_property("energy_bounds", atoms)
    fb = atoms.calc.get_property("forces_bounds", atoms)
    sb = atoms.calc.get_property("stress_bounds", atoms)
    assert eb.shape == (2,) and eb[0] <= e <= eb[1] and eb[1] > eb[0]
    f = atoms.get_forces()
    assert fb.shape == (2, len(atoms), 3) and np.all((fb[0] <= f) & (f <= fb[1]))
    s = atoms.get_stress()
    assert sb.shape == (2, 6) and np.all((sb[0] <= s) & (s <= sb[1]))
    assert atoms.calc.get_property("energy_std", atoms) > 0
    assert atoms.calc.get_property("forces_std", atoms).shape == (len(atoms), 3)
    p = model.predict([atoms], return_std=True, return_bounds=True)[0]
    for name in UQ_PROPERTIES:
        np.testing.assert_allclose(atoms.calc.get_property(name, atoms), p[name], rtol=1e-12)
    bare = atoms.copy()
    bare.calc = model.as_calculator(coef=model.coef_)  # explicit θ: no posterior properties
    with pytest.raises(PropertyNotImplementedError, match="parameters were given explicitly"):
        bare.calc.get_property("energy_std", bare)
    plain = atoms.copy()
    plain.calc = _copy_without_posterior(model, tmp_path / "plain").as_calculator()
    with pytest.raises(PropertyNotImplementedError, match="no posterior .run `potforge uq`"):
        plain.calc.get_property("forces_bounds", plain)


def test_cli_uq_then_eval_and_fit_with_uq(mo, tmp_path, capsys, mo_test):
    train, _ = mo
    write_extxyz(tmp_path / "train.xyz", train)
    out = tmp_path / "m"
    assert (
        main(["fit", "--train", str(tmp_path / "train.xyz"), "--out", str(out), "--model", SPEC])
        == 0
    )
    assert not (out / POSTERIOR_FILE).exists()
    capsys.readouterr()
    assert main(["uq", "--model", str(out), "--train", str(tmp_path / "train.xyz")]) == 0
    text = capsys.readouterr().out
    assert "posterior: pops" in text and "training coverage: energies 1.000" in text
    assert (out / POSTERIOR_FILE).exists() and (out / "lammps" / "potential.in").exists()
    doc = json.loads((out / "model.json").read_text())
    assert doc["posterior"]["method"] == "pops" and doc["posterior"]["file"] == POSTERIOR_FILE
    assert (
        main(
            [
                "eval",
                "--model",
                str(out),
                "--data",
                str(mo_test),
                "--stress-order",
                "mlearn-mo",
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())["test"]
    keys = ("energy_coverage", "force_coverage")
    assert all(0.0 <= ev[k] <= 1.0 for k in keys)
    assert ev["energy_bound_median_meV_per_atom"] > 0 and ev["force_bound_median_eV_per_A"] > 0
    assert ev["force_coverage"] > 0.9
    for g, gm in ev["groups"].items():  # per group too (FitSNAP-style groups)
        assert 0.0 <= gm["force_coverage"] <= 1.0 and gm["force_bound_median_eV_per_A"] > 0, g
    # the leverage filter replaces the posterior and narrows the bounds
    assert (
        main(
            [
                "uq",
                "--model",
                str(out),
                "--train",
                str(tmp_path / "train.xyz"),
                "--leverage-percentile",
                "50",
            ]
        )
        == 0
    )
    assert LinearPotential.load(out).posterior_.info["leverage_percentile"] == 50.0
    assert (
        main(
            [
                "eval",
                "--model",
                str(out),
                "--data",
                str(mo_test),
                "--stress-order",
                "mlearn-mo",
                "--out",
                str(tmp_path / "ev50"),
            ]
        )
        == 0
    )
    ev50 = json.loads((tmp_path / "ev50" / "metrics.json").read_text())["test"]
    assert ev50["force_bound_median_eV_per_A"] < ev["force_bound_median_eV_per_A"]
    # popsregression's percentile clipping of the hypercube, named in the summary
    capsys.readouterr()
    assert (
        main(
            [
                "uq",
                "--model",
                str(out),
                "--train",
                str(tmp_path / "train.xyz"),
                "--posterior",
                "hypercube",
                "--percentile-clipping",
                "5",
            ]
        )
        == 0
    )
    assert "box over" in (text := capsys.readouterr().out)
    assert "clipped to the 5–95 percentiles" in text
    assert "replaced the previous posterior (pops ensemble)" in text
    assert LinearPotential.load(out).posterior_.info["percentile_clipping"] == 5.0
    out2 = tmp_path / "m2"
    assert (
        main(
            [
                "fit",
                "--train",
                str(tmp_path / "train.xyz"),
                "--test",
                str(mo_test),
                "--stress-order",
                "mlearn-mo",
                "--out",
                str(out2),
                "--model",
                SPEC,
                "--uq",
                "bayes",
            ]
        )
        == 0
    )
    met = json.loads((out2 / "metrics.json").read_text())
    for part in ("train", "test"):
        assert all(0.0 <= met[part][k] <= 1.0 for k in keys)
        assert met[part]["force_bound_median_eV_per_A"] > 0
    assert LinearPotential.load(out2).posterior_.method == "bayes"
    # the baselines' own options; an option given for another method is refused, not ignored
    uq = ["uq", "--model", str(out), "--train", str(tmp_path / "train.xyz")]
    assert main([*uq, "--method", "bayes", "--temperature", "frederiksen", "--n-sigma", "3"]) == 0
    info = LinearPotential.load(out).posterior_.info
    assert info["temperature"] > 1.0 and info["n_sigma"] == 3.0
    assert main([*uq, "--residual-percentile", "99"]) == 0
    assert LinearPotential.load(out).posterior_.info["residual_percentile"] == 99.0
    assert main([*uq, "--method", "bootstrap", "--n-members", "4"]) == 0
    assert LinearPotential.load(out).posterior_.info["n_members"] == 4
    capsys.readouterr()
    assert main([*uq, "--method", "bayes", "--percentile-clipping", "5"]) == 2
    assert "--percentile-clipping applies to --method pops only, not --method bayes" in (
        capsys.readouterr().err
    )
    assert main([*uq, "--method", "bayes", "--seed", "3"]) == 2
    assert "--seed applies to --method pops/bootstrap only" in capsys.readouterr().err
    assert (
        main(
            [
                "fit",
                "--train",
                str(tmp_path / "train.xyz"),
                "--out",
                str(tmp_path / "m3"),
                "--model",
                SPEC,
                "--leverage-percentile",
                "50",
            ]
        )
        == 2
    )
    assert "applies to --uq pops only, not --uq none" in capsys.readouterr().err
    assert not (tmp_path / "m3").exists()


def test_cli_uq_bad_input_leaves_the_model_untouched(fitted, tmp_path, capsys):
    model, _ = fitted
    folder = tmp_path / "m"
    _copy_without_posterior(model, tmp_path / "x").save(folder)
    before = (folder / "model.json").read_text()
    rc = main(["uq", "--model", str(folder), "--train", str(tmp_path / "MISSING.xyz")])
    err = capsys.readouterr().err
    assert rc == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    assert (folder / "model.json").read_text() == before
    assert not (folder / POSTERIOR_FILE).exists() and not list(tmp_path.glob(".m.*"))


def test_bad_inputs(fitted, mo, tmp_path):
    model, designs = fitted
    train, test = mo
    with pytest.raises(NotFittedError, match="not fitted"):
        LinearPotential(SPEC).fit_posterior(train)
    model.save(tmp_path / "c")
    (tmp_path / "c" / POSTERIOR_FILE).unlink()
    with pytest.raises(DataError, match="posterior.npz: no such file"):
        LinearPotential.load(tmp_path / "c")
    copy = LinearPotential(SPEC).setup(train)
    copy.coef_ = model.coef_.copy()
    with pytest.raises(NotFittedError, match="no posterior: call fit_posterior"):
        copy.functional_bounds(np.eye(copy.n_params))
    with pytest.raises(NotFittedError, match="no posterior"):
        copy.predict(test[:1], return_bounds=True)
    with pytest.raises(DataError, match="training structures; none were given"):
        copy.fit_posterior([])
    with pytest.raises(DataError, match="expected ase.Atoms or a sequence of them, got NoneType"):
        copy.fit_posterior(None)
    with pytest.raises(DataError, match="got str"):
        model.predict("test.xyz")
    # a posterior on other data than the fit's is allowed, with a warning
    other = _copy_without_posterior(model, tmp_path / "other")
    with pytest.warns(UserWarning, match=r"not those the model was fitted on \(\d+ structures"):
        other.fit_posterior(test, designs=model.structure_designs(test))
    # a single structure is a list of one
    one = model.predict(test[0], return_bounds=True)
    assert len(one) == 1 and one[0]["energy"] == model.predict(test[:1])[0]["energy"]
    with pytest.raises(ModelError, match="one of pops, bayes, bootstrap, got 'popz'"):
        copy.fit_posterior(train, "popz")
    with pytest.raises(ModelError, match="none of the .* rows has leverage above 1.0"):
        copy.fit_posterior(train, designs=designs, leverage_threshold=1.0)
    with pytest.raises(DataError, match=r"shape \(M, 15\).*got \(3, 4\)"):
        model.functional_bounds(np.ones((3, 4)))
    with pytest.raises(ModelError, match="coef=None"):
        model.predict(test[:1], coef=model.coef_, return_std=True)
    bad = LinearPotential(SPEC).setup(train)
    bad.coef_ = model.coef_.copy()
    bad.coef_[3] = np.inf
    with pytest.raises(ModelError, match="structure 0 .*non-finite energy or force"):
        bad.predict(test[:1])
    # a term without data (W parameters, Mo-only training data): named
    two = LinearPotential("snap(twojmax=2,rcutfac=4.6)+const", elements=["Mo", "W"]).fit(train[:8])
    with pytest.raises(ModelError, match=r"snap\[W\]\.B0.*have no training data"):
        two.fit_posterior(train[:8])
    # rank-deficient rows with an unregularised fit: the unidentifiable parameters are named
    ref = LinearPotential("snap(twojmax=2,rcutfac=4.6)+const", alpha=0.0).fit(train[:8])
    crystal = [attach_labels(bulk("Mo", "bcc", a=3.16, cubic=True), -21.0, np.zeros((2, 3)))]
    with (
        pytest.raises(ModelError, match=r"rank-deficient.*'snap\[Mo\]\.B"),
        pytest.warns(UserWarning, match="not those the model was fitted on"),
    ):
        ref.fit_posterior(crystal)
