"""Model-spec parsing and term settings: every bad spec is one sentence naming the bad part."""

from __future__ import annotations

import pytest

from potforge.errors import ModelError
from potforge.terms import SNAP, ZBL, Embedding, PairSpline, check_terms, make_term, parse_spec


@pytest.mark.parametrize(
    "spec, message",
    [
        # misspelled or unknown names, with the closest valid one
        ("snap(twojmx=6)", r"term 'snap' has no setting 'twojmx' \(did you mean 'twojmax'\?\)"),
        ("snap+pair(ncut=5)", r"term 'pair' has no setting 'ncut' \(did you mean 'rcut'\?\)"),
        ("snp+const", "unknown term 'snp'; did you mean snap\\? \\(valid: const, embed"),
        ("SNAP", "term names are lower case: 'snap'"),
        ("const(x=1)", "term 'const' takes no settings, got 'x'"),
        # values that are not literals
        ("embed(power=abc)", "power=abc is not a literal value"),
        ("snap(quadratic=true)", "quadratic=true is not a literal value .*did you mean True?"),
        ("snap(twojmax=1+2)", "twojmax=1 \\+ 2 is not a literal value"),
        ("snap(6)", "settings must be written key=value"),
        ("snap(twojmax=6, twojmax=8)", "sets twojmax twice"),
        # wrong type or range
        ("snap(twojmax=-2)", "snap twojmax must be an integer ≥ 0, got -2"),
        ("snap(twojmax=6.5)", "snap twojmax must be an integer ≥ 0, got 6.5"),
        ("snap(twojmax='6')", "snap twojmax must be an integer ≥ 0, got '6'"),
        ("snap(twojmax=True)", "snap twojmax must be an integer ≥ 0, got True"),
        ("snap(rcutfac=0)", "snap rcutfac must be a number > 0 and ≤ 20, got 0"),
        ("snap(rfac0=1.5)", "snap rfac0 must be a number > 0 and ≤ 1, got 1.5"),
        ("snap(rmin0=9)", "snap rmin0 must be below the smallest pair cutoff 4.7 Å"),
        ("snap(quadratic=1)", "snap quadratic must be true or false, got 1"),
        ("snap(radii=3)", "snap radii must be a mapping"),
        ("snap(radii={'Xx': 0.5})", "snap radii has key 'Xx', which is not an element symbol"),
        ("snap(wj={'Mo': -1})", "snap wj\\['Mo'\\] must be a number > 0, got -1"),
        ("pair(rcut=0)", "pair rcut must be a number > 0 and ≤ 20, got 0"),
        ("pair(rcut=1e6)", "pair rcut must be a number > 0 and ≤ 20, got 1000000.0"),
        ("qsnap(quadratic=False)", r"qsnap\(quadratic=False\) contradicts it"),
        ("pair(n_basis=0)", "pair n_basis must be an integer ≥ 5, got 0"),
        ("pair(r_min=6)", "pair r_min must be below rcut, got r_min=6 Å and rcut=5.5 Å"),
        ("embed(n_basis=2)", "embed n_basis must be an integer ≥ 4, got 2"),
        ("embed(power=2)", "embed power must be a number ≥ 3, got 2"),
        ("embed(rho_max=-1)", "embed rho_max must be a number > 0 or none, got -1"),
        ("zbl(inner=3)+const", "zbl inner must be below outer"),
        # specs that cannot make a model
        ("snap+snap", "uses term 'snap' twice: a repeat duplicates its columns"),
        ("snap+qsnap", "uses term 'snap' twice \\(qsnap counts as snap\\)"),
        ("zbl+zbl+const", "uses term 'zbl' twice: a repeat counts it twice"),
        ("zbl", "model spec 'zbl' has 0 fittable parameters"),
        # syntax
        ("snap(twojmax=6", "has a '\\(' that is never closed"),
        ("snap)+const", "has a '\\)' without its '\\('"),
        ("snap++const", "has an empty term"),
        ("", "names no terms"),
    ],
)
def test_bad_spec_is_one_sentence(spec, message):
    with pytest.raises(ModelError, match=message) as info:
        parse_spec(spec)
    text = str(info.value)
    assert f"model spec {spec!r}" in text
    assert "\n" not in text
    for leak in ("<ast.", "object at 0x", "__init__", "Traceback"):
        assert leak not in text


@pytest.mark.parametrize(
    "spec, kinds",
    [
        (
            "snap(twojmax=6,rcutfac=4.6)+pair+embed+zbl+const",
            ["snap", "pair", "embed", "zbl", "const"],
        ),
        ("qsnap(twojmax=4)+zbl", ["snap", "zbl"]),
        ("snap(twojmax=5)", ["snap"]),  # odd 2J: half-integer j, accepted by LAMMPS
        ("const", ["const"]),
        (" snap ( twojmax = 4 , radii = {'Mo': 0.5} ) + embed(rho_max=None) ", ["snap", "embed"]),
    ],
)
def test_good_specs(spec, kinds):
    assert [t.kind for t in parse_spec(spec)] == kinds


def test_constructors_check_their_settings():
    """The Python API gets the same sentences as the spec parser."""
    for build, message in [
        (lambda: SNAP(twojmax=-1), "snap twojmax must be an integer ≥ 0"),
        (lambda: PairSpline(rcut=-1.0), "pair rcut must be a number > 0"),
        (lambda: Embedding(power="abc"), "embed power must be a number ≥ 3, got 'abc'"),
        (lambda: ZBL(inner=2.0, outer=1.0), "zbl inner must be below outer"),
        (lambda: make_term("snap", twojmx=6), "did you mean 'twojmax'"),
        (lambda: check_terms([ZBL()]), "the model's term list has 0 fittable parameters"),
        (lambda: check_terms([SNAP(), SNAP()]), "uses term 'snap' twice"),
    ]:
        with pytest.raises(ModelError, match=message):
            build()
