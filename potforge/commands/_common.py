"""Helpers shared by CLI verbs: output options, config files, JSON writing, and options that
apply to one method only (output folders themselves: :mod:`potforge.commands._output`)."""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any

from potforge.errors import DataError, ModelError


def add_output_options(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--out DIR``, ``--force`` and ``--quiet``."""
    p.add_argument(
        "--out",
        default=default,
        metavar="DIR",
        help="output folder: new or empty, or one potforge wrote (with --force)"
        + (f"; default {default}" if default else ""),
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an output folder an earlier potforge command wrote",
    )
    add_quiet(p)


def add_loop_inputs(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--oracle`` and ``--db``: what a resumable loop (select, explore) needs."""
    p.add_argument(
        "--model", required=True, metavar="DIR|SPEC", help="a saved model folder or a term spec"
    )
    p.add_argument(
        "--oracle", required=True, metavar="SPEC", help="lammps:<file>, gpaw, emt or module:Class"
    )
    p.add_argument(
        "--db",
        required=True,
        metavar="FILE",
        help="campaign database (SQLite file or URL); the loop resumes from it",
    )


def add_quiet(p: argparse.ArgumentParser, log: bool = True) -> None:
    """``--quiet``: no progress bars, nothing on the terminal but warnings and errors."""
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but warnings and errors"
        + (" (output folders still get log.txt)" if log else ""),
    )


def add_stress_order(p: argparse.ArgumentParser) -> None:
    """``--stress-order``: the shear order of mlearn/maml JSON stresses."""
    p.add_argument(
        "--stress-order",
        default=None,
        metavar="ORDER",
        help="shear order of mlearn/maml JSON stresses: vasp (xx yy zz xy yz zx), "
        "mlearn-mo (xx yy zz xy zx yz), voigt (xx yy zz yz zx xy) or e.g. xy,zx,yz "
        "or drop (read no stress; default: detected from each file's sheared cells)",
    )


def read_labelled(files: list[str], stress_order: str | None, show: bool = True) -> list:
    """Read labelled structures from ``files``; print how each JSON file's stress shear
    order was decided (one line per file, also in the output folder's log)."""
    from potforge.data.readers import read_many, stress_orders

    structures = read_many(files, stress_order=stress_order)
    if show:
        for source, how in stress_orders(structures).items():
            print(f"{source}: stress shear order {how}")
    return structures


def capped_jobs(jobs: int) -> int:
    """``--jobs``, at most the machine's cores (with a warning): more processes than cores
    only slow the descriptor pass down."""
    import os
    import warnings

    cores = os.cpu_count() or 1
    if jobs > cores:
        warnings.warn(
            f"--jobs {jobs} is more than the {cores} cores here: using {cores}", stacklevel=2
        )
        return cores
    return jobs


