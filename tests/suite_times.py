#!/usr/bin/env python3
"""suite_times.py - each meson suite's duration, from a meson test log.

meson runs tests of different suites side by side, so a suite's duration
is given two ways: the wall-clock span from its first test's start to its
last test's end, and the sum of its tests' durations. Used by dev.sh after
every `meson test` so CI output shows where the time goes.

usage: suite_times.py BUILD_DIR
"""
import json
import sys


def main():
    path = sys.argv[1] + "/meson-logs/testlog.json"
    suites = {}
    try:
        with open(path) as f:
            for line in f:
                t = json.loads(line)
                name = t["name"].split(" / ")[0].split(":", 1)[-1]
                start, dur = t["starttime"], t["duration"]
                s = suites.setdefault(name, [0, start, start + dur, 0.0, 0])
                s[0] += 1
                s[1] = min(s[1], start)
                s[2] = max(s[2], start + dur)
                s[3] += dur
                s[4] += t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL")
    except (OSError, ValueError, KeyError) as e:
        print(f"suite_times: {path}: {e}", file=sys.stderr)
        return 0
    print(f"{'suite':<12} {'tests':>5} {'wall s':>8} {'sum s':>8} {'failed':>6}")
    for name, (n, first, last, total, failed) in sorted(suites.items()):
        print(f"{name:<12} {n:>5} {last - first:>8.1f} {total:>8.1f} {failed:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
