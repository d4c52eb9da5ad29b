#!/bin/sh
# Builds tiered-pricing.js into a WebAssembly component for kubeop's pricing slot (a test
# component: the languages benchmark and tests/api/languages.rs).
#
#   ./build.sh [OUTPUT]      (default: tiered-pricing.wasm beside this script)
#
# Needs Node.js 18 or later and npm. Runs from any directory.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# An absolute output path before we change directory.
out=${1:-$here/tiered-pricing.wasm}
case $out in
    /*) ;;
    *) out=$(pwd)/$out ;;
esac
# The WIT package this plugin implements.
wit=${KUBEOP_WIT:-$here/../../../wit}

cd "$here"
# Exactly the versions in package-lock.json, nothing resolved anew. package.json also names
# @bytecodealliance/preview2-shim: componentize-js 0.23.0 loads it without declaring it.
npm ci --no-audit --no-fund

# `-d http fetch-event`: without it the component imports wasi:http, which kubeop refuses.
npx --no-install componentize-js tiered-pricing.js \
    --wit "$wit" --world-name pricing \
    -d http fetch-event \
    -o "$out"
echo "built $out"
