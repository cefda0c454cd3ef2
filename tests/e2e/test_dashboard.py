"""The dashboard in headless Chromium (Playwright, the Debian chromium; no download):
served by the bridge, loading from the query API and following the WebSocket; a deposit
POSTed to the command API appears without a reload, and it survives a bridge restart.

``CHRONICLE_UPDATE_SCREENSHOT=1`` also saves docs/dashboard.png for the README.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chronicle.topology import projection_queues
from tests import services
from tests.integration.ws_bridge.stack import Process, Stack, free_port, require_tool

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READ_SIDE = all(
    importlib.util.find_spec(module) is not None
    for module in ("chronicle.run_queries", "chronicle.run_projector")
)
"""Whether this build has the query API; without it the dashboard rebuilds its state
from the log, and the test checks that path instead."""
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


@dataclass
class Site:
    stack: Stack
    commands: Process
    queries: Process | None
    bridge: Process

    @property
    def dashboard(self) -> str:
        return f"{self.bridge.url}/"

    def post(self, path: str, body: dict[str, object]) -> int:
        reply = httpx.post(f"{self.commands.url}{path}", json=body, timeout=10)
        assert reply.status_code in (200, 201), reply.text
        position: int = reply.json()["position"]
        return position

    def wait_projected(self, position: int) -> None:
        if self.queries is None:
            return
        reply = httpx.get(f"{self.queries.url}/v1/stats?min_position={position}", timeout=15)
        assert reply.status_code == 200, reply.text


@pytest.fixture(scope="module")
def site(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_tool("chromium", CHROMIUM)
    services.require("RabbitMQ", services.AMQP_URL)
    name = services.unique_name("chronicle_e2e")
    services.run_sync(lambda: services.create_database(name, template=pg_template))
    stack = Stack(tmp_path_factory.mktemp("e2e"), services.database_url(name), services.AMQP_URL)
    bridge_port, queries_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{bridge_port}"
    try:
        stack.start("relay", "relay")
        commands = stack.start("commands", "commands")
        queries: Process | None = None
        if READ_SIDE:
            stack.start("projector", "projector")
            queries = stack.start("queries", "queries", queries_port, CHRONICLE_CORS_ORIGINS=origin)
        bridge = stack.start(
            "bridge",
            "bridge",
            bridge_port,
            CHRONICLE_BRIDGE_QUERIES_URL=f"http://127.0.0.1:{queries_port}",
            CHRONICLE_BRIDGE_SHUTDOWN_GRACE="3",
        )
        for process in stack.processes:
            process.wait_ready()
        yield Site(stack, commands, queries, bridge)
    finally:
        stack.stop_all()
        queues = [queue.name for queue in projection_queues()]
        services.run_sync(lambda: stack.delete_broker_objects(queues))
        services.run_sync(lambda: services.drop_database(name))


@pytest.fixture
async def page(site: Site) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 760})
            yield await context.new_page()
        finally:
            await browser.close()


def cents_of(account_id: str) -> str:
    return f"#account-{account_id} td.balance"


async def test_the_dashboard_follows_deposits_live_and_survives_a_bridge_restart(
    site: Site, page: object
) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    site.post("/v1/accounts", {"account_id": account, "owner": "Ada Lovelace"})
    site.wait_projected(site.post(f"/v1/accounts/{account}/deposits", {"amount": 1234}))

    await page.goto(site.dashboard)
    state = page.locator("#state")
    await expect(state).to_have_attribute("data-state", "live", timeout=15_000)
    balance = page.locator(cents_of(account))
    await expect(balance).to_have_attribute("data-cents", "1234")
    notice = page.locator("#notice")
    if READ_SIDE:
        await expect(notice).to_be_hidden()  # the snapshot came from the query API
    else:
        await expect(notice).to_contain_text("rebuilt from the event log")
    await page.evaluate("window.loadedOnce = true")

    site.post(f"/v1/accounts/{account}/deposits", {"amount": 100})
    await expect(balance).to_have_attribute("data-cents", "1334", timeout=10_000)

    site.bridge.stop()
    await expect(state).not_to_have_attribute("data-state", "live", timeout=10_000)
    site.post(f"/v1/accounts/{account}/deposits", {"amount": 200})  # while no bridge runs
    site.bridge.restart().wait_ready()
    await expect(state).to_have_attribute("data-state", "live", timeout=20_000)
    await expect(balance).to_have_attribute("data-cents", "1534", timeout=10_000)
    site.post(f"/v1/accounts/{account}/deposits", {"amount": 1})
    await expect(balance).to_have_attribute("data-cents", "1535", timeout=10_000)
    assert await page.evaluate("window.loadedOnce === true"), "the page was reloaded"

    if os.environ.get("CHRONICLE_UPDATE_SCREENSHOT") == "1":
        await _screenshot(site, page)


async def _screenshot(site: Site, page: object) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    owners = ["Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra"]
    last = 0
    for index, owner in enumerate(owners):
        account = f"acc-{uuid.uuid4().hex[:8]}"
        site.post("/v1/accounts", {"account_id": account, "owner": owner})
        for amount in (5000 + index * 1250, 725, 1990):
            last = site.post(f"/v1/accounts/{account}/deposits", {"amount": amount})
        last = site.post(f"/v1/accounts/{account}/withdrawals", {"amount": 1500})
    await expect(page.locator("#position")).to_have_text(str(last), timeout=10_000)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
