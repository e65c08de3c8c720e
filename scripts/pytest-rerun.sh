# Runs pytest, then (if tests failed) re-runs only the failed ones once: see scripts/test.
# Usage: bash scripts/pytest-rerun.sh CACHE_DIR [pytest arguments...]
cache="$1"; shift
python -m pytest -o cache_dir="$cache" "$@"
status=$?
if [ "$status" -eq 1 ] && [ "${P2PML_NO_RERUN:-}" != "1" ]; then
  echo
  echo "== FLAKY CHECK: re-running the failed tests once; any that pass now are flaky (failures above)"
  python -m pytest -o cache_dir="$cache" --last-failed --last-failed-no-failures none "$@"
  status=$?
fi
exit "$status"
