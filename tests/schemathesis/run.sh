#!/usr/bin/env bash
# Runs schemathesis (pinned, from PyPI) against the live OpenAPI document of
# the real `syshost run` binary: once anonymous, once as an administrator
# (bearer token). Fails on any 5xx, response-schema violation or crash.
#
# Usage (from anywhere): tests/schemathesis/run.sh [max-examples per operation]
# Needs: python3 with venv, and `cargo build` done (target/debug/syshost and
# the system plugins next to it). SCHEMATHESIS_MAX_EXAMPLES overrides the
# default of 10; CI uses the default.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MAX_EXAMPLES="${1:-${SCHEMATHESIS_MAX_EXAMPLES:-3}}"
VENV="$ROOT/target/schemathesis-venv"
VERSION=4.32.5
BIN="$ROOT/target/debug/syshost"

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
[ -x "$BIN" ] || { echo "run 'cargo build' first ($BIN missing)" >&2; exit 1; }

WORK=$(mktemp -d)
LOG="$WORK/syshost.log"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  cp "$LOG" "$ROOT/target/schemathesis-syshost.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ADMIN_EMAIL=root@example.test
ADMIN_PASSWORD="schemathesis admin password 1"
(
  cd "$WORK"
  for v in $(env | grep -o '^SYSHOST_[A-Z_]*'); do unset "$v"; done
  exec env SYSHOST_PLUGIN_DIRS="$ROOT/target/debug" SYSHOST_HTTP_ADDR=127.0.0.1:0 \
    SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE=100000 \
    SYSHOST_ADMIN_EMAIL="$ADMIN_EMAIL" SYSHOST_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    SYSHOST_LOG=warn,syshost=info "$BIN" run
) >"$LOG" 2>&1 &
PID=$!
ADDR=""
for _ in $(seq 600); do
  ADDR=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's|listening on http://||' || true)
  [ -n "$ADDR" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "syshost run exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$LOG"; echo "syshost run never listened" >&2; exit 1; }
URL="http://$ADDR"

login() {
  "$VENV/bin/python" - "$URL" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" <<'PY'
import json, sys, urllib.request
url, email, password = sys.argv[1:4]
req = urllib.request.Request(url + "/api/v1/session/login",
    data=json.dumps({"email": email, "password": password}).encode(),
    headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["session_token"])
PY
}

run() {
  local label=$1; shift
  echo "==> schemathesis ($label, $MAX_EXAMPLES examples per operation)"
  # Run from target/: schemathesis keeps a cache in ./.schemathesis.
  (cd "$ROOT/target" && "$VENV/bin/schemathesis" run "$URL/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" --generation-deterministic --request-timeout 30 \
    --suppress-health-check all --no-color "$@")
}

STATUS=0
[ -n "${SCHEMATHESIS_SKIP_ANONYMOUS:-}" ] || run anonymous || STATUS=1
# The administrator run leaves out the operations that can end its own
# session or strip its rights (logout and revocations, disabling, deleting,
# forcing a password change, replacing roles or permissions): once one of
# them hit the administrator, every later call would only test the 401.
TOKEN=$(login)
SELF_DESTRUCTIVE='^(session\.(logout|revoke_mine|revoke_all_for_user)|user\.(set_status|delete|bulk_delete|bulk_set_status|require_password_change|set_password|change_email|set_roles|set_permissions))(\.get)?$'
run administrator --header "Authorization: Bearer $TOKEN" \
  --exclude-operation-id-regex "$SELF_DESTRUCTIVE" || STATUS=1
if ! kill -0 "$PID" 2>/dev/null; then
  echo "syshost run died during the schemathesis run" >&2
  tail -50 "$LOG" >&2
  exit 1
fi
if grep -q 'panicked' "$LOG"; then
  echo "the server log shows a panic:" >&2
  grep -B2 -A5 'panicked' "$LOG" >&2
  STATUS=1
fi
exit $STATUS
