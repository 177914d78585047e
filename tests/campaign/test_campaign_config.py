"""The campaign configuration: loading, validation sentences, the resolved TOML round trip and
campaign identity (potforge.campaign.config)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from potforge.campaign.config import (
    DEFAULT_CAMPAIGN,
    STAGES,
    Campaign,
    TargetSpec,
    check_same_campaign,
    default_campaign,
    fingerprint,
    load_campaign,
    resolved_toml,
    toml_value,
)
from potforge.errors import DataError

W_SNAP = "lammps:W_2940_2017_2.snap"
BASE = f"""
elements = ["W"]
oracle = "{W_SNAP}"
[targets]
a0 = 0.005
C44 = "5%"
"""


def write(tmp_path: Path, text: str, name: str = "campaign.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> Campaign:
    return load_campaign(write(tmp_path, text))


def fails(tmp_path: Path, text: str, *parts: str) -> str:
    """Loading ``text`` is one DataError sentence naming the file and every one of ``parts``."""
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_campaign(path)
    message = str(info.value)
    assert str(path) in message
    for part in parts:
        assert part in message, message
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------ default
def test_default_campaign_loads():
    c = default_campaign()
    assert c.elements == ("W",)
    assert c.oracle == W_SNAP
    assert c.target_names == ["a0", "C11", "C12", "C44", "Evac", "gamma_surf_110", "usf_110"]
    by_name = {t.name: t for t in c.targets}
    assert by_name["a0"] == TargetSpec("a0", 0.005)
    assert by_name["C44"] == TargetSpec("C44", 5.0, relative=True)
    assert by_name["C44"].target().tolerance == pytest.approx(0.05)
    assert c.budget.oracle_calls == 60 and c.budget.minutes == 5.0
    assert c.enabled_stages() == list(STAGES)
    assert c.store is None and c.scheduler is None
    assert c.make_oracle().spec == W_SNAP


def test_default_campaign_from_a_file_equals_default(tmp_path):
    assert load(tmp_path, DEFAULT_CAMPAIGN) == default_campaign()


def test_minimal_campaign_takes_the_cli_defaults(tmp_path):
    c = load(tmp_path, BASE)
    assert c.generate.atoms == (8, 64) and c.generate.volume == (0.8, 1.2)
    assert c.select.init == 5 and c.select.max_iterations == 20
    assert c.select.precision.force == 0.05
    assert c.fit.sigma_force == 0.2 and c.fit.design is False
    assert c.uq.method == "pops" and c.active.acquisition == "pu_pe"
    assert c.active.temperatures == (300.0, 1500.0, 3000.0)
    assert c.properties.uq == "auto"
    assert c.property_settings["vacancy_size"] == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 1  # type: ignore[misc]


def test_selection_targets_are_those_of_a_targets_file(tmp_path):
    c = load(tmp_path, BASE + "Evac = { tolerance = 0.1, indirect = true }\n")
    t = c.selection_targets()
    assert t.names == ["a0", "C44"]
    assert [x.name for x in t.indirect] == ["Evac"]
    assert t.targets[1].relative and t.targets[1].tolerance == pytest.approx(0.05)
    assert t.precision.energy == c.select.precision.energy


# --------------------------------------------------------------------------------- round trip
def test_resolved_toml_round_trips_the_default():
    c = default_campaign()
    text = resolved_toml(c)
    assert campaign_of(text) == c
    assert resolved_toml(campaign_of(text)) == text  # deterministic


def campaign_of(text: str) -> Campaign:
    from potforge.campaign.config import campaign_from_dict

    return campaign_from_dict(tomllib.loads(text), "resolved")


def test_resolved_toml_round_trips_every_kind_of_value(tmp_path):
    text = f"""
