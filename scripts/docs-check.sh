#!/usr/bin/env bash
# Checks /docs in a real headless browser (Debian's chromium): the demo starts, Swagger UI loads
# from ticketd alone (every other host is made unresolvable, as with no internet), renders every
# operation of /openapi.json, and a screenshot is written.
#
#   scripts/docs-check.sh [SCREENSHOT]    default: docs/api-docs.png
set -euo pipefail
cd "$(dirname "$0")/.."
screenshot=${1:-docs/api-docs.png}

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  else
    echo "docs-check: needs chromium (apt install chromium)" >&2
    exit 1
  fi
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
demo_pid=
cleanup() {
  if [ -n "$demo_pid" ]; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build -q -p ticketd
target/debug/ticketd demo --listen "127.0.0.1:$port" >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.log" >&2; exit 1; }
  sleep 0.2
done

browse() {
  local fragment=$1
  shift
  # Everything but loopback fails to resolve: a page that needs a CDN renders nothing.
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
    --user-data-dir="$work/profile" --window-size=1280,2400 --virtual-time-budget=15000 \
    "$@" "http://127.0.0.1:$port/docs/$fragment" 2>>"$work/chromium.log"
}

# Deep-linked to the create operation, which Swagger UI then opens.
browse "#/tickets/create_ticket" --dump-dom >"$work/dom.html"
expected=$(curl -fsS "http://127.0.0.1:$port/openapi.json" | python3 -c '
import json, sys
spec = json.load(sys.stdin)
print(sum(1 for item in spec["paths"].values() for m in item if m in ("get", "post", "put", "patch", "delete")))')
rendered=$(grep -o 'class="opblock opblock-[a-z]*' "$work/dom.html" | wc -l)
fail() { echo "docs-check: $*" >&2; exit 1; }
grep -q 'class="title"' "$work/dom.html" || fail "Swagger UI did not render (no title); DOM in $work/dom.html"
grep -q 'Failed to load API definition' "$work/dom.html" && fail "Swagger UI could not load /openapi.json"
grep -q '/api/v1/tickets/{id}/comments' "$work/dom.html" || fail "the comments operation is not shown"
# The deep link opened the create operation: its headers and problem answers are rendered.
grep -q 'Idempotency-Key' "$work/dom.html" || fail "the create operation's Idempotency-Key is not shown"
grep -q 'IDEMPOTENCY_KEY_MISMATCH' "$work/dom.html" || fail "the create operation's problems are not shown"
[ "$rendered" -eq "$expected" ] || fail "rendered $rendered operations, the document has $expected"

mkdir -p "$(dirname "$screenshot")"
browse "" --screenshot="$screenshot" >/dev/null
[ -s "$screenshot" ] || fail "no screenshot"
echo "docs-check: /docs rendered all $rendered operations offline in chromium; screenshot: $screenshot"
