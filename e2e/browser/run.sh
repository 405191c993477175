#!/usr/bin/env bash
# The broker's pages in a real browser: Debian's headless Chromium
# (/usr/bin/chromium, package `chromium`) driven by playwright-core (pinned in
# package.json), against the real broker and the Forgejo test double started
# by e2e/ts/harness.js from $FJMCP_BIN_DIR (default <repo>/target/debug).
#
# Approve and deny on the consent page, revoke and sign out everywhere on the
# Connected apps page, the error pages; phone width and dark mode; nothing
# loaded from elsewhere. Screenshots go to screenshots/ here, or with
# FJMCP_UPDATE_SCREENSHOTS=1 also to docs/screenshots (commit them). Prints the
# spec report, then one line "browser: N passed, M failed"; exits non-zero on
# any failure, a missing Chromium included (never a skip).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

chromium="${FJMCP_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "$chromium is missing: install the Debian package chromium (apt-get install chromium; .ci/run does)" >&2
  echo "browser: 0 passed, 1 failed"
  exit 1
fi

npm ci --silent --no-audit --no-fund >/dev/null

tap="$(mktemp "${TMPDIR:-/tmp}/fjmcp-e2e-browser-tap.XXXXXX")"
trap 'rm -f "$tap"' EXIT

status=0
node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  ./*.test.js || status=$?

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

echo "browser: ${passed} passed, ${failed} failed"
if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ]; then
  exit 1
fi
