"""Load tests past one machine: Locust virtual viewers (``p2pml-py watch`` viewers as Locust users,
master and workers on as many machines as needed).

* :mod:`~p2pml_py.loadtest.users` -- ``ViewerUser`` and the ``--p2pml-*`` options (imports Locust);
* :mod:`~p2pml_py.loadtest.locustfile` -- the shipped locustfile;
* :mod:`~p2pml_py.loadtest.host` -- the asyncio process that runs a Locust process's viewers;
* :mod:`~p2pml_py.loadtest.protocol`, :mod:`~p2pml_py.loadtest.metrics` -- sans-I/O parts.

Only ``users`` and ``locustfile`` import Locust (``pip install 'p2pml-py[loadtest]'``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LOCUSTFILE"]

#: The shipped locustfile, for ``locust -f``.
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
