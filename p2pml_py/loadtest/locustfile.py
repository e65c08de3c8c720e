"""The shipped locustfile: virtual viewers only (:class:`~p2pml_py.loadtest.users.ViewerUser`).

``python -m p2pml_py.loadtest [locust options]`` runs Locust with it; ``python -m
p2pml_py.loadtest --path`` prints its path for ``locust -f``.
"""

from __future__ import annotations

from p2pml_py.loadtest.users import ViewerUser

__all__ = ["ViewerUser"]
