#!/usr/bin/env bash
# imagehost: take a screenshot with Flameshot, upload it, copy the link.
#
# Bind this script to a key (e.g. Print) in your desktop's shortcut settings.
#
# Needs: flameshot, curl, and wl-copy (Wayland, package wl-clipboard) or
# xclip (X11) for the clipboard; notify-send (libnotify) is used if present.
#
# Configuration:
#   IMAGEHOST_URL  this server's address. Filled in when you download the
#                  script from the server's Integrations page.
#   IMAGEHOST_KEY  your API key (create one on the API keys page). If unset,
#                  it is read from ${XDG_CONFIG_HOME:-~/.config}/imagehost/key:
#                    mkdir -p ~/.config/imagehost
#                    (umask 077; echo 'ih_...' > ~/.config/imagehost/key)
#
# Prints the image URL on stdout. Exits 0 without a word when the capture is
# cancelled; exits 1 with a one-line message on stderr on any error.

set -euo pipefail

IMAGEHOST_URL="${IMAGEHOST_URL:-__IMAGEHOST_URL__}"
IMAGEHOST_URL="${IMAGEHOST_URL%/}"
key_file="${XDG_CONFIG_HOME:-$HOME/.config}/imagehost/key"

notify() {  # notify URGENCY SUMMARY [BODY]
    if command -v notify-send >/dev/null 2>&1; then
        notify-send --app-name=imagehost --urgency="$1" "$2" "${3:-}" >/dev/null 2>&1 || true
    fi
}

die() {
    printf 'imagehost: %s\n' "$1" >&2
    notify critical "imagehost: upload failed" "$1"
    exit 1
}

warn() {
    printf 'imagehost: warning: %s\n' "$1" >&2
}

case "${1:-}" in
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
esac

# --- configuration and tools --------------------------------------------------

case "$IMAGEHOST_URL" in
    __IMAGEHOST_*) die "IMAGEHOST_URL is not set (e.g. export IMAGEHOST_URL=https://img.example.com)" ;;
    http://* | https://*) ;;
    *) die "IMAGEHOST_URL must start with http:// or https:// (got '$IMAGEHOST_URL')" ;;
esac

command -v flameshot >/dev/null 2>&1 || die "flameshot is not installed"
command -v curl >/dev/null 2>&1 || die "curl is not installed"

key="${IMAGEHOST_KEY:-}"
if [[ -z "$key" && -r "$key_file" ]]; then
    IFS= read -r key <"$key_file" || true
fi
key="${key//[[:space:]]/}"
[[ -n "$key" ]] || die "no API key: set IMAGEHOST_KEY or put your key in $key_file"

# --- capture ------------------------------------------------------------------

tmp="$(mktemp "${TMPDIR:-/tmp}/imagehost.XXXXXXXXXX")"
response="$(mktemp "${TMPDIR:-/tmp}/imagehost.XXXXXXXXXX")"
errors="$(mktemp "${TMPDIR:-/tmp}/imagehost.XXXXXXXXXX")"
trap 'rm -f "$tmp" "$response" "$errors"' EXIT

# A cancelled capture leaves no PNG behind (Flameshot's exit status and
# messages on cancel differ between versions, so look at the bytes instead).
flameshot gui --raw >"$tmp" 2>/dev/null || true
if [[ ! -s "$tmp" || "$(head -c 4 "$tmp" | tail -c 3)" != "PNG" ]]; then
    exit 0
fi

# --- upload -------------------------------------------------------------------

name="screenshot-$(date +%Y%m%d-%H%M%S).png"
# The key goes to curl on stdin (-H @-), not on the command line, so other
# users of this machine cannot read it from the process list.
if ! status="$(printf 'Authorization: Bearer %s\n' "$key" |
    curl -sS --connect-timeout 10 --max-time 300 \
        -H @- -H 'Accept: text/plain' \
        -F "file=@$tmp;type=image/png;filename=$name" \
        -o "$response" -w '%{http_code}' \
        "$IMAGEHOST_URL/api/upload?format=text" 2>"$errors")"; then
    die "could not reach $IMAGEHOST_URL: $(tr -s '\r\n' '  ' <"$errors")"
fi

if [[ ! "$status" =~ ^2[0-9][0-9]$ ]]; then
    body="$(tr -s '\r\n\t' '   ' <"$response" | head -c 500)"
    die "upload failed (HTTP $status): ${body:-no response body}"
fi

url="$(head -n 1 "$response" | tr -d '\r\n')"
case "$url" in
    http://* | https://*) ;;
    *) die "unexpected answer from the server: $(head -c 200 "$response")" ;;
esac

# --- clipboard and notification ------------------------------------------------

# The clipboard tools keep running in the background to serve the selection:
# detach their output so they do not hold a caller's pipe open.
copied=false
if [[ -n "${WAYLAND_DISPLAY:-}" ]] && command -v wl-copy >/dev/null 2>&1; then
    printf '%s' "$url" | wl-copy >/dev/null 2>&1 && copied=true
fi
if [[ "$copied" != true ]] && command -v xclip >/dev/null 2>&1; then
    printf '%s' "$url" | xclip -selection clipboard >/dev/null 2>&1 && copied=true
fi
if [[ "$copied" == true ]]; then
    notify normal "Screenshot uploaded, link copied" "$url"
else
    warn "no clipboard tool worked (install wl-clipboard or xclip); the link was not copied"
    notify normal "Screenshot uploaded" "$url"
fi

printf '%s\n' "$url"
