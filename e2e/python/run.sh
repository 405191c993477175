#!/usr/bin/env bash
# End-to-end tests of fjmcp-broker with the official Python MCP SDK (`mcp` 2.x) as the client.
#
# Needs the workspace's binaries (fjmcp-broker, forgejo-double, fixture-child), by default from
# <repo>/target/debug, or from FJMCP_BIN_DIR. Build them first: cargo build --workspace.
# Creates e2e/python/.venv on first use and installs requirements.txt (hash-checked) into it.
# Extra arguments go to pytest (e.g. -k revoked, -x, -s).
#
# Prints one closing line "python-sdk: N passed, M failed"; exits non-zero unless all passed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

python="${PYTHON:-python3}"
venv="$here/.venv"
# The whole run normally takes seconds; this only stops a hang (and, through the process
# group, the broker and the double with it).
run_timeout="${FJMCP_E2E_TIMEOUT:-170}"

summary() {
  echo "python-sdk: $1 passed, $2 failed"
}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "run.sh: $python is missing or older than 3.10, which mcp 2.x requires" >&2
  summary 0 1
  exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
# Install only when requirements.txt changed since the last install into this venv.
stamp="$venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r requirements.txt
  echo "$want" >"$stamp"
fi

junit="$(mktemp -t fjmcp-e2e-python.XXXXXX.xml)"
trap 'rm -f "$junit"' EXIT

status=0
PYTHONDONTWRITEBYTECODE=1 timeout --kill-after=10 "$run_timeout" \
  "$venv/bin/python" -m pytest --junitxml="$junit" "$@" || status=$?

# Count from the JUnit report: errors (a fixture that failed) count as failures.
read -r passed failed < <("$venv/bin/python" - "$junit" <<'PY' || echo "0 1"
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 1")  # pytest died before writing its report
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = failures = errors = skipped = 0
for suite in suites:
    tests += int(suite.get("tests", 0))
    failures += int(suite.get("failures", 0))
    errors += int(suite.get("errors", 0))
    skipped += int(suite.get("skipped", 0))
print(tests - failures - errors - skipped, failures + errors)
PY
)

if [[ "$status" -ne 0 && "$failed" -eq 0 ]]; then
  failed=1 # pytest failed without failing a test (no tests collected, usage error, timeout)
fi
summary "$passed" "$failed"
if [[ "$status" -ne 0 || "$failed" -ne 0 || "$passed" -eq 0 ]]; then
  exit 1
fi
