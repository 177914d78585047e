#!/usr/bin/env bash
# The main job on an embedded default: sets itself up, then runs `potforge run`, the built-in default campaign.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/potforge run "$@"
