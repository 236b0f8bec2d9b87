#!/bin/sh
# Renders the application icon's PNG sizes from its SVG (needs rsvg-convert: apt install librsvg2-bin).
# The hicolor layout is what desktops look up, and what `aladin desktop-install` copies.
set -eu
cd "$(dirname "$0")/hicolor"
for size in 16 24 32 48 64 128 256; do
    mkdir -p "${size}x${size}/apps"
    rsvg-convert --width "$size" --height "$size" scalable/apps/aladin.svg --output "${size}x${size}/apps/aladin.png"
done
