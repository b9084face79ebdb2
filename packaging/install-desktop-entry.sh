#!/bin/sh
# Add radview to the desktop's application menu, for this user only (no root needed).
# Shipped at the top of the unpacked bundle; run it from there: ./install-desktop-entry.sh
# It writes ~/.local/share/applications/radview.desktop (Exec = this bundle's radview) and the icon
# at every size into ~/.local/share/icons/hicolor. Moving the bundle later: run it again.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe="$here/radview"
resources="$here/_internal/resources"
[ -x "$exe" ] || { echo "install-desktop-entry: no radview executable in $here" >&2; exit 1; }
data="${XDG_DATA_HOME:-$HOME/.local/share}"
for png in "$resources"/icons/radview-*.png; do
    size=$(basename "$png" .png | sed 's/radview-//')
    mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
    cp "$png" "$data/icons/hicolor/${size}x${size}/apps/radview.png"
done
mkdir -p "$data/icons/hicolor/scalable/apps" "$data/applications"
cp "$resources/icons/radview.svg" "$data/icons/hicolor/scalable/apps/radview.svg"
# The desktop entry spec wants Exec arguments with spaces quoted, and a literal path for TryExec;
# sed must not read & | or \ in the path as its own syntax.
path=$(printf '%s' "$exe" | sed 's/[&|\\]/\\&/g')
sed -e "s|^Exec=radview|Exec=\"$path\"|" -e "s|^TryExec=radview|TryExec=$path|" \
    "$resources/radview.desktop" > "$data/applications/radview.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "radview is in the application menu ($data/applications/radview.desktop)"
