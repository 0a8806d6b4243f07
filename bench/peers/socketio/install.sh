#!/usr/bin/env bash
# Installs the Socket.IO peer and the Node load generator's packages, pinned by package-lock.json.
# Not part of `make test`: only bench/peers/compare.py needs them.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
