#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtual environment in .venv with clipwatch installed.
#   scripts/setup.sh        runtime only (replay and, later, serve: numpy, OpenCV, ONNX Runtime)
#   scripts/setup.sh test   everything the test suite needs (+ torch for training/export, pytest,
#                           Ray and psycopg for the cluster mode)
#   scripts/setup.sh cluster  the runtime and the cluster mode (Ray, psycopg; docs/cluster.md)
# Safe to run again: it reuses .venv and only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: clipwatch needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi

extras=""
case "${1:-}" in
    "") ;;
    test) extras="[train,dev,cluster]" ;;
    train) extras="[train]" ;;
    cluster) extras="[cluster]" ;;
    *) echo "setup: unknown target '$1' (use: test, train, cluster, or nothing)" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
# --quiet keeps CI logs readable; pip still prints errors.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
