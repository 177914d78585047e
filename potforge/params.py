"""Declared parameter constraints: one declaration per option.

An estimator lists its parameters' constraints once (as scikit-learn's
``_parameter_constraints``); its checks and the command line's argument types both read that
declaration, so a bad value gets the same sentence from Python (a :class:`ModelError`) and from
the CLI (argparse's exit status 2):

>>> ALPHA = Real(low=0)
>>> ALPHA.check("alpha", -1.0)
Traceback (most recent call last):
...
potforge.errors.ModelError: alpha must be a number ≥ 0, got -1.0
>>> parser.add_argument("--alpha", type=ALPHA.argtype())          # doctest: +SKIP

Standard library only (layer 0): no numpy, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from potforge.errors import ModelError


class Constraint:
    """What values a parameter accepts; :meth:`check` raises one sentence naming it."""

    allow_none: bool = False

    def describe(self) -> str:  # pragma: no cover - every subclass defines it
        """What the constraint accepts, for messages (``a number > 0``)."""
        raise NotImplementedError

    def _accepts(self, value: Any) -> bool:  # pragma: no cover
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """The accepted value in its canonical type (e.g. ``2`` → ``2.0`` for a real)."""
        return value

    def check(self, name: str, value: Any) -> Any:
        """``value`` (converted) when accepted, else a :class:`ModelError` naming ``name``."""
        if value is None and self.allow_none:
            return None
        if not self._accepts(value):
            raise ModelError(f"{name} must be {self.describe()}, got {value!r}")
        return self.convert(value)

    def parse(self, text: str) -> Any:
        """A command-line string as a value (``"none"`` when None is allowed)."""
        if self.allow_none and text.strip().lower() == "none":
            return None
        return text

    def argtype(self) -> Callable[[str], Any]:
        """An argparse ``type=``: parses and checks, errors as ``ArgumentTypeError``."""

        def parse(text: str) -> Any:
            try:
                return self.check("the value", self.parse(text))
            except (ModelError, ValueError):
                raise argparse.ArgumentTypeError(
                    f"must be {self.describe()}, got {text!r}"
                ) from None

        parse.__name__ = self.describe()  # argparse names the type in some messages
        return parse


def is_real(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class Real(Constraint):
    """A finite real number in ``[low, high]`` (``low_open``/``high_open`` exclude an end)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_none: bool = False

    def describe(self) -> str:
        """``a number ≥ low and ≤ high`` (``or none`` when None is allowed)."""
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '≤'} {self.high:g}")
        text = "a number" + (" " + " and ".join(parts) if parts else "")
        return text + (" or none" if self.allow_none else "")

    def _accepts(self, value: Any) -> bool:
        if not is_real(value):
            return False
        v = float(value)
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def convert(self, value: Any) -> float:
        """The value as a float."""
        return float(value)

    def parse(self, text: str) -> Any:
        """A command-line string as a float (or None for ``none`` when allowed)."""
        value = super().parse(text)
        return value if value is None else float(value)


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer in ``[low, high]``."""

    low: int | None = None
    high: int | None = None
    allow_none: bool = False

    def describe(self) -> str:
        """``an integer ≥ low and ≤ high`` (``or none`` when None is allowed)."""
        parts = [f"≥ {self.low}"] if self.low is not None else []
        parts += [f"≤ {self.high}"] if self.high is not None else []
        text = "an integer" + (" " + " and ".join(parts) if parts else "")
        return text + (" or none" if self.allow_none else "")

    def _accepts(self, value: Any) -> bool:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            return False
        number = int(value)  # exact for any Integral
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )

    def convert(self, value: Any) -> int:
        """The value as an int."""
        return int(value)

    def parse(self, text: str) -> Any:
        """A command-line string as an int (or None for ``none`` when allowed)."""
        value = super().parse(text)
        return value if value is None else int(value)


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple = ()
    allow_none: bool = False

    def describe(self) -> str:
        """``one of a, b, c``."""
        return (
            "one of " + ", ".join(map(str, self.values)) + (" or none" if self.allow_none else "")
        )

    def _accepts(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def check(self, name: str, value: Any) -> Any:
        """``value`` when it is one of the options, else a ModelError naming the closest."""
        try:
            return super().check(name, value)
        except ModelError:
            close = difflib.get_close_matches(str(value), [str(v) for v in self.values], 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ModelError(f"{name} must be {self.describe()}, got {value!r}{hint}") from None


@dataclass(frozen=True)
class Boolean(Constraint):
    """``True`` or ``False`` (on the command line: true/false, yes/no, 1/0)."""

    allow_none: bool = False

    def describe(self) -> str:
        """``true or false``."""
        return "true or false"

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def parse(self, text: str) -> Any:
        """true/yes/1 and false/no/0 (any case) as booleans."""
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        return words.get(text.strip().lower(), text)


@dataclass(frozen=True)
class MappingOf(Constraint):
    """A mapping of string keys to values each accepted by ``values``."""

    values: Constraint = Real(low=0)
    allow_none: bool = False

    def describe(self) -> str:
        """``a mapping of names to <values>``."""
        return f"a mapping of names to {self.values.describe()}"

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)

    def check(self, name: str, value: Any) -> Any:
        """The mapping with every value checked by ``values`` (messages name the key)."""
        value = super().check(name, value)
        if value is None:
            return None
        return {k: self.values.check(f"{name}[{k!r}]", v) for k, v in value.items()}


def validate(
    constraints: Mapping[str, Constraint], params: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Check every declared parameter in ``params``; unknown names are errors.

    Parameters
    ----------
    constraints : mapping of str to Constraint
        The declaration.
    params : mapping of str to object
        Values to check (names not declared raise, naming the closest declared one).
    owner : str
        Who the parameters belong to, for messages (e.g. ``"LinearPotential"``).

    Returns
    -------
    dict
        The converted values.
    """
    out = {}
    for name, value in params.items():
        if name not in constraints:
            raise ModelError(unknown_name(name, constraints, f"{owner} has no parameter"))
        out[name] = constraints[name].check(f"{owner} {name}", value)
    return out


def unknown_name(name: str, valid: Iterable[str], what: str) -> str:
    """``"<what> 'nme' (did you mean 'name'?); valid: a, b, name"`` — one sentence."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{what} {name!r}{hint}; valid: {', '.join(valid)}"