def progress(args: argparse.Namespace) -> bool | None:
    """Progress bars: None (on a terminal only) unless ``--quiet`` (never)."""
    return False if getattr(args, "quiet", False) else None


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``["A=1", "B=x"]`` → ``{"A": "1", "B": "x"}``; a pair without ``=`` is a DataError."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"{flag} needs KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def load_config(
    path: str | Path,
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    skip: tuple[str, ...] = ("config", "func", "command"),
) -> None:
    """Fill ``args`` from a TOML or YAML file whose keys are the command's long options
    (``sigma-force`` or ``sigma_force``); options given on the command line win.

    Each value is checked as the command line would check it (type, choices); an unknown key
    is named with the closest valid one. Raises :class:`DataError` (one sentence).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"--config {path}: not a text file (expected TOML or YAML)") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            import tomllib

            doc = tomllib.loads(text)
    except Exception as exc:  # tomllib / yaml parse errors carry the line
        raise DataError(f"--config {path}: not valid {path.suffix[1:] or 'TOML'} ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"--config {path}: expected a table of option = value")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in skip}
    for key, value in doc.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            names = [d.replace("_", "-") for d in actions]
            close = difflib.get_close_matches(str(key).replace("_", "-"), names, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"--config {path}: unknown key {key!r}{hint}; valid: " + ", ".join(sorted(names))
            )
        action = actions[dest]
        if getattr(args, dest) != parser.get_default(dest):
            continue  # given on the command line
        setattr(args, dest, _config_value(path, key, value, action))


def _config_value(path: Path, key: str, value: Any, action: argparse.Action) -> Any:
    where = f"--config {path}: {key}"
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise DataError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(value, dict) and isinstance(action, argparse._AppendAction):
        value = [f"{k}={v}" for k, v in value.items()]  # group-weight = {AIMD = 0.5}
    items = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise DataError(f"{where} takes one value, got a list")
    out = []
    for v in items:
        text = str(v).lower() if isinstance(v, bool) else str(v)
        convert = action.type
        if isinstance(convert, str):  # a name registered with parser.register: potforge has none
            raise TypeError(f"--config cannot resolve the registered type {convert!r} of {key}")
        try:
            v = convert(text) if convert else text
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise DataError(f"{where}: {exc}") from None
        if action.choices is not None and v not in action.choices:
            raise DataError(
                f"{where} must be one of {', '.join(map(str, action.choices))}, got {v!r}"
            )
        out.append(v)
    return out if many else out[0]


def write_json(path: str | Path, doc: dict) -> None:
    """Write ``doc`` as indented JSON (numpy scalars as floats) to ``path``."""
    Path(path).write_text(json.dumps(doc, indent=2, default=float) + "\n")


def method_options(args, applies: dict[str, tuple[str, ...]], method: str, flag: str) -> dict:
    """The options of ``applies`` (argparse ``dest`` → the methods it is for) that were given
    (not None), by ``dest``; one given for another method than ``method`` is a
    :class:`ModelError` (``flag`` names the option that picks the method)."""
    out = {}
    for dest, methods in applies.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if method not in methods:
            raise ModelError(
                f"--{dest.replace('_', '-')} applies to {flag} {'/'.join(methods)} only, not "
                f"{flag} {method}"
            )
        out[dest] = value
    return out


def uq_line(report: dict) -> str:
    """One line per set: coverage and median half-widths of the posterior's bounds."""
    parts = []
    for name in ("train", "test"):
        m = report.get(name)
        if m and m.get("energy_coverage") is not None:
            e_half, f_half = m["energy_bound_median_meV_per_atom"], m["force_bound_median_eV_per_A"]
            parts.append(
                f"{name}: E {m['energy_coverage']:.3f} (±{e_half:.3g} meV/atom), "
                f"F {m['force_coverage']:.3f} (±{f_half:.3g} eV/Å)"
            )
    return "coverage by the posterior's bounds, " + "; ".join(parts)


LARGE_POSTERIOR_MIB = 50.0
"""Above this size the posterior's line suggests ``--max-members``."""


def posterior_size_line(path: Path, n_members: int | None) -> str:
    """``posterior.npz: 119.1 MiB (31466 members)``, with a ``--max-members`` hint when large."""
    size = Path(path).stat().st_size / 2**20
    line = f"{Path(path).name}: {size:.1f} MiB"
    if n_members:
        line += f" ({n_members} members)"
        if size > LARGE_POSTERIOR_MIB:
            line += "; --max-members K keeps a random K of them (smaller file, faster bounds)"
    return line


def model_template(spec: str):
    """An unfitted model: the parameters of a saved model folder, or a term spec."""
    from potforge.errors import DataError
    from potforge.model import LinearPotential

    path = Path(spec)
    if path.is_dir():
        return LinearPotential(**LinearPotential.load(path, posterior=False).get_params())
    if path.suffix == ".json" or "/" in spec:
        raise DataError(f"--model {spec} is neither a model folder nor a term spec like 'snap+zbl'")
    return LinearPotential(spec)


def add_descriptor_options(p: argparse.ArgumentParser) -> None:
    """``--descriptor``, ``--twojmax``, ``--bandwidth``: the space data sets are compared in."""
    from potforge.params import Integer, Options

    p.add_argument(
        "--descriptor",
        type=Options(("snap", "quests")).argtype(),
        default="snap",
        help="per-atom descriptor (default snap, whitened; quests: raw QUESTS)",
    )
    p.add_argument("--twojmax", type=Integer(low=2).argtype(), default=6, help="SNAP 2J")
    p.add_argument(
        "--bandwidth",
        help="kernel bandwidth: a number, or nearest / silverman for snap (default nearest; "
        "0.015 for quests)",
    )


def bandwidth_value(text: str | None) -> float | str | None:
    """``--bandwidth`` as a rule name or a number > 0."""
    from potforge.errors import DataError

    if text is None or text in ("nearest", "silverman"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"--bandwidth {text!r} must be nearest, silverman or a number") from None
    if not value > 0:
        raise DataError(f"--bandwidth must be > 0, got {text!r}")
    return value


def read_sets(paths, flag: str) -> list:
    """Each path's structures (labels not needed), one list per path."""
    from potforge.data.readers import read_many
    from potforge.errors import DataError

    out = []
    for path in paths:
        found = read_many([path], require=(), validate=False)
        if not found:
            raise DataError(f"{flag} {path}: holds no structures")
        out.append(found)
    return out
