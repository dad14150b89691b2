#!/usr/bin/env bash
# See engines.py. ROUNDS=N sets the number of interleaved rounds (default 5).
set -eu
cd "$(dirname "$0")/.."
exec python3 bench/engines.py "$@"
