#!/usr/bin/env python3
"""Summarizes one conformance-suite run from its results directory (the suite's -o).

Reads <results>/server-<scenario>-<timestamp>/checks.json, the run's expected-failures
file and the list of scenarios the run had to cover, and classifies every scenario the
way the suite's own baseline check does (a check with status FAILURE or WARNING makes
its scenario fail; `scenario` entries cover a whole scenario, `scenario:check-id`
entries single checks):

  passed            no failing check, not in the baseline
  failed            a failing check the baseline does not list (or no results at all)
  expected-failure  every failing check is covered by the baseline
  stale             listed in the baseline but passing (the suite fails the run for it)
  not scored        run, but outside the requirement set (alpha --requirements only)

Writes one line per scenario to <results>/summary.txt and prints one summary line.
Standard library only; the YAML files involved are simple enough for a line parser.

Usage:
  summarize.py --label TEXT --results DIR --baseline FILE
               (--scenario-list FILE | --requirements FILE) [--exit-code N]
"""

import argparse
import json
import os
import re
import sys

FAILING = ("FAILURE", "WARNING")
TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def strip_value(text):
    text = text.split(" #", 1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def top_level_lists(path):
    """{key: [items]} for top-level `key:` lines followed by `- item` lines."""
    lists, key = {}, None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            top = re.match(r"^([A-Za-z_][\w-]*):\s*(.*)$", line)
            if top:
                key = top.group(1)
                rest = strip_value(top.group(2))
                lists[key] = []
                if rest not in ("", "[]"):
                    raise SystemExit(f"{path}: unsupported inline value for {key}: {rest}")
                continue
            item = re.match(r"^\s*-\s*(.*)$", line)
            if item and key is not None:
                lists[key].append(strip_value(item.group(1)))
            elif key is not None and lists[key]:
                # A continuation line of a mapping item (e.g. `leg: server`): append to it.
                lists[key][-1] += "\n" + line.strip()
    return lists


def scored_from_requirements(path):
    lists = top_level_lists(path)
    scored = list(lists.get("server", []))
    not_scored = []
    for entry in lists.get("not_scored", []):
        fields = {}
        for part in entry.split("\n"):
            if ":" in part:
                name, value = part.split(":", 1)
                fields[name.strip()] = strip_value(value)
        if fields.get("leg") == "server":
            not_scored.append(fields.get("scenario"))
    return scored, not_scored


def scored_from_list(path):
    """Server scenario names from `conformance list --server` output."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = re.match(r"^\s*-\s+([\w./-]+)", line)
            if match:
                names.append(match.group(1))
    return names


def read_results(results):
    """{scenario: checks} from the newest checks.json of each scenario."""
    found = {}
    if not os.path.isdir(results):
        return found
    for entry in sorted(os.listdir(results)):
        path = os.path.join(results, entry, "checks.json")
        if not entry.startswith("server-") or not os.path.isfile(path):
            continue
        name = TIMESTAMP.sub("", entry[len("server-"):])
        try:
            with open(path, encoding="utf-8") as f:
                found[name] = json.load(f)
        except (OSError, ValueError) as error:
            found[name] = [{"id": name, "status": "FAILURE", "errorMessage": f"unreadable checks.json: {error}"}]
    return found


def classify(checks, whole, per_check):
    failing = {c.get("id") for c in checks if c.get("status") in FAILING}
    if whole:
        return ("expected-failure" if failing else "stale"), sorted(failing)
    if per_check:
        unexpected = failing - per_check
        passing_listed = {
            c.get("id") for c in checks if c.get("id") in per_check and c.get("status") == "SUCCESS"
        }
        if unexpected:
            stale = [f"stale: {c}" for c in sorted(passing_listed)]
            return "failed", sorted(unexpected) + stale
        if passing_listed:
            return "stale", sorted(passing_listed)
        return ("expected-failure" if failing else "passed"), sorted(failing)
    return ("failed" if failing else "passed"), sorted(failing)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--baseline", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--scenario-list")
    group.add_argument("--requirements")
    parser.add_argument("--exit-code", type=int)
    args = parser.parse_args()

    if args.requirements:
        scored, not_scored = scored_from_requirements(args.requirements)
    else:
        scored, not_scored = scored_from_list(args.scenario_list), []
    baseline = top_level_lists(args.baseline).get("server", [])
    whole = {e for e in baseline if ":" not in e}
    per_check = {}
    for entry in baseline:
        if ":" in entry:
            scenario, check = entry.split(":", 1)
            per_check.setdefault(scenario, set()).add(check)

    results = read_results(args.results)
    counts = {"passed": 0, "failed": 0, "expected-failure": 0, "stale": 0}
    lines = []
    for scenario in scored:
        if scenario not in results:
            verdict, detail = "failed", ["no results (scenario did not run or crashed)"]
        else:
            verdict, detail = classify(results[scenario], scenario in whole, per_check.get(scenario, set()))
        counts[verdict] += 1
        lines.append((scenario, verdict, detail))
    extra = [s for s in results if s not in scored]
    unscored_failing = 0
    for scenario in extra:
        failing = sorted({c.get("id") for c in results[scenario] if c.get("status") in FAILING})
        unscored_failing += bool(failing)
        tag = "not scored" if scenario in not_scored or not args.requirements else "not scored (extra)"
        lines.append((scenario, f"{tag}: {'failing' if failing else 'passing'}", failing))
    for listed in sorted(whole | set(per_check)):
        if listed not in scored:
            lines.append((listed, "baseline entry for a scenario this run does not score", []))

    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "summary.txt"), "w", encoding="utf-8") as f:
        for scenario, verdict, detail in lines:
            suffix = f"  [{', '.join(map(str, detail))}]" if detail else ""
            f.write(f"{scenario}: {verdict}{suffix}\n")

    line = (
        f"{args.label}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['expected-failure']} expected-failure"
    )
    if counts["stale"]:
        line += f", {counts['stale']} stale baseline entr{'y' if counts['stale'] == 1 else 'ies'}"
    if extra:
        line += f"; not scored: {len(extra)} run, {unscored_failing} failing"
    if args.exit_code is not None:
        line += f"; suite exit {args.exit_code}"
    print(line)
    for scenario, verdict, detail in lines:
        if verdict in ("failed", "stale"):
            print(f"    {verdict}: {scenario} {detail}")
    ok = counts["failed"] == 0 and counts["stale"] == 0 and (args.exit_code in (None, 0))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
