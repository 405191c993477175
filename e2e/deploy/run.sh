#!/usr/bin/env bash
# Checks the deployment recipes in deploy/ against the real broker:
#
#   systemd   deploy/systemd/fjmcp-broker.service: `systemd-analyze verify` with
#             no warning about it, an offline `systemd-analyze security` score no
#             worse than today's, stop timing that outlasts the broker's drain,
#             and its Environment= lines plus fjmcp-broker.env.example (also with
#             the commented examples switched on) accepted by
#             `fjmcp-broker check-config`, every variable recognised.
#   caddy     deploy/caddy/Caddyfile as written adapts and validates; its
#             loopback variant (render.sh) serves the whole flow below.
#   nginx     deploy/nginx/fjmcp-broker.conf passes `nginx -t` with TLS (only the
#             certificate paths moved to a throwaway self-signed pair); its
#             loopback variant serves the whole flow below.
#   flow      proxies.test.js: the official TypeScript SDK through each proxy
#             to the real broker and the Forgejo test double (OAuth discovery,
#             registration, login, consent, token; initialize, tools/list,
#             tools/call, progress over SSE, list changes on the open GET stream).
#   container deploy/container/Containerfile, offline (no engine here): paths,
#             Rust version, entrypoint, user, ENV settings. It is NOT built.
#
# Needs the Debian packages caddy, nginx, systemd (systemd-analyze) and openssl,
# Node.js 20+ with npm (installs e2e/ts's pinned SDK), and the workspace binaries
# (fjmcp-broker, forgejo-double, fixture-child) in $FJMCP_BIN_DIR (default
# <repo>/target/debug). A missing tool is a failed check naming its package,
# never a skip. Prints "ok"/"not ok" per check, the flow's spec report, and one
# closing line "deploy-recipes: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin_dir="${FJMCP_BIN_DIR:-$repo/target/debug}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fjmcp-e2e-deploy.XXXXXX")"
trap 'rm -rf "$work"' EXIT

unit="$repo/deploy/systemd/fjmcp-broker.service"
env_example="$repo/deploy/systemd/fjmcp-broker.env.example"
containerfile="$repo/deploy/container/Containerfile"
# Today's `systemd-analyze security` exposure of the unit, times ten (1.2 → 12),
# and the items it marks as open, each for a reason: the broker sets rlimits on
# its children (@resources), serves and calls over TCP and may use PostgreSQL's
# or journald's socket (AF_INET/AF_INET6/AF_UNIX, network), and its children
# (Go, Rust) read /proc and the host's files. Any other open item fails the
# check: one removed hardening line moves the score too little to notice.
# Tighten both when the unit gets tighter; loosening needs a reason in the commit.
security_threshold=12
security_open_items='DeviceAllow=
IPAddressDeny=
PrivateNetwork=
ProcSubset=
RestrictAddressFamilies=~AF_(INET|INET6)
RestrictAddressFamilies=~AF_UNIX
RootDirectory=/RootImage=
SystemCallFilter=~@resources'

passed=0
failed=0
pass() {
  echo "ok - $1"
  passed=$((passed + 1))
}
fail() {
  echo "not ok - $1"
  shift
  printf '%s\n' "$@" | sed 's/^/    /'
  failed=$((failed + 1))
}
# check NAME COMMAND...: one check; COMMAND's output is shown when it fails.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then pass "$name"; else fail "$name" "$out"; fi
}

# find COMMAND: its path (sbin directories included: nginx lives in /usr/sbin).
find_tool() {
  PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" 2>/dev/null
}
declare -A tools=()
for spec in caddy:caddy nginx:nginx systemd-analyze:systemd openssl:openssl node:nodejs npm:npm; do
  tool="${spec%%:*}" package="${spec#*:}"
  if path="$(find_tool "$tool")"; then
    tools[$tool]="$path"
    pass "$tool is installed ($path)"
  else
    fail "$tool is installed" "not found: install the Debian package $package (apt-get install $package; .ci/run does)"
  fi
done
have() { [[ -n "${tools[$1]:-}" ]]; }
if [[ ! -x "$bin_dir/fjmcp-broker" ]]; then
  fail "the broker binary exists" "$bin_dir/fjmcp-broker: build the workspace (cargo build --workspace) or set FJMCP_BIN_DIR"
fi

