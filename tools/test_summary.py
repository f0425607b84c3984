#!/usr/bin/env python3
"""Prints `N passed, N failed, N skipped` from Bazel's and pytest's JUnit XML results.

Usage: test_summary.py --bazel-targets FILE --testlogs DIR [--junit FILE ...]
Every test case counts once. A Bazel test target without a result file (it failed to
build, crashed before writing XML, or timed out) counts as one failure.
"""
import argparse
import os
import sys
import xml.etree.ElementTree as ET


def count(xml_path):
    passed = failed = skipped = 0
    root = ET.parse(xml_path).getroot()
    cases = list(root.iter("testcase"))
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None or case.get("status") == "notrun" \
                or case.get("result") == "skipped":
            skipped += 1
        else:
            passed += 1
    if not cases:
        # A target that ran no test case: a pass only if the suite reports no failure.
        bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0))
                  for s in root.iter("testsuite"))
        return (0, 1, 0) if bad else (1, 0, 0)
    return passed, failed, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bazel-targets")
    ap.add_argument("--testlogs")
    ap.add_argument("--junit", action="append", default=[])
    args = ap.parse_args()
    totals = [0, 0, 0]
    missing = []
    if args.bazel_targets:
        for label in open(args.bazel_targets).read().split():
            rel = label.lstrip("/").replace(":", "/")
            xml = os.path.join(args.testlogs, rel, "test.xml")
            if not os.path.exists(xml):
                missing.append(label)
                totals[1] += 1
                continue
            for i, n in enumerate(count(xml)):
                totals[i] += n
    for junit in args.junit:
        if not os.path.exists(junit):
            missing.append(junit)
            totals[1] += 1
            continue
        for i, n in enumerate(count(junit)):
            totals[i] += n
    for m in missing:
        print(f"no result for {m} (failed to build, crashed or timed out)", file=sys.stderr)
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
