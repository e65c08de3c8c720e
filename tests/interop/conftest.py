"""Browser interop tests: load the harness plugin (p2pml_py.harness.pytest_plugin) for this folder.

``pytest_plugins`` is only honoured in the root conftest, so the plugin is registered here when
this conftest is loaded; its fixtures and end-of-run table then apply to the whole session.
"""

from __future__ import annotations

import pytest

PLUGIN = "p2pml_py.harness.pytest_plugin"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
