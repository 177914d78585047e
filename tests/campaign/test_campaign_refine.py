"""Refinement rounds of ``potforge run``: while a target's calibrated σ exceeds its tolerance
and the budgets allow, select → fit → uq → active → properties run again, information matching
asked for the data that would bring each unmet σ to its tolerance; a round whose data shrank no
unmet σ makes the model richer once, then stops and says why (potforge.campaign.runner.decide,
and a real reduced campaign: LAMMPS oracle, Dask, SQLite)."""

from __future__ import annotations

import json
import tomllib

import pytest
from test_campaign_run import SMALL, labels

from potforge.campaign.config import campaign_from_dict, load_campaign
from potforge.campaign.runner import decide, escalated, run_campaign
from potforge.terms import parse_spec

REFINED = SMALL.replace("oracle_calls = 26", "oracle_calls = 40").replace(
    "[refine]\nrounds = 0", "[refine]\nrounds = 1"
)


def campaign(text: str = REFINED, **edits: str):
    for old, new in edits.items():
        text = text.replace(old, new)
    return campaign_from_dict(tomllib.loads(text), "test")


def end(sigma: dict, tol: dict, calls: int = 20, training=("h1", "h2")) -> dict:
    return {
        "judged": True,
        "training": list(training),
        "calls": calls,
        "sigma": sigma,
        "tolerance": tol,
        "met": {n: None if sigma[n] is None else sigma[n] <= tol[n] for n in sigma},
    }


def first(e: dict) -> list[dict]:
    return [{"round": 0, "tighten": {}, "model": None, "end": e}]


def test_every_target_met_stops():
    nxt, stop = decide(campaign(), first(end({"a0": 0.005}, {"a0": 0.01})), 10.0)
    assert nxt is None and "within its tolerance" in stop


def test_a_round_asks_for_the_data_that_would_meet_each_unmet_target():
    e = end({"a0": 0.02, "C44": 10.0}, {"a0": 0.01, "C44": 20.0}, calls=18)
    nxt, stop = decide(campaign(), first(e), 10.0)
    assert stop == "" and nxt is not None
    assert nxt["round"] == 1 and nxt["calls_at_start"] == 18 and nxt["prior"] == ["h1", "h2"]
    assert nxt["tighten"] == {"a0": pytest.approx(0.5)}  # C44 is met: left as it is
    assert nxt["model"] is None and "more data" in nxt["why"]
    far = end({"a0": 1.0}, {"a0": 0.01})
    assert decide(campaign(), first(far), 10.0)[0]["tighten"] == {"a0": 0.1}  # at most 10×


@pytest.mark.parametrize(
    ("edits", "minutes", "calls", "expected"),
    [
        ({"rounds = 1": "rounds = 0"}, 10.0, 18, "[refine] rounds = 0"),
        ({}, 10.0, 38, "the budget is spent (38 of 40 oracle calls used, 2 kept"),
        ({}, 0.0, 18, "wall-time budget"),
        ({"[select]\n": "[select]\nenabled = false\n"}, 10.0, 18, "[select], [fit]"),
    ],
)
def test_no_round_without_rounds_budget_time_or_selection(edits, minutes, calls, expected):
    e = end({"a0": 0.02}, {"a0": 0.01}, calls=calls)
    nxt, stop = decide(campaign(**edits), first(e), minutes)
    assert nxt is None and expected in stop, stop


def test_a_round_whose_data_did_not_help_makes_snap_quadratic_then_stops():
    c = campaign(**{"rounds = 1": "rounds = 3"})
    r0 = first(end({"a0": 0.02, "C44": 30.0}, {"a0": 0.01, "C44": 20.0}))[0]
    r1 = {"round": 1, "tighten": {"a0": 0.5}, "model": None}
    r1["end"] = end({"a0": 0.0195, "C44": 29.0}, {"a0": 0.01, "C44": 20.0}, calls=30)
    nxt, stop = decide(c, [r0, r1], 10.0)
    assert stop == "" and nxt is not None
    assert nxt["model"] == escalated(c.fit.model) and nxt["tighten"] == {"a0": 0.5}
    assert "shrank no unmet σ by 10%" in nxt["why"] and "a0 0.02 → 0.0195" in nxt["why"]
    r2 = dict(nxt, end=end({"a0": 0.0194, "C44": 28.0}, {"a0": 0.01, "C44": 20.0}, calls=34))
    nxt, stop = decide(c, [r0, r1, r2], 10.0)
    assert nxt is None and "the model's own error limits them" in stop
    assert "[fit] design = true" in stop
    # without escalation the first round that did not help stops
    nxt, stop = decide(campaign(**{"rounds = 1": "rounds = 3\nescalate = false"}), [r0, r1], 9.0)
    assert nxt is None and "a richer [fit] model would" in stop


