# Runs pytest (in parallel: see below). If tests failed and every failed test is marked interop or realtime (real browsers,
# wall-clock windows: tests/conftest.py), those are run once more; a failed unit test is never
# re-run. Every retry is listed and counted, and the last line sums up the whole run
# ("tests: N passed, M failed"). P2PML_NO_RERUN=1 turns retries off. See scripts/test.
# Usage: bash scripts/pytest-rerun.sh CACHE_DIR [pytest arguments...]
cache="$1"; shift
here="$(dirname "$0")"
mkdir -p "$cache"
outcomes="$cache/p2pml-outcomes.json"
retried="$cache/p2pml-retried.json"
rm -f "$outcomes" "$retried"
# --durations: the 25 slowest tests, so the suite's time budget (CI: well under 20 minutes) can
# be watched from every run's log.
# Two pytest-xdist workers by default (CI has 2 cores): the browser tests one after another on
# one worker (xdist_group "browser", tests/conftest.py), the rest on the other meanwhile.
# P2PML_TEST_WORKERS=N sets the number, 1 runs everything in this process.
workers="${P2PML_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" -gt 1 ] 2>/dev/null; then
  parallel=(-n "$workers" --dist loadgroup)
fi
P2PML_OUTCOMES_FILE="$outcomes" python -m pytest -o cache_dir="$cache" --durations=25 \
  "${parallel[@]}" "$@"
status=$?
if [ "$status" -eq 0 ]; then  # passed: the same two summary lines (no retry was needed)
  python "$here/retry_policy.py" summary "$outcomes"
  exit 0
fi
[ "$status" -eq 1 ] || exit "$status"  # pytest could not run (collection, usage, ...)
if [ "${P2PML_NO_RERUN:-}" = "1" ] || ! python "$here/retry_policy.py" check "$outcomes"; then
  python "$here/retry_policy.py" summary "$outcomes"
  exit 1
fi
P2PML_OUTCOMES_FILE="$retried" python -m pytest -o cache_dir="$cache" --last-failed \
  --last-failed-no-failures none "$@"
status=$?
python "$here/retry_policy.py" summary "$outcomes" "$retried"
exit "$status"
