"""The loop checkpoint on real SQLite files: stages run once, settings checked, SIGKILL resumes.

Run as a script (``python test_checkpoint.py DB CALLS PAUSE``) this file is the toy loop that
the kill test runs in a subprocess.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from potforge.data import Checkpoint, LoopState, Store, label_key
from potforge.errors import DataError

SETTINGS = {"iterations": 4, "candidates": 6, "select": 3, "rattle": 0.08, "seed": 7}
ROOT = Path(__file__).resolve().parents[2]


def _frames(n: int, seed: int = 0) -> list:
    out = []
    for i in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=seed + i)
        out.append(a)
    return out


def test_a_new_loop_stores_its_settings_and_state(tmp_path):
    ck = Checkpoint(tmp_path / "c.db", "active-learning", {"select": 12, "temps": (300, 600)})
    assert ck.settings == {"select": 12, "temps": [300, 600]}
    assert ck.state() == LoopState("active-learning", ck.settings, None, None, ())
    ck.run("generate", 0, lambda st: None)
    ck.run("select", 0, lambda st: None)
    ck.run("generate", 1, lambda st: None)
    again = Checkpoint(
        Store(tmp_path / "c.db"), "active-learning", {"temps": [300.0, 600], "select": 12}
    )
    state = again.state()
    assert (state.stage, state.iteration) == ("generate", 1)
    assert state.done == (("generate", 0), ("select", 0), ("generate", 1))
    assert Checkpoint(tmp_path / "c.db", "active-learning").settings == ck.settings
    other = Checkpoint(tmp_path / "c.db", "information-matching", {"n": 3})  # loops are apart
    assert other.state().done == () and other.settings == {"n": 3}
    assert len(Store(tmp_path / "c.db")) == 0  # no label rows: ase.db sees nothing of this


def test_resuming_with_other_settings_is_refused_in_one_sentence(tmp_path):
    Checkpoint(tmp_path / "c.db", "al", {"select": 12, "temperature": 300, "seed": 1})
    with pytest.raises(DataError) as err:
        Checkpoint(tmp_path / "c.db", "al", {"select": 10, "temperature": 300, "fmax": 0.1})
    text = str(err.value)
    assert "\n" not in text and text.count(";") <= 4
    assert "loop 'al' in" in text and "started with other settings" in text
    assert "fmax: unset then, 0.1 now" in text and "seed: 1 then, unset now" in text
    assert "select: 12 then, 10 now" in text and "allow_new_settings=True" in text
    new = Checkpoint(tmp_path / "c.db", "al", {"select": 10}, allow_new_settings=True)
    assert new.settings == {"select": 10}
    assert Checkpoint(tmp_path / "c.db", "al").settings == {"select": 10}


def test_a_stage_runs_once_and_its_output_comes_back_alike(tmp_path):
    ck = Checkpoint(tmp_path / "c.db", "loop")
    calls = []

    def stage(st):
        calls.append(st.iteration)
        return {"picked": ("a", "b"), "score": 1.5}

    first = ck.run("select", 2, stage)
    assert first == {"picked": ["a", "b"], "score": 1.5}  # the stored form, on a first run too
    assert ck.run("select", 2, stage) == first
    assert Checkpoint(tmp_path / "c.db", "loop").run("select", 2, stage) == first
    assert calls == [2]
    assert ck.is_done("select", 2) and not ck.is_done("select", 3) and not ck.is_done("fit", 2)
    assert ck.output("select", 2) == first and ck.output("fit", 0, "none") == "none"
    with pytest.raises(DataError, match="stage 'fit' 0 of loop 'loop' is not done"):
        ck.output("fit", 0)
    assert ck.run("empty", 0, lambda st: None) is None and ck.is_done("empty", 0)


def test_a_stage_that_fails_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "c.db")
    ck = Checkpoint(store, "gen")

    def broken(st):
        hashes = st.add_candidates(_frames(3), "md")
        st.record_selection(hashes[:2], [0.7, 0.3])
        raise RuntimeError("the explorer crashed")

    with pytest.raises(RuntimeError, match="explorer crashed"):
        ck.run("generate", 0, broken)
    assert store.candidates() == [] and store.selections() == []
    assert not ck.is_done("generate", 0) and ck.state().stage is None
    with pytest.raises(DataError, match="output of stage 'generate' must be plain JSON"):
        ck.run("generate", 0, lambda st: (st.add_candidates(_frames(3), "md"), object()))
    assert store.candidates() == []

    def works(st):
        hashes = st.add_candidates(_frames(3), "md", {"temperature": 900.0})
        return st.record_selection(hashes[:2], [0.7, 0.3])

    picked = ck.run("generate", 0, works)
    assert [a.info["structure_hash"] for a in store.candidates()][:2] == picked
    [sel] = store.selections()
    assert (sel.loop, sel.method, sel.iteration, sel.weights) == ("gen", "gen", 0, (0.7, 0.3))
    info = store.candidates()[0].info
    assert (info["method"], info["loop"], info["iteration"], info["stage"]) == (
        "md",
        "gen",
        0,
        "generate",
    )
    assert info["temperature"] == 900.0 and info["status"] == "candidate"


def test_records_after_the_stage_finished_are_refused(tmp_path):
    ck = Checkpoint(tmp_path / "c.db", "loop")
    kept = []
    ck.run("generate", 0, kept.append)
    with pytest.raises(DataError, match="stage 'generate' 0 of 'loop' is finished"):
        kept[0].add_candidates(_frames(1), "md")


def test_a_stage_another_process_finished_first_keeps_its_records_only(tmp_path):
    db = tmp_path / "c.db"
    mine, theirs = Checkpoint(db, "loop"), Checkpoint(Store(db), "loop")

    def slow(st):  # while this runs, another worker finishes the same stage
        theirs.run("generate", 0, lambda other: other.add_candidates(_frames(2, seed=50), "a"))
        st.add_candidates(_frames(2, seed=90), "b")
        return "mine"

    out = mine.run("generate", 0, slow)
    assert out == theirs.output("generate", 0)
    assert {a.info["method"] for a in Store(db).candidates()} == {"a"}
    assert len(Store(db).candidates()) == 2


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda db: Checkpoint(db, ""), "loop must be a non-empty string"),
        (lambda db: Checkpoint(db, "x", settings=[1]), "must be a dict"),
        (lambda db: Checkpoint(db, "x", {"f": float("nan")}), "must be plain JSON"),
        (lambda db: Checkpoint(db, "x", {"f": object()}), "must be plain JSON"),
        (lambda db: Checkpoint(db, "x").run("s", -1, print), "whole number, 0 or more"),
        (lambda db: Checkpoint(db, "x").run("s", True, print), "whole number, 0 or more"),
        (lambda db: Checkpoint(db, "x").run("", 0, print), "stage must be a non-empty"),
        (
            lambda db: Checkpoint(db, "x").run(
                "s", 0, lambda st: st.record_selection(["a"], [1, 2])
            ),
            "2 weight",
        ),
    ],
)
def test_bad_names_iterations_and_outputs(tmp_path, call, pattern):
    with pytest.raises(DataError, match=pattern):
        call(tmp_path / "c.db")


# ------------------------------------------------------------------------------ the toy loop
def _log(path: str | Path, *words: object) -> None:
    with open(path, "a") as fh:
        fh.write(" ".join(map(str, words)) + "\n")


def toy_loop(db: str | Path, work: str | Path, pause: float = 0.0) -> tuple[LoopState, float]:
    """Generate candidates by rattling the best structure so far, select the most distorted
    with weights, label them with EMT, advance to the lowest energy.  ``work`` gets one line
    per stage started (``stage NAME ITERATION``) and per calculator call (``calc HASH``).

    Returns the loop's state and the seconds it ran after printing "ready"."""
    from potforge.oracles import make_oracle

    store = Store(db)
    ck = Checkpoint(store, "toy", SETTINGS)
    s, key = ck.settings, make_oracle("emt").key
    print("ready", flush=True)
    t0 = time.perf_counter()
    for it in range(s["iterations"]):

        def generate(st, it=it):
            _log(work, "stage", st.name, st.iteration)
            parent = ck.output("advance", it - 1)["parent"] if it else None
            base = st.store.candidates(hashes=[parent])[0] if parent else _frames(1)[0]
            base.info.clear()
            seeds = [s["seed"] * 1000 + 100 * it + k for k in range(s["candidates"])]
            frames = []
            for seed in seeds:
                a = base.copy()
                a.rattle(s["rattle"], seed=seed)
                frames.append(a)
            prov = [{"parent": parent, "seed": seed, "explorer": "rattle"} for seed in seeds]
            return st.add_candidates(frames, "rattle", prov)

        hashes = ck.run("generate", it, generate)

        def select(st, hashes=hashes):
            _log(work, "stage", st.name, st.iteration)
            frames = st.store.candidates(hashes=hashes)
            score = np.array([np.std(a.get_all_distances(mic=True)) for a in frames])
            best = np.argsort(-score, kind="stable")[: s["select"]]
            weights = score[best] / score[best].sum()
            return st.record_selection([hashes[i] for i in best], weights.tolist(), "distortion")

        chosen = ck.run("select", it, select)

        def label(st, chosen=chosen):
            _log(work, "stage", st.name, st.iteration)
            for atoms in st.store.candidates("candidate", key, hashes=chosen):
                shash = atoms.info["structure_hash"]
                _log(work, "calc", shash)
                time.sleep(pause)
                a = atoms.copy()
                a.calc = EMT()
                e, f, stress = a.get_potential_energy(), a.get_forces(), a.get_stress()
                prov = {"structure_hash": shash, "oracle": "emt", "oracle_key": key}
                st.store.write(atoms, label_key(shash, key), "ok", prov, e, f, stress)
            return len(chosen)

        ck.run("label", it, label)

        def advance(st, chosen=chosen):
            _log(work, "stage", st.name, st.iteration)
            energy = {
                a.info["structure_hash"]: a.get_potential_energy() for a in st.store.to_atoms()
            }
            best = min(chosen, key=energy.__getitem__)
            return {"parent": best, "energy": energy[best]}

        ck.run("advance", it, advance)
    return ck.state(), time.perf_counter() - t0


