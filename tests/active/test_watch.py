"""``potforge watch`` on real LAMMPS dumps: MD of 54-atom bcc W run by LAMMPS itself with the
exported potential of a small fitted model (SNAP 2J=6 + ZBL, trained on strained cells and
mildly rattled 54-atom cells labelled by the shipped W SNAP): 300 K frames are mostly not
flagged, 3000 K and 12 %-compressed frames are; the CSV has one row per frame and U equals
``max_devi_f`` of the model's posterior samples; extxyz input gives the same; bad input exits 2."""

from __future__ import annotations

import csv
import re

import ase.io
import numpy as np
import pytest

from potforge.active.uncertainty import max_devi_f
from potforge.active.watch import screen, training_grade
from potforge.cli import main
from potforge.data.builders import A_W, w_structures
from potforge.data.readers import write_extxyz
from potforge.engines.lammps import new_lammps
from potforge.errors import DataError
from potforge.model import LinearPotential
from potforge.oracles import make_oracle
from potforge.oracles.labelling import label_in_process

SPEC = "snap(twojmax=6)+zbl(inner=1.0,outer=1.6)+const"
LINE = re.compile(
    r"^frame (\d+) \(step (\d+)\): U [\d.e+-]+ eV/Å( > [\d.e+-]+)?, atom \d+; "
    r"γ [\d.e+-]+( > 5)? at atom \d+$"
)


def lammps_md(path, potential, temp, a, steps=300, every=15, seed=7):
    """NVT MD of a 3×3×3 bcc cell in LAMMPS with ``potential`` (an include file), dumped."""
    lmp = new_lammps()
    try:
        lmp.commands_list(
            [
                "units metal",
                "atom_style atomic",
                "boundary p p p",
                f"lattice bcc {a}",
                "region box block 0 3 0 3 0 3",
                "create_box 1 box",
                "create_atoms 1 box",
                f"include {potential}",
                f"velocity all create {2 * temp} {seed} mom yes rot yes dist gaussian",
                f"fix nvt all nvt temp {temp} {temp} 0.1",
                "timestep 0.001",
                f"dump d all custom {every} {path} id type x y z",
                "dump_modify d sort id",
                f"run {steps}",
            ]
        )
    finally:
        lmp.close()
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    s = w_structures()
    train = label_in_process(
        s[:6] + s[16:21], make_oracle("lammps:W_2940_2017_2.snap").build()
    )  # 6 strained 2-atom cells, 5 rattled 54-atom cells (0.04–0.09 Å)
    model = LinearPotential(SPEC).fit(train)
    bare = root / "bare"
    model.save(bare)  # no posterior yet
    model.fit_posterior(train)
    model.save(root / "model")
    write_extxyz(root / "train.xyz", train)
    pot = model.to_lammps(root / "lammps")
    dumps = {
        "cold": lammps_md(root / "cold.dump", pot, 300, A_W),
        "hot": lammps_md(root / "hot.dump", pot, 3000, A_W),
        "compressed": lammps_md(root / "compressed.dump", pot, 300, 0.88 * A_W),
    }
    return {"root": root, "model": model, "train": train, "bare": bare, **dumps}


def watch(case, dump, *extra, out=None):
    argv = ["watch", str(dump), "--model", str(case["root"] / "model"), "--elements", "W"]
    argv += list(extra) + (["--out", str(out)] if out else [])
    return main(argv)


def rows(folder):
    with open(folder / "watch.csv") as fh:
        return list(csv.DictReader(fh))


def test_hot_and_compressed_flagged_cold_not(case, tmp_path, capsys):
    train = str(case["root"] / "train.xyz")
    flagged = {}
    for name in ("cold", "hot", "compressed"):
        out = tmp_path / name
        assert watch(case, case[name], "--train", train, out=out) == 0
        text = capsys.readouterr().out
        lines = text.splitlines()
        assert "mean + 3 std of U on the 11 training structures" in text, text
        assert re.search(r"active set of \d+ chosen from 846 of 846 rows of 11 structures", text)
        r = rows(out)
        assert len(r) == 21 and [int(x["frame"]) for x in r] == list(range(21))
        assert [int(x["step"]) for x in r] == list(range(0, 301, 15))
        flags = [int(x["flagged"]) for x in r]
        frame_lines = [m for m in map(LINE.match, lines) if m]
        assert [int(m.group(1)) for m in frame_lines] == [k for k, f in enumerate(flags) if f]
        summary = [x for x in lines if "frames flagged" in x]
        assert summary and summary[0].startswith(f"{sum(flags)} of 21 frames flagged")
        assert (out / "watch.png").stat().st_size > 1000
        flagged[name] = sum(flags)
        with capsys.disabled():
            print(f"\n{name}: {summary[0]}")
    assert flagged["cold"] <= 2  # 300 K: within the training data
    assert flagged["hot"] >= 17 and flagged["compressed"] >= 17  # all but the first frames


def test_u_is_max_devi_f_of_the_posterior_samples_and_grade_is_training_bounded(case, tmp_path):
    model = case["model"]
    out = tmp_path / "w"
    assert watch(case, case["hot"], "--members", "8", "--seed", "3", out=out) == 0
    r = rows(out)
    frames = ase.io.read(case["hot"], index=":", format="lammps-dump-text")
    coefs = model.sample_coef(8, seed=3)
    for k in (0, 7, 20):
        f = frames[k]
        f.set_chemical_symbols(["W"] * len(f))
        forces = model.predict_designs(model.structure_designs([f], progress=False), coefs)
        assert float(r[k]["U_eV_per_A"]) == pytest.approx(max_devi_f(forces[0]["forces"]), 1e-5)
        assert r[k]["max_gamma"] == ""  # no --train
    designs = model.structure_designs(case["train"], progress=False)
    grade = training_grade(model, designs)
    res = screen(model, case["train"], model.sample_coef(8, seed=3), grade)
    assert res.gamma is not None and res.gamma.max() <= 1.02  # MaxVol tolerance 1.01


