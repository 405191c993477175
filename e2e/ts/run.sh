#!/usr/bin/env bash
# End-to-end tests of fjmcp-broker with the official MCP TypeScript SDK (1.x).
#
# Needs Node 20+ and the workspace binaries (cargo build --workspace); set
# FJMCP_BIN_DIR when they are not in <repo>/target/debug. Prints the spec
# report, then one line "typescript-sdk: N passed, M failed"; exits non-zero
# on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

npm ci --silent --no-audit --no-fund >/dev/null

tap="$(mktemp "${TMPDIR:-/tmp}/fjmcp-e2e-ts-tap.XXXXXX")"
trap 'rm -f "$tap"' EXIT

status=0
node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  ./*.test.js || status=$?

# The TAP summary counts every test (suites are not counted on their own).
passed="$(sed -n 's/^# pass \([0-9][0-9]*\)$/\1/p' "$tap" | tail -n 1)"
failed="$(sed -n 's/^# fail \([0-9][0-9]*\)$/\1/p' "$tap" | tail -n 1)"
cancelled="$(sed -n 's/^# cancelled \([0-9][0-9]*\)$/\1/p' "$tap" | tail -n 1)"
passed="${passed:-0}"
failed=$(( ${failed:-0} + ${cancelled:-0} ))

# A run that passed nothing, or whose runner failed without a failing test
# (a file that did not load), is a failure too.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi

echo "typescript-sdk: ${passed} passed, ${failed} failed"
if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ]; then
  exit 1
fi