def snapshot(db: str | Path) -> dict:
    """Everything the toy loop leaves in a store, without timestamps."""
    store = Store(db)
    ck = Checkpoint(store, "toy")
    state = ck.state()
    return {
        "candidates": [(a.info, a.positions.tolist(), a.cell.tolist()) for a in store.candidates()],
        "selections": store.selections(),
        "labels": sorted(
            (r.label_key, r.energy, r.forces.tolist(), r.stress.tolist()) for r in store.rows()
        ),
        "stages": [(st, it, ck.output(st, it)) for st, it in state.done],
        "state": (state.stage, state.iteration, state.settings),
    }


def _run_killed(db: Path, work: Path, rng: random.Random, span: float, kills: int) -> int:
    """Run the toy loop, SIGKILL it ``kills`` times at random moments, then to the end."""
    done = 0
    for _ in range(kills + 10):
        proc = subprocess.Popen(
            [sys.executable, __file__, str(db), str(work), "0.02"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
        if done < kills:
            time.sleep(rng.uniform(0.0, 0.9 * span))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                done += 1
                continue
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return done
    pytest.fail("the toy loop did not finish")


def _work(path: Path) -> tuple[list[str], list[str]]:
    """Stages started and calculator calls, from a toy loop's ``work`` file."""
    lines = path.read_text().splitlines()
    return [x for x in lines if x.startswith("stage ")], [x for x in lines if x.startswith("calc ")]


def test_toy_loop_killed_at_random_points_resumes_to_the_same_store(tmp_path):
    ref, span = toy_loop(tmp_path / "ref.db", tmp_path / "ref.work", pause=0.02)
    n_stages, n_labels = 4 * SETTINGS["iterations"], SETTINGS["iterations"] * SETTINGS["select"]
    assert ref.done[-1] == ("advance", SETTINGS["iterations"] - 1) and len(ref.done) == n_stages
    expected = snapshot(tmp_path / "ref.db")
    assert len(expected["candidates"]) == SETTINGS["iterations"] * SETTINGS["candidates"]
    assert len(expected["labels"]) == n_labels
    stages, calcs = _work(tmp_path / "ref.work")
    assert (len(stages), len(set(stages)), len(calcs), len(set(calcs))) == (16, 16, 12, 12)
    landed = 0
    for seed in (1, 2, 3):
        db, work = tmp_path / f"kill{seed}.db", tmp_path / f"kill{seed}.work"
        kills = _run_killed(db, work, random.Random(seed), span, kills=2)
        landed += kills
        got = snapshot(db)
        for part in expected:  # nothing lost, nothing different
            assert got[part] == expected[part], f"seed {seed}: {part} differ after {kills} kill(s)"
        assert Store(db).integrity_ok()
        # nothing repeated: a kill wastes at most the stage and the single point in flight
        got_stages, got_calcs = _work(work)
        assert set(got_stages) == set(stages) and set(got_calcs) == set(calcs)
        assert len(got_stages) <= n_stages + kills, (seed, kills, got_stages)
        assert len(got_calcs) <= n_labels + kills, (seed, kills, len(got_calcs))
    assert landed >= 3, f"only {landed} of 6 kills landed before the loop finished"


if __name__ == "__main__":  # the toy loop, for the kill test
    toy_loop(sys.argv[1], sys.argv[2], float(sys.argv[3]))
