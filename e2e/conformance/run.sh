#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance) against
# fjmcp-broker, three times:
#   1. 0.1.16          server --suite all                 2025-era wire (initialize + Mcp-Session-Id)
#   2. 0.2.0-alpha.12  server --requirements 2025-11-25   same wire, frozen 2025-11-25 set
#   3. 0.2.0-alpha.12  server --requirements 2026-07-28   stateless wire (per-request _meta)
# each with its expected-failures baseline, and exits non-zero if any run fails
# (an unlisted failure, or a listed scenario that now passes).
#
# The stack: the Forgejo test double (auto-login as alice), the broker with the fixture
# child as every user's child, a token from the broker's real OAuth flow (get_token.py),
# and proxy.py, which adds `Authorization: Bearer <token>` to what the suite sends (the
# suite's server runner cannot send a token) and forwards everything else verbatim,
# Host and Origin included. See README.md.
#
# Environment:
#   FJMCP_BIN_DIR        directory with fjmcp-broker, forgejo-double, fixture-child;
#                        if unset, `cargo build --workspace` runs and
#                        ${CARGO_TARGET_DIR:-<repo>/target}/debug is used
#   CONFORMANCE_RESULTS  where results go (default: e2e/conformance/results)
#   CONFORMANCE_SKIP_NPM_CI=1  reuse node_modules as it is (local iteration)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
results=${CONFORMANCE_RESULTS:-$here/results}

say() { printf '[conformance] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is required"
command -v npm >/dev/null || die "npm is required"
command -v curl >/dev/null || die "curl is required"

# --- binaries -------------------------------------------------------------------------
if [[ -n "${FJMCP_BIN_DIR:-}" ]]; then
  bin=$FJMCP_BIN_DIR
else
  say "building the workspace"
  (cd "$repo" && cargo build --workspace --quiet)
  bin=${CARGO_TARGET_DIR:-$repo/target}/debug
fi
for b in fjmcp-broker forgejo-double fixture-child; do
  [[ -x "$bin/$b" ]] || die "$bin/$b not found (build the workspace or set FJMCP_BIN_DIR)"
done

# --- the suite and Node 22 --------------------------------------------------------------
if [[ "${CONFORMANCE_SKIP_NPM_CI:-}" != 1 ]]; then
  say "npm ci"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
node=$here/node_modules/node/bin/node
[[ -x "$node" ]] || die "$node missing: npm ci did not install the node@22 package"
node_version=$("$node" --version)
[[ "$node_version" == v22.* ]] || die "expected Node 22 from the node package, got $node_version"
suite_0116=$here/node_modules/conformance-0116/dist/index.js
suite_alpha=$here/node_modules/conformance-alpha/dist/index.js
version_0116=$("$node" "$suite_0116" --version)
version_alpha=$("$node" "$suite_alpha" --version)
say "node $node_version, conformance $version_0116 and $version_alpha"

# --- processes and cleanup ---------------------------------------------------------------
state=$(mktemp -d -t fjmcp-conformance.XXXXXX)
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$state"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until FILE has a line matching REGEX (first capture group printed), or fails.
wait_for_line() {
  local file=$1 regex=$2 what=$3 pid=$4 i
  for i in $(seq 1 100); do
    if [[ -s "$file" && "$(<"$file")" =~ $regex ]]; then
      printf '%s\n' "${BASH_REMATCH[1]}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$what exited early"
    sleep 0.1
  done
  die "$what did not start"
}

rm -rf "$results"
mkdir -p "$results"
broker_port=$(free_port)
issuer="http://127.0.0.1:$broker_port"
forgejo_client_id=fjmcp-conformance
forgejo_client_secret=fjmcp-conformance-secret

"$bin/forgejo-double" \
  --listen 127.0.0.1:0 \
  --client-id "$forgejo_client_id" \
  --client-secret "$forgejo_client_secret" \
  --redirect-uri "$issuer/oauth/callback" \
  --auto-login alice \
  >"$state/double.out" 2>"$results/forgejo-double.log" &
pids+=($!)
forgejo_url=$(wait_for_line "$state/double.out" 'listening on (http://[^ ]+)' forgejo-double "${pids[-1]}")
say "forgejo-double at $forgejo_url"

# The proxy first (port 0), so the broker can be told the proxy's authority.
token_file=$state/token
: >"$token_file"
chmod 600 "$token_file"
python3 "$here/proxy.py" \
  --upstream "$issuer" \
  --token-file "$token_file" \
  --trace "$results/proxy-trace.jsonl" \
  >"$state/proxy.out" 2>"$results/proxy.log" &
pids+=($!)
proxy_port=$(wait_for_line "$state/proxy.out" 'proxy listening on ([0-9]+)' proxy "${pids[-1]}")
say "proxy on localhost:$proxy_port -> $issuer"

# The broker. FJMCP_ALLOWED_HOSTS / FJMCP_ALLOWED_ORIGINS name the proxy's loopback
# authority, exactly as a deployment behind a Host-preserving reverse proxy would;
# the proxy passes Host and Origin through untouched, so hostile values still reach
# the broker and are judged by it. The fixture child assumes client capabilities so
# that sampling/elicitation tools really ask (and the broker's refusal to relay shows).
FJMCP_PUBLIC_URL=$issuer \
FJMCP_LISTEN=127.0.0.1:$broker_port \
FJMCP_FORGEJO_URL=$forgejo_url \
FJMCP_FORGEJO_CLIENT_ID=$forgejo_client_id \
FJMCP_FORGEJO_CLIENT_SECRET=$forgejo_client_secret \
FJMCP_STORE=sqlite:$state/broker.db \
FJMCP_CHILD_COMMAND="$bin/fixture-child --assume-client-capabilities" \
FJMCP_ALLOWED_HOSTS="localhost:$proxy_port,127.0.0.1:$proxy_port,[::1]:$proxy_port" \
FJMCP_ALLOWED_ORIGINS="http://localhost:$proxy_port,http://127.0.0.1:$proxy_port,http://[::1]:$proxy_port" \
FJMCP_LOG_FORMAT=json \
  "$bin/fjmcp-broker" serve >"$results/broker.stdout" 2>"$results/broker.log" &
pids+=($!)
broker_pid=${pids[-1]}
for i in $(seq 1 100); do
  curl -fsS -o /dev/null "$issuer/readyz" 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || die "fjmcp-broker exited early; see $results/broker.log"
  [[ $i == 100 ]] && die "fjmcp-broker did not become ready"
  sleep 0.1
done
say "fjmcp-broker at $issuer"

python3 "$here/get_token.py" --issuer "$issuer" --forgejo "$forgejo_url" >"$token_file" \
  || die "could not get an access token"
say "got an access token through the OAuth flow"

# Preflight: the proxy must hand a hostile Host to the broker untouched (and the broker
# must refuse it), while the proxy's own authority is accepted.
mcp_url="http://localhost:$proxy_port/mcp"
init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"preflight","version":"0"}}}'
preflight() {
  curl -sS -o /dev/null -w '%{http_code}' -X POST "$mcp_url" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    "$@" --data "$init"
}
status=$(preflight -H 'Host: evil.example.com')
[[ $status == 403 ]] || die "preflight: a hostile Host (no Origin) got $status, expected 403"
status=$(preflight)
[[ $status == 200 ]] || die "preflight: an initialize through the proxy got $status, expected 200"

