"""The retry policy of scripts/pytest-rerun.sh, over the outcome files tests/conftest.py writes.

    python scripts/retry_policy.py check OUTCOMES            exit 0 if every failed test may be retried
    python scripts/retry_policy.py summary OUTCOMES [RERUN]   the retries and the whole run's last line

Only tests marked ``interop`` or ``realtime`` may be retried, once; a unit test never is. The
summary's last line counts the whole run (first run plus retries): ``tests: N passed, M failed``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: str) -> dict[str, dict[str, object]]:
    file = Path(path)
    return json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}


def _failed(tests: dict[str, dict[str, object]]) -> list[str]:
    return sorted(nodeid for nodeid, test in tests.items() if test["outcome"] == "failed")


def check(outcomes: str) -> int:
    tests = _load(outcomes)
    failed = _failed(tests)
    not_retriable = [nodeid for nodeid in failed if not tests[nodeid]["retriable"]]
    if not failed or not_retriable:
        print("\n== NOT RETRIED: a failed test that is neither interop nor realtime is a failure")
        for nodeid in not_retriable or failed:
            print(f"   {nodeid}")
        return 1
    print(f"\n== RETRY: {len(failed)} failed interop/realtime test(s) run once more; each that")
    print("   passes now is FLAKY (its failure is above) and counted below")
    return 0


def summary(outcomes: str, rerun: str | None = None) -> int:
    tests = _load(outcomes)
    retried = _load(rerun) if rerun else {}
    flaky = sorted(n for n, t in retried.items() if t["outcome"] == "passed")
    final = {n: t["outcome"] for n, t in tests.items()}
    final.update({n: t["outcome"] for n, t in retried.items()})
    counts = {k: sum(1 for o in final.values() if o == k) for k in ("passed", "failed", "skipped")}
    print()
    print(f"retries: {len(retried)} test(s) retried, {len(flaky)} flaky (passed on retry)")
    for nodeid in flaky:
        print(f"   FLAKY {nodeid}")
    for nodeid in _failed(retried):
        print(f"   FAILED TWICE {nodeid}")
    line = f"tests: {counts['passed']} passed, {counts['failed']} failed"
    print(line + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))
    return 0


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    raise SystemExit(check(*paths) if command == "check" else summary(*paths))
