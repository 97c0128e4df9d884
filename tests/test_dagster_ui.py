"""The Dagster UI as an analyst uses it: a real webserver on the demo, GraphQL, Chromium.

The webserver runs in its own session (Dagster ignores SIGTERM when started in the
background otherwise) with an instance whose runs launch at once, without a daemon, so
no schedule or sensor starts runs of its own. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import demo_config

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "dagster-ui"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTANCE = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
ASSETS_QUERY = """
{ assetNodes { assetKey { path } isMaterializable isPartitioned } }
"""
LOCATION_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name } } } }
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN_QUERY = """
query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""
LINEAGE_QUERY = """
query Lineage($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      dependencyKeys { path }
      dependedByKeys { path }
      assetMaterializations(limit: 1) {
        metadataEntries {
          label
          ... on TableColumnLineageMetadataEntry {
            lineage { columnName columnDeps { assetKey { path } columnName } }
          }
        }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webserver:
    def __init__(self, root: Path) -> None:
        home = root / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(INSTANCE, "utf-8")
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "DAGSTER_HOME": str(home),
               "HEADWATER_CONFIG": str(demo_config(root))}
        self.log = (root / "webserver.log").open("w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-m",
             "dagster_project.definitions", "-h", "127.0.0.1", "-p",
             self.url.rsplit(":", 1)[1]],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the webserver exited ({self.process.returncode})")
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError("the webserver did not answer /server_info")

    def graphql(self, query: str, **variables) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query,
                                                              "variables": variables},
                                 timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    server = Webserver(tmp_path_factory.mktemp("ui"))
    try:
        server.wait_ready()
        server.graphql("mutation { setNuxSeen }")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def finished_run(webserver) -> str:
    """A run over every materializable asset, launched over GraphQL, waited for."""
    location = webserver.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"][0]
    assets = [node["assetKey"] for node in webserver.graphql(ASSETS_QUERY)["assetNodes"]
              if node["isMaterializable"] and not node["isPartitioned"]]
    launched = webserver.graphql(LAUNCH, params={
        "selector": {"repositoryLocationName": location["name"],
                     "repositoryName": "__repository__", "jobName": "__ASSET_JOB",
                     "assetSelection": assets},
        "mode": "default",
    })["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 300
    status = "STARTING"
    while time.monotonic() < deadline and status not in ("SUCCESS", "FAILURE", "CANCELED"):
        time.sleep(1)
        status = webserver.graphql(RUN_QUERY, id=run_id)["runOrError"]["status"]
    assert status == "SUCCESS"
    return run_id


def test_lineage_and_column_lineage_over_graphql(webserver, finished_run) -> None:
    node = webserver.graphql(LINEAGE_QUERY, key={"path": ["clean", "order_line"]})[
        "assetNodeOrError"]

    assert {tuple(k["path"]) for k in node["dependencyKeys"]} == {
        ("raw", "erp", "order_lines"), ("clean", "product")}
    entries = node["assetMaterializations"][0]["metadataEntries"]
    lineage = next(e["lineage"] for e in entries if e["label"] == "dagster/column_lineage")
    deps = {item["columnName"]: {(tuple(d["assetKey"]["path"]), d["columnName"])
                                 for d in item["columnDeps"]} for item in lineage}
    assert deps["sku"] == {(("raw", "erp", "order_lines"), "SKU")}
    assert (("clean", "product"), "description") in deps["product_description"]
    upstream = webserver.graphql(LINEAGE_QUERY, key={"path": ["clean", "product"]})[
        "assetNodeOrError"]
    assert {tuple(k["path"]) for k in upstream["dependedByKeys"]} >= {
        ("clean", "order_line")}


DEFINITION_QUERY = """
query Definition($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      metadataEntries {
        label
        ... on TableColumnLineageMetadataEntry {
          lineage { columnName columnDeps { assetKey { path } columnName } }
        }
        ... on TableSchemaMetadataEntry { schema { columns { name type } } }
      }
    }
  }
}
"""


def lineage_of(entries: list[dict]) -> dict[str, set[tuple[str, str]]]:
    found = next(e["lineage"] for e in entries if e["label"] == "dagster/column_lineage")
    return {item["columnName"]: {("/".join(d["assetKey"]["path"]), d["columnName"])
                                 for d in item["columnDeps"]} for item in found}


def test_every_raw_assets_column_lineage_points_at_its_source_node(webserver, finished_run
                                                                  ) -> None:
    raw = [n["assetKey"]["path"] for n in webserver.graphql(ASSETS_QUERY)["assetNodes"]
           if n["assetKey"]["path"][0] == "raw" and not n["isPartitioned"]]
    assert len(raw) == 8
    for path in raw:
        node = webserver.graphql(LINEAGE_QUERY, key={"path": path})["assetNodeOrError"]
        sources = {"/".join(k["path"]) for k in node["dependencyKeys"]}
        assert len(sources) == 1 and "/source/" in next(iter(sources)), (path, sources)
        lineage = lineage_of(node["assetMaterializations"][0]["metadataEntries"])
        assert lineage and all(deps and {d for d, _ in deps} == sources
                               for deps in lineage.values()), path
    orders = webserver.graphql(LINEAGE_QUERY, key={"path": ["raw", "erp", "orders"]})[
        "assetNodeOrError"]
    assert lineage_of(orders["assetMaterializations"][0]["metadataEntries"])[
        "total_cents"] == {("erp/source/orders", "total_cents")}


def test_the_model_output_names_only_the_fields_the_step_uses(webserver, finished_run
                                                             ) -> None:
    node = webserver.graphql(DEFINITION_QUERY, key={"path": ["model", "account_health"]})[
        "assetNodeOrError"]
    lineage = lineage_of(node["metadataEntries"])
    assert lineage["risk"] == {("context/account_context", "document.counts.open_tickets"),
                               ("context/account_context", "document.counts.late_shipments"),
                               ("context/account_context", "document.open_tickets.priority")}
    for field in ("risk", "summary", "next_action", "cited_sources"):
        assert ("context/account_context", "document") not in lineage[field], field


def test_the_party_crosswalk_has_columns_and_lineage(webserver, finished_run) -> None:
    node = webserver.graphql(DEFINITION_QUERY, key={"path": ["clean", "party_xref"]})[
        "assetNodeOrError"]
    schema = next(e["schema"] for e in node["metadataEntries"]
                  if e["label"] == "dagster/column_schema")
    assert {c["name"] for c in schema["columns"]} >= {"party_id", "system", "source_key",
                                                     "matched_by"}
    lineage = lineage_of(node["metadataEntries"])
    assert ("clean/account", "erp_customer_no") in lineage["party_id"]
    assert ("clean/customer", "customer_no") in lineage["source_key"]


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1366,900", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_text_once(browser, url: str, wanted: list[str], shot: str, *,
                   scroll_to: str | None = None, timeout: float = 60) -> str:
    """Open ``url``, wait until every ``wanted`` text shows and nothing is still loading,
    bring ``scroll_to`` (a text) into view, and save a screenshot."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = browser.find_element(By.TAG_NAME, "body").text
        if all(w in text for w in wanted) and "Loading" not in text:
            break
        time.sleep(1)
    if scroll_to:
        target = browser.find_elements(By.XPATH, f"//*[text()='{scroll_to}']")
        if target:
            browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", target[0])
            time.sleep(0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / shot))
    return text