# --- systemd -----------------------------------------------------------------

# `systemd-analyze verify` refuses a unit whose ExecStart program does not exist
# ("Command ... is not executable"), and CI does not install the broker in
# /usr/local/bin. `--root=DIR` does not help: verify then looks for every unit,
# systemd's own targets included, under DIR. So verify a copy in which only the
# ExecStart path points at the binary under test; the copy must differ from the
# recipe in that one line. Verify reports unknown keys and bad values as warnings
# with exit code 0, so any line naming the unit is a failure too.
unit_copy="$work/systemd/fjmcp-broker.service"
mkdir -p "$work/systemd"
sed "s|^ExecStart=/usr/local/bin/fjmcp-broker |ExecStart=$bin_dir/fjmcp-broker |" "$unit" >"$unit_copy"

verify_unit() {
  local changed out status
  changed="$(diff "$unit" "$unit_copy" | grep -c '^>')"
  if [[ "$changed" -ne 1 ]]; then
    echo "expected exactly the ExecStart line to be rewritten, $changed lines were"
    return 1
  fi
  out="$(systemd-analyze verify "$unit_copy" 2>&1)"
  status=$?
  echo "$out"
  [[ "$status" -eq 0 ]] && ! grep -q 'fjmcp-broker\.service' <<<"$out"
}

security_score() {
  local out status open
  out="$(systemd-analyze security --offline=true --threshold="$security_threshold" --no-pager "$unit_copy" 2>&1)"
  status=$?
  grep -E '✗|Overall exposure' <<<"$out"
  open="$(awk '$1 == "✗" {print $2}' <<<"$out" | LC_ALL=C sort)"
  if [[ "$open" != "$security_open_items" ]]; then
    echo "open items differ from the expected ones (< expected, > now):"
    diff <(echo "$security_open_items") <(echo "$open")
    return 1
  fi
  return "$status"
}

