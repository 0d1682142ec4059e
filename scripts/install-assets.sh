#!/bin/sh
# Install the browser assets landeco serves itself (maps work offline, without CDNs):
# npm packages listed in assets/package.json, copied into api/static/vendor/, where
# gis/maps.py points Folium's default_js/default_css (served at /static/vendor/...).
# Instant when nothing changed: the copy is redone only if the stamp is older than the
# package list, the lock file or this script.
set -eu
cd "$(dirname "$0")/.."
VENDOR=api/static/vendor
STAMP=$VENDOR/.installed
if [ -f "$STAMP" ] && [ "$STAMP" -nt assets/package.json ] && [ "$STAMP" -nt scripts/install-assets.sh ] \
    && { [ ! -f assets/package-lock.json ] || [ "$STAMP" -nt assets/package-lock.json ]; }; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || sh scripts/apt-ensure.sh nodejs npm
# --ignore-scripts: these packages are static files; no install script needs to run
if [ -f assets/package-lock.json ]; then
    npm ci --prefix assets --ignore-scripts --no-audit --no-fund --silent
else
    npm install --prefix assets --ignore-scripts --no-audit --no-fund --silent
fi
TMP=$VENDOR.tmp
rm -rf "$TMP"
mkdir -p "$TMP/fontawesome" "$TMP/bootstrap" "$TMP/jquery" "$TMP/vectorgrid" "$TMP/swagger-ui"
M=assets/node_modules
cp -r "$M/leaflet/dist" "$TMP/leaflet"
cp "$M/jquery/dist/jquery.min.js" "$TMP/jquery/"
cp "$M/bootstrap/dist/js/bootstrap.bundle.min.js" "$M/bootstrap/dist/css/bootstrap.min.css" "$TMP/bootstrap/"
# the stylesheet finds its fonts at ../webfonts/
cp -r "$M/@fortawesome/fontawesome-free/css" "$M/@fortawesome/fontawesome-free/webfonts" "$TMP/fontawesome/"
cp -r "$M/leaflet.awesome-markers/dist" "$TMP/awesome-markers"
cp "$M/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js" "$TMP/vectorgrid/"
# the feature editing page (api/templates/editing): Leaflet-Geoman draws and reshapes geometries
mkdir -p "$TMP/geoman"
cp "$M/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.min.js" \
   "$M/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css" "$TMP/geoman/"
# the API documentation page /api.html
cp "$M/swagger-ui-dist/swagger-ui-bundle.js" "$M/swagger-ui-dist/swagger-ui.css" \
   "$M/swagger-ui-dist/favicon-32x32.png" "$TMP/swagger-ui/"
# swap in one step, so a server never sees a half-copied folder for long
rm -rf "$VENDOR"
mv "$TMP" "$VENDOR"
touch "$STAMP"
