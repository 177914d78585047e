"""Composable terms of a linear potential, and the model-spec mini-language.

A spec is terms joined by ``+``, each ``name`` or ``name(key=value, ...)``, e.g.
``snap(twojmax=6)+pair(n_basis=10)+embed+zbl+const``.
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import Any

from potforge.errors import ModelError
from potforge.terms.base import LammpsPart, Rows, Term, Values
from potforge.terms.embedding import Embedding
from potforge.terms.pair import PairSpline
from potforge.terms.snap import SNAP, ZBL, Constant

REGISTRY: dict[str, type[Term]] = {t.kind: t for t in (SNAP, PairSpline, Embedding, ZBL, Constant)}
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {"qsnap": ("snap", {"quadratic": True})}

_TERM = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$")


def make_term(kind: str, **params: Any) -> Term:
    """Build a term by short name: ``snap``, ``qsnap``, ``pair``, ``embed``, ``zbl``, ``const``."""
    if kind in ALIASES:
        base, extra = ALIASES[kind]
        return make_term(base, **{**extra, **params})
    if kind not in REGISTRY:
        close = difflib.get_close_matches(kind, [*REGISTRY, *ALIASES], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"unknown term '{kind}' (known: {', '.join([*REGISTRY, *ALIASES])}){hint}")
    try:
        return REGISTRY[kind](**params)
    except TypeError as exc:
        raise ModelError(f"term '{kind}': {exc}") from exc


def parse_spec(spec: str) -> list[Term]:
    """Terms of a model spec string such as ``snap(twojmax=8)+pair+embed+zbl+const``."""
    terms = []
    for part in _split(spec):
        m = _TERM.match(part)
        if not m:
            raise ModelError(f"cannot read term '{part}' in model spec '{spec}'")
        params: dict[str, Any] = {}
        if m.group(2) and m.group(2).strip():
            try:
                call = ast.parse(f"f({m.group(2)})", mode="eval").body
                params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
                if call.args:
                    raise ValueError("positional arguments")
            except (SyntaxError, ValueError) as exc:
                raise ModelError(
                    f"term '{part}' in model spec '{spec}': arguments must be "
                    f"key=value literals ({exc})"
                ) from exc
        terms.append(make_term(m.group(1), **params))
    if not terms:
        raise ModelError(f"model spec '{spec}' names no terms")
    return terms


def _split(spec: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in spec:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "+" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in (s.strip() for s in parts) if p]


def term_to_dict(term: Term) -> dict[str, Any]:
    return {"kind": term.kind, "params": term.get_params(), "state": term.state()}


def term_from_dict(d: dict[str, Any]) -> Term:
    term = make_term(d["kind"], **d.get("params", {}))
    term.set_state(d.get("state", {}))
    return term


__all__ = [
    "SNAP",
    "ZBL",
    "Constant",
    "Embedding",
    "LammpsPart",
    "PairSpline",
    "Rows",
    "Term",
    "Values",
    "make_term",
    "parse_spec",
    "term_from_dict",
    "term_to_dict",
]
