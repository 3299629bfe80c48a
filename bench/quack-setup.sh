#!/usr/bin/env bash
# What bench/quack.ts needs, into $FEATHERMAN_CACHE (never into the image): a Python venv with
# duckdb at the pinned version, and the quack extension from its PyPI wheel at that version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../.ci/versions.env
. "$root/.ci/versions.env"
cache=${FEATHERMAN_CACHE:-$HOME/.cache/featherman}
venv="$cache/quack-venv"
if ! "$venv/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "duckdb==$DUCKDB_VERSION"
fi
mkdir -p "$cache/wheels"
ls "$cache/wheels"/duckdb_extension_quack-"$DUCKDB_VERSION"-*.whl >/dev/null 2>&1 ||
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$cache/wheels" "duckdb-extension-quack==$DUCKDB_VERSION"
echo "quack bench ready: $venv, $(ls "$cache/wheels"/duckdb_extension_quack-"$DUCKDB_VERSION"-*.whl)"
