#!/bin/sh
# Screenshots of the tray in a real panel, for a person to look at:
# xfce4-panel (its system tray hosts StatusNotifierItems) under Xvfb, the app,
# a click on its icon (the open menu), then a second launch of the app, which
# the running one answers by opening its status window.
# Usage (inside dbus-run-session, DISPLAY and HOME set): panel_screenshots.sh APP OUT_DIR
# Exits non-zero when the app's icon never reaches the panel's tray.
set -eu
app=$1 out=$2
mkdir -p "$out"
watcher_items() {
  gdbus call --session --dest org.kde.StatusNotifierWatcher --object-path /StatusNotifierWatcher \
    --method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher RegisteredStatusNotifierItems 2>/dev/null || true
}
xfce4-panel >/dev/null 2>&1 &
panel=$!
"$app" >/dev/null 2>&1 &
tray=$!
trap 'kill $tray $panel 2>/dev/null || true' EXIT
i=0
until watcher_items | grep -q NotificationItem; do
  i=$((i + 1)); [ $i -le 60 ] || { echo "the app's icon never reached the panel" >&2; exit 1; }
  sleep 0.5
done
echo "registered: $(watcher_items)"
sleep 2
# Debian 12's default panel puts the tray at the top right, left of the clock.
xdotool mousemove 1155 12 click 1
sleep 2
import -window root "$out/tray-menu.png"
xdotool key Escape
"$app" >/dev/null 2>&1 || true   # the second instance hands over and exits
sleep 4
import -window root "$out/tray-window.png"