# --- the runs ------------------------------------------------------------------------------
table=()
failed=0
run_suite() {
  local name=$1 label=$2 baseline=$3 scenarios_flag=$4 scenarios_file=$5
  shift 5
  local out=$results/$name
  local code=0
  say "running $label"
  "$node" "$@" --expected-failures "$here/$baseline" -o "$out" >"$results/$name.log" 2>&1 || code=$?
  # The suite's own summary and baseline verdict (the full output is in $name.log).
  sed -n '/=== SUMMARY ===/,$p' "$results/$name.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
  local line
  if line=$(python3 "$here/summarize.py" --label "$label" --results "$out" --baseline "$here/$baseline" \
    "$scenarios_flag" "$scenarios_file" --exit-code "$code"); then :; else failed=1; fi
  [[ $code == 0 ]] || failed=1
  table+=("$line")
}

"$node" "$suite_0116" list --server >"$state/list-0116.txt"
run_suite 0.1.16 "conformance $version_0116 (2025, --suite all)" expected-failures-0.1.16.yml \
  --scenario-list "$state/list-0116.txt" \
  "$suite_0116" server --url "$mcp_url" --suite all
run_suite 2025-11-25 "conformance $version_alpha (--requirements 2025-11-25)" expected-failures-2025-11-25.yml \
  --requirements "$here/node_modules/conformance-alpha/requirements/2025-11-25.yaml" \
  "$suite_alpha" server --url "$mcp_url" --requirements 2025-11-25
run_suite 2026-07-28 "conformance $version_alpha (--requirements 2026-07-28)" expected-failures-2026-07-28.yml \
  --requirements "$here/node_modules/conformance-alpha/requirements/2026-07-28.yaml" \
  "$suite_alpha" server --url "$mcp_url" --requirements 2026-07-28

kill -0 "$broker_pid" 2>/dev/null || { say "fjmcp-broker died during the runs"; failed=1; }

echo
echo "=== MCP conformance: fjmcp-broker ==="
printf '%s\n' "${table[@]}"
echo "(per-scenario verdicts: $results/<run>/summary.txt; suite output: $results/<run>.log)"
if [[ $failed != 0 ]]; then
  echo "FAILED: see above; broker log: $results/broker.log, proxy trace: $results/proxy-trace.jsonl"
  exit 1
fi
echo "OK"
