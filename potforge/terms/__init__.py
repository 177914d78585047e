"""Composable terms of a linear potential, and the model-spec mini-language.

A spec is terms joined by ``+``, each ``name`` or ``name(key=value, ...)``, e.g.
``snap(twojmax=6)+pair(n_basis=10)+embed+zbl+const`` or ``snap(twojmax=4)+pod(radial3=5)+const``.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence
from typing import Any

from potforge.errors import ModelError
from potforge.params import unknown_name
from potforge.terms.base import LammpsPart, Rows, Term, Values
from potforge.terms.embedding import Embedding
from potforge.terms.pair import PairSpline
from potforge.terms.pod import POD
from potforge.terms.snap import SNAP, ZBL, Constant

REGISTRY: dict[str, type[Term]] = {
    t.kind: t for t in (SNAP, POD, PairSpline, Embedding, ZBL, Constant)
}
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {"qsnap": ("snap", {"quadratic": True})}

_TERM = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_WORDS = {"true": "True", "false": "False", "none": "None", "null": "None"}


def make_term(kind: str, **params: Any) -> Term:
    """Build a term by short name: ``snap``, ``qsnap``, ``pod``, ``pair``, ``embed``, ``zbl``,
    ``const``.

    Raises
    ------
    ModelError
        For an unknown name or setting (naming the closest valid one) and for a bad value.
    """
    if kind in ALIASES:
        base, extra = ALIASES[kind]
        for key, value in extra.items():
            if key in params and params[key] != value:
                raise ModelError(
                    f"{kind} means {base} with {key}={value!r}; {kind}({key}={params[key]!r}) "
                    f"contradicts it: write {base}({key}={params[key]!r})"
                )
        return make_term(base, **{**extra, **params})
    if kind not in REGISTRY:
        known = [*REGISTRY, *ALIASES]
        lower = kind.lower()
        if lower in known:
            raise ModelError(f"unknown term {kind!r} (term names are lower case: {lower!r})")
        close = difflib.get_close_matches(lower, known, 1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ModelError(f"unknown term {kind!r}{hint} (valid: {', '.join(sorted(known))})")
    cls = REGISTRY[kind]
    for key in params:
        if key not in cls.parameters:
            if not cls.parameters:
                raise ModelError(f"term {kind!r} takes no settings, got {key!r}")
            raise ModelError(unknown_name(key, cls.parameters, f"term {kind!r} has no setting"))
    try:
        return cls(**params)
    except TypeError as exc:  # a Term subclass whose parameters table lags its constructor
        raise ModelError(f"term {kind!r}: {exc}") from exc


def parse_spec(spec: str) -> list[Term]:
    """Terms of a model spec string such as ``snap(twojmax=8)+pair+embed+zbl+const``.

    Each term is a name with optional ``key=value`` settings (Python literals: numbers,
    ``True``/``False``, ``None``, quoted strings, lists, dicts); every term may appear once and
    at least one must have fittable parameters (:func:`check_terms`).

    Raises
    ------
    ModelError
        One sentence naming the spec, the term and the bad part.
    """
    if not isinstance(spec, str):
        raise ModelError(f"a model spec must be a string, got {type(spec).__name__}")
    terms = []
    for part in _split(spec):
        m = _TERM.match(part)
        if not m:
            raise ModelError(
                f"model spec {spec!r}: cannot read term {part!r} (write name or "
                "name(key=value, ...))"
            )
        name, args = m.group(1), m.group(2)
        params = _settings(name, args, spec) if args and args.strip() else {}
        try:
            terms.append(make_term(name, **params))
        except ModelError as exc:
            raise ModelError(f"model spec {spec!r}: {exc}") from None
    check_terms(terms, spec)
    return terms


def _settings(name: str, args: str, spec: str) -> dict[str, Any]:
    """The ``key=value`` settings inside one term's parentheses."""
    where = f"model spec {spec!r}: term {name!r}"
    try:
        call = ast.parse(f"f({args})", mode="eval").body
    except SyntaxError as exc:
        raise ModelError(
            f"{where}: cannot read its settings ({exc.msg}); write key=value, e.g. snap(twojmax=6)"
        ) from None
    if not isinstance(call, ast.Call) or call.args:
        raise ModelError(f"{where}: settings must be written key=value, e.g. snap(twojmax=6)")
    params: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise ModelError(f"{where}: settings must be written key=value, not **")
        if kw.arg in params:
            raise ModelError(f"{where}: sets {kw.arg} twice")
        try:
            params[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            text = ast.unparse(kw.value)
            hint = f"; did you mean {_WORDS[text.lower()]}?" if text.lower() in _WORDS else ""
            raise ModelError(
                f"{where}: {kw.arg}={text} is not a literal value (use a number, True/False, "
                f"None, a quoted string, a list or a dict){hint}"
            ) from None
    return params


def check_terms(terms: Sequence[Term], spec: str | None = None) -> None:
    """Refuse a term list that cannot make a model: a repeated term, or nothing to fit.

    A repeated term (``snap+snap``, or ``snap+qsnap``) duplicates design columns, which makes
    the fit singular and the LAMMPS export ambiguous; a list of fixed terms only (``zbl``) has
    no parameters to fit.

    Parameters
    ----------
    terms : sequence of Term
    spec : str, optional
        The spec text, for messages.

    Raises
    ------
    ModelError
    """
    what = f"model spec {spec!r}" if spec is not None else "the model's term list"
    if not terms:
        raise ModelError(f"{what} names no terms")
    seen: set[str] = set()
    for t in terms:
        if t.kind in seen:
            alias = [a for a, (base, _) in ALIASES.items() if base == t.kind]
            also = (
                f" ({', '.join(alias)} counts as {t.kind})"
                if alias and spec and any(a in spec for a in alias)
                else ""
            )
            harm = "counts it twice" if t.fixed else "duplicates its columns"
            raise ModelError(
                f"{what} uses term {t.kind!r} twice{also}: a repeat {harm}, so use each term once"
            )
        seen.add(t.kind)
    if all(t.fixed for t in terms):
        fixed = ", ".join(t.kind for t in terms)
        raise ModelError(
            f"{what} has 0 fittable parameters ({fixed}: fixed reference term); add a term "
            "with parameters such as snap, pair, embed or const"
        )


def _split(spec: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in spec:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth < 0:
            raise ModelError(f"model spec {spec!r} has a ')' without its '('")
        if ch == "+" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise ModelError(f"model spec {spec!r} has a '(' that is never closed")
    parts.append(cur)
    parts = [p.strip() for p in parts]
    if not any(parts):
        raise ModelError(f"model spec {spec!r} names no terms")
    if not all(parts):
        raise ModelError(
            f"model spec {spec!r} has an empty term (two '+' in a row, or a '+' at an end)"
        )
    return parts


def term_to_dict(term: Term) -> dict[str, Any]:
    """A term as JSON-able ``{kind, params, state}`` (``model.json``)."""
    return {"kind": term.kind, "params": term.get_params(), "state": term.state()}


def term_from_dict(d: dict[str, Any]) -> Term:
    """The term :func:`term_to_dict` wrote."""
    term = make_term(d["kind"], **d.get("params", {}))
    term.set_state(d.get("state", {}))
    return term


__all__ = [
    "SNAP",
    "POD",
    "ZBL",
    "Constant",
    "Embedding",
    "LammpsPart",
    "PairSpline",
    "Rows",
    "Term",
    "Values",
    "check_terms",
    "make_term",
    "parse_spec",
    "term_from_dict",
    "term_to_dict",
]
