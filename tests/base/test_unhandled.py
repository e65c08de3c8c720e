"""The suite-wide check (tests/conftest.py): a test whose event loop reported an exception nobody
retrieved fails, and a clean one passes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).parents[1] / "conftest.py"


def test_a_lost_task_exception_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(
        """
        import asyncio

        async def test_leaks_a_failed_task():
            async def boom():
                raise ValueError("nobody awaits me")

            asyncio.get_running_loop().create_task(boom())
            await asyncio.sleep(0.01)

        async def test_clean():
            task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
            await task
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*unhandled exceptions*", "*ValueError*nobody awaits me*"])
