"""The connector author's guide (``docs/``) runs as written.

Each page is followed the way a reader would: its ``file=`` blocks are written into an
empty folder, straight from the Markdown, and its ``sh run`` blocks are run there with
this virtual environment's ``python``, ``headwater`` and ``dagster`` first on ``PATH``;
each must exit 0 and print the lines its ``output`` block shows (see
``tests/guide_markdown.py``). The conformance test of every guide connector is one of
those commands. The REST and SOAP pages tell the reader to start the demo's CRM and
logistics servers and export where they are; here the servers are started on port 0 and
the same variables set. Child pytest runs get ``-W error`` through ``PYTEST_ADDOPTS``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from headwater_demo.crm import CRMServer
from headwater_demo.logistics import LogisticsServer
from pipelines.warehouse import DuckDBWarehouse
from tests.guide_markdown import GuideError, Step, missing_line, page_steps

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONNECTOR_PAGES = ("sql.md", "odbc.md", "rest.md", "soap.md", "custom.md")
PAGES = (*CONNECTOR_PAGES, "normalization.md", "contexts-and-models.md")
# Pages of reference, not followed here: the deployment profiles they describe are
# loaded and run by tests/test_deploy_profiles.py and tests/test_celery_deploy.py.
REFERENCE_PAGES = ("deploy.md",)
PRODUCT = ("connectors", "normalization", "pipelines", "dagster_project")


def steps_of(page: str) -> list[Step]:
    return page_steps((DOCS / page).read_text("utf-8"), page)


def guide_env(folder: Path, **variables: str) -> dict[str, str]:
    """A reader's shell: the venv first on PATH, a home of its own, nothing inherited."""
    home = folder / ".home"
    home.mkdir(exist_ok=True)
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
            "LANG": "C.UTF-8", "PYTEST_ADDOPTS": "-W error", **variables}


def follow(page: str, folder: Path, env: dict[str, str]) -> list[Step]:
    """Write the page's files and run its commands in ``folder``, checking each."""
    steps = steps_of(page)
    for step in steps:
        block = step.block
        if step.is_file:
            target = folder / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a" if "append" in block.options else "w",
                             encoding="utf-8") as out:
                out.write(("\n" if "append" in block.options else "") + block.text)
            continue
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=folder,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=600, check=False)
        assert done.returncode == step.status, (
            f"{block.where}: exit status {done.returncode}, the page expects {step.status}"
            f"\n$ {block.text}{done.stdout[-4000:]}")
        if step.expected is not None:
            missing = missing_line(step.expected.text, done.stdout)
            assert missing is None, (f"{step.expected.where}: the output lacks {missing!r}"
                                     f"\n$ {block.text}{done.stdout[-4000:]}")
    return steps


def row_counts(folder: Path) -> dict[str, int]:
    with DuckDBWarehouse(folder / "warehouse.duckdb") as warehouse:
        return {table: warehouse.row_count(table) for table in warehouse.tables()
                if not table.startswith("_")}


def exported(page: str, *names: str) -> None:
    """The page tells the reader to set each variable the test sets."""
    text = (DOCS / page).read_text("utf-8")
    for name in names:
        assert f"export {name}=" in text, f"{page} never says to export {name}"


# -- the pages, as documents ----------------------------------------------------------------


def test_the_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text("utf-8")
    linked = set(re.findall(r"\]\(([a-z-]+\.md)\)", index))
    assert linked == {*PAGES, *REFERENCE_PAGES}
    assert {p.name for p in DOCS.glob("*.md")} == {*PAGES, *REFERENCE_PAGES, "README.md"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_writes_files_and_runs_commands_it_checks(page: str) -> None:
    steps = steps_of(page)
    assert any(s.is_file for s in steps), f"{page} writes no file"
    runs = [s for s in steps if not s.is_file]
    assert runs and all(s.expected is not None for s in runs), \
        f"{page}: every command it runs shows its output"


@pytest.mark.parametrize("page", CONNECTOR_PAGES)
def test_every_connector_page_runs_a_conformance_test_and_shows_dagster(page: str) -> None:
    commands = "".join(s.block.text for s in steps_of(page) if not s.is_file)
    files = "".join(s.block.text for s in steps_of(page) if s.is_file)
    assert "conformance_suite(" in files and "python -m pytest" in commands
    assert "build_definitions(" in files and "python definitions.py" in commands
    for command in ("headwater check", "headwater discover", "headwater run"):
        assert command in commands, f"{page} does not run {command}"


def python_files(tmp_path: Path) -> list[Path]:
    """Every Python file of the guide, written under ``tmp_path/<page>/``."""
    written = []
    for page in PAGES:
        for step in steps_of(page):
            if step.is_file and step.path.endswith(".py"):
                target = tmp_path / page.removesuffix(".md") / step.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step.block.text, "utf-8")
                written.append(target)
    return written


