"""Persistence of a :class:`~potforge.model.LinearPotential`: ``model.json`` (exact floats)
and, with a posterior, ``posterior.npz``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from potforge import __version__
from potforge.errors import DataError
from potforge.terms import term_from_dict, term_to_dict
from potforge.uq.centred import ParameterPosterior

if TYPE_CHECKING:
    from potforge.model.estimator import LinearPotential

MODEL_FILE = "model.json"
POSTERIOR_FILE = "posterior.npz"


def save_model(model: LinearPotential, directory: str | Path) -> Path:
    """Write ``model.json`` (exact: floats are written with full precision).

    A posterior (:meth:`fit_posterior`) goes to ``posterior.npz`` (exact float64 arrays)
    with its method, kind and diagnostics under ``"posterior"`` in ``model.json``; a stale
    ``posterior.npz`` of a model without one is removed.
    """
    model._check_fitted()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if model.has_posterior:
        model.posterior_.save_arrays(directory / POSTERIOR_FILE)
    elif (directory / POSTERIOR_FILE).exists():
        (directory / POSTERIOR_FILE).unlink()
    doc = {
        "potforge_version": __version__,
        "elements": model.elements_,
        "terms": [term_to_dict(t) for t in model.terms_],
        "spec": model.terms if isinstance(model.terms, str) else None,
        "params": {k: v for k, v in model.get_params().items() if k != "terms"},
        "coef": [float(c) for c in model.coef_],
        "param_names": model.param_names,
        "fit_info": getattr(model, "fit_info_", {}),
    }
    if model.has_posterior:
        doc["posterior"] = {"file": POSTERIOR_FILE, **model.posterior_.meta()}
    tmp = directory / (MODEL_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(directory / MODEL_FILE)
    return directory / MODEL_FILE


def load_model(
    cls: type[LinearPotential], directory: str | Path, posterior: bool = True
) -> LinearPotential:
    """Read a model written by :meth:`save`; ``posterior=False`` skips its posterior (e.g.
    to replace an unreadable one)."""
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise DataError(f"{path}: no such file (is {directory} a potforge model folder?)")
    try:
        doc = json.loads(path.read_text())
        terms = [term_from_dict(d) for d in doc["terms"]]
        model = cls(doc.get("spec") or terms, **doc["params"])
        model.elements = doc["params"].get("elements")
        for t in terms:
            t.setup(doc["elements"])
        model.terms_, model.elements_ = terms, list(doc["elements"])
        model.coef_ = np.array(doc["coef"], dtype=float)
        model.fit_info_ = doc.get("fit_info", {})
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (expected potforge's JSON)") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed model file ({str(exc)[:200]!r})") from exc
    if len(model.coef_) != model.n_params:
        raise DataError(f"{path}: {len(model.coef_)} coefficients for {model.n_params} parameters")
    meta = doc.get("posterior")
    if meta is not None and posterior:
        if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
            raise DataError(f"{path}: malformed 'posterior' entry (needs a 'file' name)")
        post = ParameterPosterior.load(Path(directory) / meta["file"], meta)
        if post.n_params != model.n_params:
            raise DataError(
                f"{Path(directory) / meta['file']}: posterior has {post.n_params} "
                f"parameters, the model {model.n_params}"
            )
        model.posterior_ = post
    return model