def test_default_threshold_without_train_and_extxyz_input(case, tmp_path, capsys):
    frames = ase.io.read(case["cold"], index=":", format="lammps-dump-text")
    for f in frames:
        f.set_chemical_symbols(["W"] * len(f))
        f.info = {"step": f.info["timestep"]}
    traj = tmp_path / "cold.xyz"
    write_extxyz(traj, frames)
    a, b = tmp_path / "a", tmp_path / "b"
    assert watch(case, case["cold"], out=a) == 0
    text = capsys.readouterr().out
    assert "U > 0.1 eV/Å (default without --train)" in text and "no γ" in text
    argv = ["watch", str(traj), "--model", str(case["root"] / "model"), "--out", str(b)]
    assert main(argv) == 0
    ua = [float(x["U_eV_per_A"]) for x in rows(a)]
    ub = [float(x["U_eV_per_A"]) for x in rows(b)]
    assert np.allclose(ua, ub, rtol=1e-6) and [x["step"] for x in rows(b)] == [
        x["step"] for x in rows(a)
    ]


def test_incomplete_last_frame_of_a_running_dump_is_skipped(case, tmp_path, capsys):
    lines = case["cold"].read_text().splitlines(keepends=True)
    cut = tmp_path / "running.dump"
    cut.write_text("".join(lines[:-20]))  # the run is writing frame 20
    out = tmp_path / "o"
    assert watch(case, cut, out=out) == 0
    err = capsys.readouterr().err
    assert "potforge watch: warning:" in err and "still writing" in err, err
    assert len(rows(out)) == 20


@pytest.mark.parametrize(
    "change, words",
    [
        ({"dump": "missing.dump"}, "no such file"),
        ({"elements": None}, "names atom types (1), not elements"),
        ({"elements": None, "types": ["2=W"]}, "atom type(s) 1 that --elements/--types"),
        ({"elements": "Mo"}, "holds Mo, which the model does not know"),
        ({"elements": "Xx"}, "'Xx' (type 1) is not an element symbol"),
        ({"types": ["1=W"]}, "give --elements or --types, not both"),
        ({"model": "bare"}, "has no posterior (posterior.npz), which U needs: fit one with "),
    ],
)
def test_bad_input_is_one_sentence_exit_2(case, tmp_path, capsys, change, words):
    root = case["root"]
    dump = tmp_path / change["dump"] if "dump" in change else case["cold"]
    model = root / change.get("model", "model")
    argv = ["watch", str(dump), "--model", str(model)]
    elements = change.get("elements", "W")
    if elements:
        argv += ["--elements", elements]
    if "types" in change:
        argv += ["--types", *change["types"]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    if "model" in change:
        assert f"potforge uq --model {model} --train FILE" in err[0]


def test_big_training_set_is_subsampled_and_said(case, tmp_path, capsys):
    train = str(case["root"] / "train.xyz")
    assert watch(case, case["cold"], "--train", train, "--max-rows", "300") == 0
    out = capsys.readouterr().out
    assert "chosen from 300 of 846 rows (a random subsample) of 11 structures" in out


def test_screen_in_threads_matches_and_gives_pops_halfwidth_energy(case):
    """Two threads give the very same numbers as one; the POPS half-width is the max over atoms
    of half the bound width, and every frame lies inside its own bounds' spread."""
    from potforge.active.uncertainty import bound_halfwidth

    model = case["model"]
    frames = ase.io.read(case["hot"], index=":12", format="lammps-dump-text")
    for f in frames:
        f.set_chemical_symbols(["W"] * len(f))
    coefs = model.sample_coef(8, seed=1)
    one = screen(model, frames, coefs, chunk=5, halfwidth=True)
    two = screen(model, frames, coefs, chunk=5, halfwidth=True, threads=2)
    for key in ("u", "u_atom", "energy", "descriptor", "halfwidth"):
        np.testing.assert_array_equal(getattr(one, key), getattr(two, key))
    preds = model.predict_designs(model.structure_designs(frames), return_bounds=True)
    for k, p in enumerate(preds):
        assert one.energy[k] == pytest.approx(p["energy"] / len(frames[k]), rel=1e-12)
        lo, hi = p["forces_bounds"]
        half = np.linalg.norm(hi - lo, axis=1) / 2
        assert one.halfwidth[k] == pytest.approx(half.max(), rel=1e-12)
        np.testing.assert_allclose(bound_halfwidth(p["forces_bounds"]), half)
    assert one.signal("pops_halfwidth") is one.halfwidth and one.signal("max_devi_f") is one.u
    with pytest.raises(DataError, match="did you mean 'max_devi_f'"):
        one.signal("max_devi")
    bare = LinearPotential.load(case["bare"])
    with pytest.raises(DataError, match="needs a model with a posterior"):
        screen(bare, frames, coefs, halfwidth=True)
    with pytest.raises(DataError, match="threads must be ≥ 1"):
        screen(model, frames, coefs, threads=0)
