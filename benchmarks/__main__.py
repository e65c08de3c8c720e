import sys

if len(sys.argv) > 1 and sys.argv[1] == "capacity":
    # scripts/bench capacity ...: the capacity benchmark (benchmarks/capacity.py)
    from benchmarks.capacity import main as capacity_main

    raise SystemExit(capacity_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "demand":
    # scripts/bench demand ...: demand-driven fetching against fetch-everything (benchmarks/demand.py)
    from benchmarks.demand import main as demand_main

    raise SystemExit(demand_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "soak":
    # scripts/soak ...: the soak run (benchmarks/soak.py); "soak viewer" is one of its viewers
    from benchmarks.soak import main as soak_main

    raise SystemExit(soak_main(sys.argv[2:]))

from benchmarks.run import main

raise SystemExit(main())
