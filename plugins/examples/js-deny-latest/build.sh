#!/bin/sh
# Builds deny-latest.js into a WebAssembly component for kubeop's image-policy slot.
#
#   ./build.sh [OUTPUT]      (default: deny-latest.wasm beside this script)
#
# Needs Node.js 18 or later and npm. Runs from any directory.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# An absolute output path before we change directory.
out=${1:-$here/deny-latest.wasm}
case $out in
    /*) ;;
    *) out=$(pwd)/$out ;;
esac
# The WIT package this plugin implements; point it at your copy when you move the example.
wit=${KUBEOP_WIT:-$here/../../../wit}

cd "$here"
# Exactly the versions in package-lock.json, nothing resolved anew. package.json also names
# @bytecodealliance/preview2-shim: componentize-js 0.23.0 loads it without declaring it.
npm ci --no-audit --no-fund

# `-d http fetch-event`: componentize-js's JavaScript engine otherwise brings its fetch() and
# its fetch-event handler, which import wasi:http. kubeop links no wasi:http (plugins have no
# network), so it would refuse the component when it loads; this policy needs neither feature.
npx --no-install componentize-js deny-latest.js \
    --wit "$wit" --world-name image-policy \
    -d http fetch-event \
    -o "$out"
echo "built $out"