def test_the_guides_python_passes_the_linter(tmp_path: Path) -> None:
    files = python_files(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
         "--output-format", "concise", *map(str, files)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_guide_uses_only_public_names_of_the_product(tmp_path: Path) -> None:
    private = []
    for file in python_files(tmp_path):
        for node in ast.walk(ast.parse(file.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules, names = [node.module], [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                modules, names = [a.name for a in node.names], []
            else:
                continue
            for module in modules:
                if module.split(".")[0] not in PRODUCT:
                    continue
                if any(part.startswith("_") for part in module.split(".")) or \
                        any(name.startswith("_") for name in names):
                    private.append(f"{file.name}: {module} {names}")
    assert not private


def test_output_lines_match_in_order_with_ellipses() -> None:
    shown = "run ... into duckdb:///w.duckdb\n...\nshop.orders: 6 rows -> raw_shop__orders in ...\n"
    printed = ("run 2024-1 into duckdb:///w.duckdb\nshop.customers: 5 rows\n"
               "shop.orders: 6 rows -> raw_shop__orders in 0.0s\n")
    assert missing_line(shown, printed) is None
    assert missing_line(shown, printed.replace("6 rows", "7 rows")) == \
        "shop.orders: 6 rows -> raw_shop__orders in ..."
    assert missing_line("b\na\n", "a\nb\n") == "a"  # in order
    assert missing_line("shop\n", "shop.orders\n") == "shop"  # whole lines


def test_an_output_block_must_follow_the_command_it_shows() -> None:
    page = "```python file=a.py\nx = 1\n```\n\n```text output\nx\n```\n"
    with pytest.raises(GuideError, match="must follow the sh run block"):
        page_steps(page, "bad.md")
    with pytest.raises(GuideError, match="inside the page's folder"):
        page_steps("```toml file=../x.toml\n```\n", "bad.md")


# -- the pages, followed --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the SQL page, followed to its end; the normalization and context
    pages continue in it."""
    folder = tmp_path_factory.mktemp("shop")
    follow("sql.md", folder, guide_env(folder))
    return folder


@pytest.fixture(scope="module")
def normalized_shop(shop: Path) -> Path:
    follow("normalization.md", shop, guide_env(shop))
    return shop


@pytest.mark.slow
def test_the_sql_page(shop: Path) -> None:
    counts = row_counts(shop)
    assert counts["raw_shop__customers"] == 5 and counts["raw_shop__orders"] == 6


@pytest.mark.slow
def test_the_normalization_page(normalized_shop: Path) -> None:
    counts = row_counts(normalized_shop)
    assert counts["clean_customer"] == 4 and counts["quarantine_customer"] == 1
    assert counts["clean_order"] == 6


@pytest.mark.slow
def test_the_contexts_and_models_page(normalized_shop: Path) -> None:
    follow("contexts-and-models.md", normalized_shop, guide_env(normalized_shop))
    counts = row_counts(normalized_shop)
    assert counts["context_customer"] == 4 and counts["context_order"] == 6
    assert counts["model_customer_value"] == 4


@pytest.mark.slow
def test_the_odbc_page(tmp_path: Path) -> None:
    follow("odbc.md", tmp_path, guide_env(tmp_path))
    counts = row_counts(tmp_path)
    assert counts["raw_depot__items"] == 3 and counts["raw_depot__stock_moves"] == 6


@pytest.mark.slow
def test_the_rest_page(tmp_path: Path) -> None:
    exported("rest.md", "CRM_URL", "CRM_CLIENT_ID", "CRM_CLIENT_SECRET")
    with CRMServer() as crm:
        follow("rest.md", tmp_path, guide_env(
            tmp_path, CRM_URL=crm.url, CRM_CLIENT_ID=crm.client_id,
            CRM_CLIENT_SECRET=crm.client_secret))
    counts = row_counts(tmp_path)
    assert counts["raw_crm__accounts"] == 120 and counts["raw_crm__tickets"] == 400


@pytest.mark.slow
def test_the_soap_page(tmp_path: Path) -> None:
    exported("soap.md", "LOGISTICS_WSDL", "LOGISTICS_PASSWORD")
    with LogisticsServer() as logistics:
        follow("soap.md", tmp_path, guide_env(
            tmp_path, LOGISTICS_WSDL=logistics.wsdl_url, LOGISTICS_PASSWORD=logistics.password))
    counts = row_counts(tmp_path)
    assert counts["raw_carrier__shipments"] == 300
    assert counts["raw_carrier__tracking_events"] > 300


@pytest.mark.slow
def test_the_custom_connector_page(tmp_path: Path) -> None:
    follow("custom.md", tmp_path, guide_env(tmp_path))
    assert row_counts(tmp_path)["raw_webshop__page_views"] == 7
