#!/bin/sh
# The "browser" of the tray tests ($BROWSER): a scripted HTTP client that
# approves the sign-in at the test authorization server and follows the
# redirect back: to the loopback listener with curl, or, for the app's own
# URL scheme, through the desktop's URL handler (`gio open`, as GNOME does:
# it finds the scheme's handler the app registered), which starts a second
# mcp-auth-tray that hands the URL to the running one. (Debian 12's xdg-open
# cannot run a quoted Exec= line, so it is not used here.)
set -eu
location=$(curl -sS --max-time 10 -o /dev/null -w '%{redirect_url}' "$1")
case "$location" in
  http://*|https://*) exec curl -sS --max-time 10 -o /dev/null "$location" ;;
  "") echo "browser.sh: the authorization page did not redirect" >&2; exit 1 ;;
  *) exec gio open "$location" ;;
esac