elements = ["W"]
oracle = "{W_SNAP}"
workers = 3
scheduler = "tcp://10.0.0.1:8786"
store = "postgresql://me@db:5432/w"
seed = 7
[oracle_settings]
elements = ["W"]
[property_settings]
vacancy_size = 4
structure = "bcc"
[targets]
a0 = 0.1e-2
C11 = "2.5%"
C12 = "7%"
Evac = {{ tolerance = 0.1, indirect = true }}
B = {{ tolerance = "3%" }}
[generate]
volume = [0.9, 1]
[fit]
alpha = 1e-300
sigma_energy = 0.30000000000000004
[select]
pool = "my pool/ünïcode \\"quoted\\".extxyz"
[select.precision]
stress = 0.2
[active]
enabled = false
starts = ["liquid"]
temperatures = [1234.5]
[properties]
extra = ["Ecoh", "gamma_surf_100"]
"""
    c = load(tmp_path, text)
    assert c.generate.volume == (0.9, 1.0)
    assert c.property_settings["structure"] == "bcc"
    again = load_campaign(write(tmp_path, resolved_toml(c), "resolved.toml"))
    assert again == c
    assert again.fit.sigma_energy == 0.30000000000000004 and again.fit.alpha == 1e-300
    assert again.select.pool == 'my pool/ünïcode "quoted".extxyz'
    assert {t.name: t.tolerance for t in again.targets}["C11"] == 2.5


@pytest.mark.parametrize(
    "value", [0.1, 1e-300, 1e300, -2.5e-7, 0.30000000000000004, 7, True, 'a"b\\c\tü', [1, 2.0]]
)
def test_toml_value_is_exact(value):
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value


# -------------------------------------------------------------------------------- bad inputs
def test_unknown_top_level_key_names_the_closest(tmp_path):
    fails(tmp_path, "seeed = 1\n" + BASE, "top-level", "'seeed'", "did you mean 'seed'")


def test_unknown_top_level_key_before_the_first_table(tmp_path):
    text = f'elemnts = ["W"]\noracle = "{W_SNAP}"\n[targets]\na0 = 0.005\n'
    fails(tmp_path, text, "top-level", "'elemnts'", "did you mean 'elements'")


def test_unknown_key_in_a_stage_names_the_table_and_the_closest(tmp_path):
    fails(tmp_path, BASE + "[generate]\natom = [8, 16]\n", "[generate]", "'atom'", "'atoms'")
    fails(
        tmp_path,
        BASE + "[select.precision]\nenergi = 0.01\n",
        "[select.precision]",
        "'energi'",
        "'energy'",
    )
    fails(tmp_path, BASE + "[actve]\nsteps = 10\n", "'actve'", "'active'")


def test_wrong_type_names_key_value_and_what_is_allowed(tmp_path):
    fails(tmp_path, BASE + '[generate]\nn = "ten"\n', "[generate] n", "'ten'", "integer ≥ 0")
    fails(tmp_path, "workers = 0\n" + BASE, "workers", "0", "integer ≥ 1")
    fails(tmp_path, BASE + '[uq]\nmethod = "popz"\n', "[uq] method", "'popz'", "pops")
    fails(tmp_path, BASE + "[active]\nenabled = 1\n", "[active] enabled", "true or false")
    fails(tmp_path, BASE + "[generate]\natoms = [64, 8]\n", "[generate] atoms", "LOW ≤ HIGH")
    fails(tmp_path, BASE + "[generate]\nvolume = 1.0\n", "[generate] volume", "[LOW, HIGH]")
    fails(tmp_path, BASE + '[active]\nstarts = ["bulk", "void"]\n', "[active] starts", "'void'")
    fails(tmp_path, BASE + "[budget]\nminutes = -1\n", "[budget] minutes", "-1", "> 0")
    fails(tmp_path, "budget = 60\n" + BASE, "[budget] must be a table")
    fails(tmp_path, BASE + '[fit]\nmodel = "snap(twojmax=7"\n', "[fit] model", "snap(twojmax=7")
    fails(tmp_path, BASE + "[property_settings]\nvacancy_sise = 4\n", "vacancy_size")


def test_unknown_qoi_names_the_closest(tmp_path):
    fails(tmp_path, BASE + "C_44 = 1.0\n", "[targets]", "'C_44'", "did you mean 'C44'")
    fails(tmp_path, BASE + "evac = 0.1\n", "'evac'", "did you mean 'Evac'")
    fails(tmp_path, BASE + '[properties]\nextra = ["Bulk"]\n', "[properties] extra", "'Bulk'")


def test_qoi_not_defined_for_the_element_lattice(tmp_path):
    fails(tmp_path, BASE + "usf_111 = 0.05\n", "[targets]", "usf_111", "fcc")


@pytest.mark.parametrize(
    ("value", "part"),
    [('"five%"', "is not a tolerance"), ("-0.1", "positive"), ('"0%"', "positive"),
     ("true", "is not a tolerance"), ('{ tolerence = 1 }', "'tolerance'")],
)  # fmt: skip
def test_bad_tolerance(tmp_path, value, part):
    fails(tmp_path, BASE + f"Evac = {value}\n", "[targets] Evac", part)


def test_unknown_element(tmp_path):
    fails(tmp_path, BASE.replace('["W"]', '["Wx"]'), "'Wx'", "not a chemical element")
    fails(tmp_path, BASE.replace('["W"]', '["w"]'), "did you mean 'W'")
    fails(tmp_path, BASE.replace('["W"]', '"W"'), "elements must be a non-empty list")


def test_missing_required_key(tmp_path):
    fails(tmp_path, f'elements = ["W"]\noracle = "{W_SNAP}"\n', "targets is missing")


def test_bad_oracle_spec_is_a_data_error(tmp_path):
    fails(tmp_path, BASE.replace(W_SNAP, "lammps:W_2940.snap"), "oracle", "W_2940_2017_2.snap")
    fails(tmp_path, BASE.replace(W_SNAP, "gpw"), "oracle", "did you mean gpaw")
    fails(tmp_path, BASE.replace('["W"]', '["W", "Mo"]'), "describes W only, not Mo")
    fails(tmp_path, BASE + "[oracle_settings]\necut = 400\n", "oracle", "ecut")


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(DataError, match="cannot read campaign file"):
        load_campaign(tmp_path / "absent.toml")
    fails(tmp_path, BASE + "[generate\n", "not valid TOML")


# ---------------------------------------------------------------------------------- stages
def test_disabling_a_stage(tmp_path):
    c = load(tmp_path, BASE + "[active]\nenabled = false\n[uq]\nenabled = false\n")
    assert not c.active.enabled and not c.uq.enabled
    assert c.enabled_stages() == ["generate", "select", "fit", "properties"]
    assert tomllib.loads(resolved_toml(c))["active"]["enabled"] is False
    assert campaign_of(resolved_toml(c)) == c


# -------------------------------------------------------------------------------- identity
def test_same_campaign_with_other_stage_settings(tmp_path):
    old = load(tmp_path, BASE)
    new = load(tmp_path, BASE + "[generate]\nn = 5\n[active]\nenabled = false\n[budget]\n"
               "oracle_calls = 3\n")  # fmt: skip
    check_same_campaign(old, new)
    assert fingerprint(old) == fingerprint(new)


def test_other_elements_oracle_or_targets_is_another_campaign(tmp_path):
    old = load(tmp_path, BASE)
    emt = load(tmp_path, BASE.replace(W_SNAP, "emt"))
    with pytest.raises(DataError, match=r"another oracle \(emt, not lammps:W_2940_2017_2.snap\)"):
        check_same_campaign(old, emt)
    mo = load(tmp_path, BASE.replace(W_SNAP, "emt").replace('["W"]', '["Mo"]'))
    with pytest.raises(DataError, match=r"other elements \(Mo, not W\)") as info:
        check_same_campaign(emt, mo)
    assert "oracle" not in str(info.value)
    other = load(tmp_path, BASE.replace('"5%"', '"2%"') + "Evac = 0.1\n")
    with pytest.raises(DataError, match="other targets") as info:
        check_same_campaign(old, other)
    assert "C44 5% → 2%" in str(info.value) and "added Evac" in str(info.value)
    with pytest.raises(DataError, match="dropped Evac"):
        check_same_campaign(other, old)
    mixed = load(tmp_path, BASE.replace(W_SNAP, "emt").replace('["W"]', '["Mo"]') + "B = 1.0\n")
    with pytest.raises(DataError) as info:
        check_same_campaign(old, mixed)
    message = str(info.value)
    assert all(w in message for w in ("elements", "oracle", "added B")) and "\n" not in message
