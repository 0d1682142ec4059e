#!/bin/sh
# Install the browser assets landeco serves itself (maps work offline, without CDNs):
# npm packages listed in assets/package.json, copied into api/static/vendor/.
# Quick when nothing changed: the copy is redone only if package-lock.json is newer.
set -eu
cd "$(dirname "$0")/.."
VENDOR=api/static/vendor
STAMP=$VENDOR/.installed
if [ -f "$STAMP" ] && [ "$STAMP" -nt assets/package.json ] && [ "$STAMP" -nt scripts/install-assets.sh ]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || sh scripts/apt-ensure.sh nodejs npm
if [ -f assets/package-lock.json ]; then
    npm ci --prefix assets --no-audit --no-fund --silent
else
    npm install --prefix assets --no-audit --no-fund --silent
fi
rm -rf "$VENDOR"
mkdir -p "$VENDOR"
M=assets/node_modules
cp -r "$M/leaflet/dist" "$VENDOR/leaflet"
touch "$STAMP"
