#!/usr/bin/env bash
# Set up (system packages included) and run the tests: the default suite, then the bounded slow step.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test,dft
. .venv/bin/activate
ruff check potforge tests benchmarks
ruff format --check potforge tests benchmarks
lint-imports  # the layer contract (pyproject.toml [tool.importlinter])
mypy          # --check-untyped-defs on the package (pyproject.toml [tool.mypy])
python -m pytest -q "$@"
if [[ -z "${POTFORGE_SKIP_SLOW:-}" && $# -eq 0 ]]; then
  timeout 1500 python -m pytest -q -m slow
fi