def test_an_unbounded_sigma_is_left_out_and_a_missing_table_stops_with_the_reason():
    e = end({"a0": None}, {"a0": 0.01})
    nxt, stop = decide(campaign(), first(e), 10.0)
    assert nxt is None and "σ of a0 could not be computed" in stop
    # a round aims at the targets whose σ it can see, and says which it left out
    e = end({"a0": None, "C44": 40.0}, {"a0": 0.01, "C44": 20.0})
    nxt, stop = decide(campaign(), first(e), 10.0)
    assert stop == "" and nxt["tighten"] == {"C44": pytest.approx(0.5)}
    assert "a0 left out: σ not computed" in nxt["why"] and "C44 2" in nxt["why"]
    e = end({"a0": 0.02}, {"a0": 0.01}) | {"judged": False}
    assert "properties stage did not finish" in decide(campaign(), first(e), 10.0)[1]


def test_escalation_makes_only_linear_snap_quadratic():
    spec = escalated("snap(twojmax=2,rcutfac=4.6)+zbl(inner=1.0,outer=1.6)+const")
    assert spec is not None
    terms = {t.kind: t.get_params() for t in parse_spec(spec)}
    assert terms["snap"]["quadratic"] is True and terms["snap"]["twojmax"] == 2
    assert terms["zbl"]["outer"] == 1.6 and "const" in terms
    assert escalated("qsnap(twojmax=2)+const") is None
    assert escalated("pair+embed+const") is None


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "campaign.toml"
    path.write_text(REFINED)
    out = path.parent / "out"
    lines: list[str] = []
    result = run_campaign(load_campaign(path), out, say=lines.append, progress=False)
    return path, out, result, lines


def test_a_further_round_starts_from_every_label_so_far(refined):
    _, out, result, lines = refined
    state = json.loads((out / "state.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [0, 1], lines
    r0, r1 = state["rounds"]
    assert r1["calls_at_start"] == r0["end"]["calls"]
    assert r1["prior"] == r0["end"]["training"] and len(r1["prior"]) >= 10
    assert set(r1["prior"]) <= set(r1["end"]["training"])  # nothing of round 0 dropped
    assert any(line.startswith("— round 1 —") for line in lines), lines
    rounds = [(t["stage"], t["round"]) for t in result.timeline]
    assert rounds[-5:] == [(s, 1) for s in ("select", "fit", "uq", "active", "properties")]
    keys = [k for k, _ in labels(out)]
    assert len(keys) == len(set(keys)) == result.oracle_calls <= 40
    ref = result.properties["refinement"]
    assert [h["round"] for h in ref["rounds"]] == [0, 1] and ref["stop"]
    assert "[refine] rounds" in ref["stop"] or "budget" in ref["stop"] or "within" in ref["stop"]
    for q in result.properties["qois"].values():
        if q["target"] and q["precision_met"] is False:
            assert sum(r.startswith("refinement: ") for r in q["reasons"]) == 1, q["reasons"]
    assert "Refinement rounds" in (out / "report.html").read_text()


def test_a_refined_campaign_resumes_without_recomputing(refined):
    path, out, first_run, _ = refined
    before = labels(out)
    lines: list[str] = []
    again = run_campaign(load_campaign(path), out, say=lines.append, progress=False)
    assert labels(out) == before
    assert not any("— stage" in line for line in lines), lines  # every stage finished before
    assert again.properties["qois"] == first_run.properties["qois"]
    assert [(t["stage"], t["round"]) for t in again.timeline] == [
        (t["stage"], t["round"]) for t in first_run.timeline
    ]
