#!/bin/sh
# Builds app.py into a WebAssembly component for kubeop's image-policy slot (a test component:
# the languages benchmark and tests/api/languages.rs).
#
#   ./build.sh [OUTPUT]      (default: deny-latest.wasm beside this script)
#
# Needs Python 3.10 or later with venv. Runs from any directory.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# An absolute output path before we change directory.
out=${1:-$here/deny-latest.wasm}
case $out in
    /*) ;;
    *) out=$(pwd)/$out ;;
esac
# The WIT package this plugin implements.
wit=${KUBEOP_WIT:-$here/../../../wit}

cd "$here"
# componentize-py in a virtualenv of its own, at the version requirements.txt pins. Kept between
# builds: pip only checks it the next time.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

# The `wit_world` bindings app.py imports are generated from the WIT here, during the build, so
# they always match the WIT the component is checked against; none are committed.
.venv/bin/componentize-py -d "$wit" -w image-policy componentize app -o "$out"
echo "built $out"
