#!/usr/bin/env bash
# See engines.py. ROUNDS=N sets the number of interleaved rounds (default 5);
# RING3_BIN=PATH runs another ring3 binary than ./ring3.
set -eu
cd "$(dirname "$0")/.."
exec python3 bench/engines.py "$@"