# Unit's Environment= assignments, then the environment file's (which win, as
# in systemd), one NAME=value per line. With "all", commented #FJMCP_ lines too.
unit_environment() {
  sed -n 's/^Environment=//p' "$unit" | sed 's/^"\(.*\)"$/\1/'
}
env_file_assignments() {
  local line bad=0
  while IFS= read -r line; do
    [[ -z "$line" || "$line" =~ ^# ]] && continue
    if [[ ! "$line" =~ ^FJMCP_[A-Z0-9_]+=[^\"\'\$\`\\]+$ ]]; then
      echo "not a plain FJMCP_NAME=value line: $line" >&2
      bad=1
    fi
    echo "$line"
  done <"$env_example"
  if [[ "${1:-}" == all ]]; then
    sed -n 's/^#\(FJMCP_[A-Z0-9_]*=.*\)$/\1/p' "$env_example"
  fi
  return "$bad"
}

# check_config ASSIGNMENTS...: `fjmcp-broker check-config` with exactly these
# variables must accept them, and name each as coming from the environment
# (an unknown or misspelt FJMCP_ variable would be silently ignored otherwise).
# --skip-child-check: the recipes name /usr/local/bin/forgejo-mcp, which CI
# does not install (check-config's own child check is tested in the workspace).
check_config() {
  local out status assignment name missing=0
  out="$(cd "$work" && env -i PATH=/usr/bin:/bin "$@" "$bin_dir/fjmcp-broker" check-config --skip-child-check 2>&1)"
  status=$?
  echo "$out"
  [[ "$status" -eq 0 ]] || return 1
  for assignment in "$@"; do
    name="${assignment%%=*}"
    if ! grep -q "# environment $name\$" <<<"$out"; then
      echo "check-config does not report $name as set from the environment"
      missing=1
    fi
  done
  return "$missing"
}

# The unit's and the example environment file's settings, as the service gets them.
service_assignments() {
  unit_environment
  env_file_assignments
}

check_unit_environment() {
  local assignments
  env_file_assignments >/dev/null || return 1
  mapfile -t assignments < <(service_assignments)
  check_config "${assignments[@]}"
}

# The commented examples, switched on: paths under /var/lib/fjmcp-broker move
# to a scratch state directory holding a sealing key, as the service's would.
check_env_examples() {
  local state="$work/state" assignments
  mkdir -p "$state"
  openssl rand -hex 32 >"$state/sealing-key" && chmod 0600 "$state/sealing-key"
  mapfile -t assignments < <(unit_environment; env_file_assignments all | sed "s|/var/lib/fjmcp-broker/|$state/|g")
  check_config "${assignments[@]}"
}

# Stopping must outlast the broker's own: the drain (shutdown_grace), then each
# child's stop (stdin EOF, SIGTERM, SIGKILL, 2 s apart) and up to 10 s for
# children being replaced. KillMode must reach the children too.
check_stop_timing() {
  local kill_mode timeout grace assignments
  kill_mode="$(sed -n 's/^KillMode=//p' "$unit")"
  timeout="$(sed -n 's/^TimeoutStopSec=\([0-9][0-9]*\)s\{0,1\}$/\1/p' "$unit")"
  mapfile -t assignments < <(service_assignments)
  grace="$(check_config "${assignments[@]}" | sed -n 's/^shutdown_grace = "\([0-9][0-9]*\)s".*/\1/p')"
  echo "KillMode=$kill_mode TimeoutStopSec=${timeout:-?}s shutdown_grace=${grace:-?}s"
  [[ "$kill_mode" == mixed || "$kill_mode" == control-group ]] || { echo "KillMode must be mixed or control-group"; return 1; }
  [[ -n "$timeout" && -n "$grace" ]] || { echo "could not read TimeoutStopSec or shutdown_grace in seconds"; return 1; }
  [[ "$timeout" -ge $((grace + 4 + 10)) ]] || { echo "TimeoutStopSec must be at least shutdown_grace + 14 s"; return 1; }
}

if have systemd-analyze; then
  check "systemd: systemd-analyze verify, no warning" verify_unit
  check "systemd: systemd-analyze security: exposure at most $security_threshold/100, no new open item" security_score
fi
check "systemd: KillMode and TimeoutStopSec outlast the broker's shutdown" check_stop_timing
check "systemd: unit Environment= + fjmcp-broker.env.example pass check-config" check_unit_environment
if have openssl; then
  check "systemd: the env example's commented settings pass check-config too" check_env_examples
fi

# --- caddy and nginx, as written ------------------------------------------------

check_caddy_recipe() {
  mkdir -p "$work/caddy-recipe"
  HOME="$work/caddy-recipe" XDG_CONFIG_HOME="$work/caddy-recipe/config" XDG_DATA_HOME="$work/caddy-recipe/data" \
    "${tools[caddy]}" adapt --config "$repo/deploy/caddy/Caddyfile" --adapter caddyfile --validate
}
check_nginx_recipe() {
  "$here/render.sh" nginx-tls "$work/nginx-recipe" &&
    "${tools[nginx]}" -t -p "$work/nginx-recipe" -c "$work/nginx-recipe/nginx.conf" -e "$work/nginx-recipe/error.log"
}
have caddy && check "caddy: deploy/caddy/Caddyfile adapts and validates as written" check_caddy_recipe
have nginx && have openssl && check "nginx: deploy/nginx/fjmcp-broker.conf passes nginx -t with TLS" check_nginx_recipe

# --- container (not built) ---------------------------------------------------------

check_containerfile() {
  local problems=0 rust want src entry assignments
  rust="$(sed -n 's|^FROM docker.io/library/rust:\([0-9.]*\)-.* AS broker$|\1|p' "$containerfile")"
  want="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$repo/Cargo.toml")"
  [[ -n "$rust" && "$rust" == "$want" ]] || { echo "rust image $rust, workspace rust-version $want"; problems=1; }
  # Every COPY from the build context exists and is not excluded by .dockerignore.
  while read -r src; do
    [[ -e "$repo/$src" ]] || { echo "COPY source $src does not exist"; problems=1; }
    grep -qx "!$src" "$repo/.dockerignore" || { echo "COPY source $src is not let through by .dockerignore"; problems=1; }
  done < <(grep -E '^COPY ' "$containerfile" | grep -v -- '--from=' | awk '{for (i = 2; i < NF; i++) print $i}')
  grep -q '^RUN cargo build --release --locked -p fjmcp-broker ' "$containerfile" &&
    grep -q '^name = "fjmcp-broker"$' "$repo/crates/fjmcp-broker/Cargo.toml" ||
    { echo "the broker build step or package name changed"; problems=1; }
  grep -qE '^ARG FORGEJO_MCP_VERSION=v[0-9]+\.[0-9]+\.[0-9]+$' "$containerfile" ||
    { echo "forgejo-mcp must be pinned to a release (ARG FORGEJO_MCP_VERSION=vX.Y.Z)"; problems=1; }
  entry="$(grep '^ENTRYPOINT ' "$containerfile")"
  [[ "$entry" == 'ENTRYPOINT ["fjmcp-broker", "serve"]' ]] || { echo "unexpected $entry"; problems=1; }
  grep -qE '^USER [1-9][0-9]*:[1-9][0-9]*$' "$containerfile" || { echo "USER must be a numeric non-root uid:gid"; problems=1; }
  grep -q '^VOLUME \["/data"\]$' "$containerfile" || { echo "no /data volume"; problems=1; }
  # The runtime stage's (the last FROM's) ENV settings, continuation lines included, are valid.
  mapfile -t assignments < <(tac "$containerfile" | sed '/^FROM /q' | tac |
    awk '/^ENV / {on = 1} on {print} on && !/\\$/ {on = 0}' |
    sed -e 's/^ENV //' -e 's/\\$//' -e 's/^ *//' -e 's/ *$//' -e 's/^\([A-Z_]*\)="\(.*\)"$/\1=\2/' | grep '^FJMCP_')
  [[ "${#assignments[@]}" -ge 3 ]] || { echo "could not read the runtime ENV settings"; problems=1; }
  check_config "${assignments[@]}" FJMCP_PUBLIC_URL=https://mcp.example.com FJMCP_FORGEJO_URL=https://forgejo.example.com \
    FJMCP_FORGEJO_CLIENT_ID=x FJMCP_FORGEJO_CLIENT_SECRET=x >/dev/null || { echo "check-config refuses the image's ENV: ${assignments[*]}"; problems=1; }
  return "$problems"
}
check "container: Containerfile checked offline (not built: no container engine here)" check_containerfile

# --- the flow through both proxies --------------------------------------------------

proxies=()
have caddy && proxies+=(caddy)
have nginx && proxies+=(nginx)
if have node && have npm && [[ "${#proxies[@]}" -gt 0 ]]; then
  # The SDK and the harness are e2e/ts's, pinned by its package-lock.json.
  if [[ ! "$repo/e2e/ts/node_modules/.package-lock.json" -nt "$repo/e2e/ts/package-lock.json" ]]; then
    (cd "$repo/e2e/ts" && npm ci --silent --no-audit --no-fund >/dev/null) || fail "npm ci in e2e/ts" "see above"
  fi
  tap="$work/flow.tap"
  # Its own session, so that whatever it leaves behind (an nginx worker whose
  # master was killed) goes with it; `timeout` only stops a hang.
  FJMCP_BIN_DIR="$bin_dir" CADDY="${tools[caddy]:-}" NGINX="${tools[nginx]:-}" \
    FJMCP_DEPLOY_PROXIES="$(IFS=,; echo "${proxies[*]}")" \
    setsid timeout 600 node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$here/proxies.test.js" &
  flow=$!
  wait "$flow"
  status=$?
  kill -KILL -- "-$flow" 2>/dev/null || true
  flow_passed="$(sed -n 's/^# pass \([0-9][0-9]*\)$/\1/p' "$tap" | tail -n 1)"
  flow_failed="$(sed -n 's/^# fail \([0-9][0-9]*\)$/\1/p' "$tap" | tail -n 1)"
  flow_cancelled="$(sed -n 's/^# cancelled \([0-9][0-9]*\)$/\1/p' "$tap" | tail -n 1)"
  flow_passed="${flow_passed:-0}"
  flow_failed=$((${flow_failed:-0} + ${flow_cancelled:-0}))
  if [[ "$status" -ne 0 && "$flow_failed" -eq 0 ]] || [[ "$flow_passed" -eq 0 && "$flow_failed" -eq 0 ]]; then
    flow_failed=$((flow_failed + 1))
  fi
  passed=$((passed + flow_passed))
  failed=$((failed + flow_failed))
else
  fail "the flow through the proxies ran" "needs node, npm and at least one of caddy and nginx (see the failed checks above)"
fi

echo "deploy-recipes: ${passed} passed, ${failed} failed"
[[ "$failed" -eq 0 ]]