def click_link(browser, text: str, shot: str, wanted: list[str], timeout: float = 60) -> str:
    """Click the link whose text is ``text`` (the UI writes asset keys as ``a / b``), wait
    for ``wanted`` on the page it opens, and save a screenshot."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        links = [a for a in browser.find_elements(By.TAG_NAME, "a") if a.text.strip() == text]
        if links or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert links, f"no link {text!r} on {browser.current_url}"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", links[0])
    links[0].click()
    body = ""
    while time.monotonic() < deadline:
        body = browser.find_element(By.TAG_NAME, "body").text
        if all(w in body for w in wanted) and "Loading" not in body:
            break
        time.sleep(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / shot))
    return body


def test_an_analyst_walks_by_clicks_from_a_model_answer_to_the_source_columns(
        webserver, finished_run, browser) -> None:
    text = page_text_once(browser, f"{webserver.url}/assets/model/account_health",
                          ["answers explained (sample)", "ticket:"], "1_model_answers.png",
                          scroll_to="answers explained (sample)")
    assert "answered from counts.open_tickets, counts.late_shipments, " \
           "open_tickets.priority" in text
    assert "priority ← crm GET /api/tickets.priority" in text  # a cited row's source column
    text = click_link(browser, "context / account_context", "2_context.png",
                      ["document.open_tickets.priority"])
    assert "number of open_tickets items before trimming" in text
    text = click_link(browser, "clean / ticket", "3_clean_ticket.png", ["Columns", ">= 1"])
    assert ">= 1" in text and "matches ^ACC-" in text  # constraints in words
    text = click_link(browser, "raw / crm / tickets", "4_raw_tickets.png",
                      ["landed by the connector"])
    assert "crm/source/api_tickets.priority" in text
    text = click_link(browser, "crm / source / api_tickets", "5_source.png",
                      ["Columns", "GET /api/tickets"])
    assert "Never materialized" not in text
    assert "priority" in text and "integer" in text  # the source's columns, JSON types
    assert (ARTIFACTS / "5_source.png").stat().st_size > 10_000


def test_an_analyst_sees_the_lineage_table_on_the_overview(webserver, finished_run,
                                                           browser) -> None:
    text = page_text_once(browser, f"{webserver.url}/assets/clean/order_line",
                          ["column lineage", "raw/erp/order_lines.SKU"],
                          "clean_order_line_overview.png", scroll_to="column lineage")

    assert "column lineage" in text
    assert "raw/erp/order_lines.SKU" in text
    assert "clean/product.description" in text
    assert (ARTIFACTS / "clean_order_line_overview.png").stat().st_size > 10_000


def test_an_analyst_sees_upstream_and_downstream_on_the_lineage_page(webserver, finished_run,
                                                                     browser) -> None:
    text = page_text_once(browser, f"{webserver.url}/assets/clean/product?view=lineage",
                          ["order_line", "products"], "clean_product_lineage.png")

    assert "order_line" in text  # downstream
    assert "products" in text  # upstream: raw/erp/products
    assert (ARTIFACTS / "clean_product_lineage.png").stat().st_size > 10_000
