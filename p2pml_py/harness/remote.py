"""Browsers on other machines: Playwright servers instead of the local Chromium.

``P2PML_BROWSER_ENDPOINT`` set to one or more Playwright server endpoints (comma-separated
``ws://`` or ``wss://`` URLs) makes :class:`~p2pml_py.harness.browser.Chromium` connect to them
(``BrowserType.connect``) instead of launching ``/usr/bin/chromium``, and spread its pages over
them in turn, so a browser swarm spans as many machines as there are endpoints. Unset (the
default), nothing changes: the local Chromium.

A server is ``playwright run-server --port 3000 --host ADDRESS --unsafe`` on the browser machine,
from the same Playwright minor version as this side (1.65: Playwright refuses another). Each
connection gets a browser of its own, launched with the launch options sent in the
``x-playwright-launch-options`` header: headless, the harness's Chromium flags (INTEROP-NOTES:
without them pages find no peers), and ``executablePath`` when ``P2PML_CHROMIUM`` (or
``Chromium(executable=...)``) names the browser binary *on the server's machine*; otherwise the
server runs its own Chromium. ``--unsafe`` is what lets a server accept flags and a binary from
its clients: without it they are dropped silently and the pages find no peers.

The pages load the origin and the tracker at 127.0.0.1 of *this* machine: the connection exposes
this machine's loopback to the remote browser (Playwright's ``expose_network``, a SOCKS proxy
through the connection; ``P2PML_BROWSER_EXPOSE_NETWORK`` changes the rules, empty turns it off),
so the harness's servers stay on 127.0.0.1. WebRTC is not proxied: pages in one remote browser
reach each other on its loopback; pages on different machines, and Python peers on this one,
need addresses they can route to (ICE candidates of real interfaces: ``--ice-address`` for the
Python peers).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence

from playwright.async_api import Browser, Playwright
from playwright.async_api import Error as PlaywrightError

from p2pml_py.base.errors import HarnessError

__all__ = [
    "ENDPOINT_ENV",
    "EXPOSE_NETWORK_ENV",
    "browser_endpoints",
    "connect_browsers",
    "launch_options",
]

ENDPOINT_ENV = "P2PML_BROWSER_ENDPOINT"
EXPOSE_NETWORK_ENV = "P2PML_BROWSER_EXPOSE_NETWORK"
#: What a remote browser reaches through the connection: this machine's loopback, where the
#: harness's origin and tracker listen.
DEFAULT_EXPOSE_NETWORK = "<loopback>"
#: How long connecting (and the server launching its browser) may take.
CONNECT_TIMEOUT_MS = 60_000


def browser_endpoints(value: str | None = None) -> tuple[str, ...]:
    """The endpoints in ``value`` (default: ``$P2PML_BROWSER_ENDPOINT``); empty: local Chromium."""
    text = os.environ.get(ENDPOINT_ENV, "") if value is None else value
    endpoints = tuple(e.strip() for e in text.split(",") if e.strip())
    for endpoint in endpoints:
        if not endpoint.startswith(("ws://", "wss://")):
            raise HarnessError(
                f"{ENDPOINT_ENV}: Playwright server endpoints (ws:// or wss://, comma-separated), "
                f"got {endpoint!r}"
            )
    return endpoints


def launch_options(
    args: Sequence[str], *, headless: bool, executable: str | None
) -> dict[str, object]:
    """What the server launches its browser with (Playwright's ``LaunchOptions`` names)."""
    options: dict[str, object] = {"headless": headless, "args": list(args)}
    if executable:
        options["executablePath"] = executable
    return options


async def connect_browsers(
    playwright: Playwright,
    endpoints: Sequence[str],
    *,
    args: Sequence[str],
    headless: bool,
    executable: str | None,
) -> list[Browser]:
    """One browser per endpoint; all or none (those connected are closed on a failure)."""
    expose = os.environ.get(EXPOSE_NETWORK_ENV, DEFAULT_EXPOSE_NETWORK).strip() or None
    header = json.dumps(launch_options(args, headless=headless, executable=executable))
    browsers: list[Browser] = []
    try:
        for endpoint in endpoints:
            try:
                browser = await playwright.chromium.connect(
                    endpoint,
                    expose_network=expose,
                    headers={"x-playwright-launch-options": header},
                    timeout=CONNECT_TIMEOUT_MS,
                )
            except PlaywrightError as exc:
                raise HarnessError(
                    f"cannot use the Playwright server {endpoint} ({ENDPOINT_ENV}): {exc}"
                ) from exc
            browsers.append(browser)
    except BaseException:
        for browser in browsers:
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        raise
    return browsers
