"""What headwater's REST connector costs over a plain ``requests`` loop, page for page.

Run with no arguments (``make bench``). It starts the demo CRM of the legacy estate
(``python -m headwater_demo.crm``) in its own process on a free port with 200,000
tickets, then, repetitions interleaved, reads every ticket:

- ``headwater``: ``RESTConnector`` with OAuth2 client credentials (authlib), the
  ``Link``-header paginator, declared types; every page becomes an Arrow batch with its
  checkpoint (no landing);
- ``plain``: a ``requests.Session`` that fetches a token, then follows the ``Link``
  headers, parsing each page's JSON into one list of dicts.

Both ask for pages of 200 tickets, from the same server, in the same process. The last
line is ``RESULT rest_extract overhead=<our time / plain time - 1> ...``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import interleaved, report_overhead, start_estate_server

RECORDS = 200_000
PER_PAGE = 200
REPETITIONS = 5
MAX_OVERHEAD = 0.15  # the target

TICKETS = pa.schema([
    ("id", pa.int64()), ("account_id", pa.string()), ("subject", pa.string()),
    ("status", pa.string()), ("priority", pa.string()),
    ("opened_at", pa.timestamp("us", tz="UTC")), ("updated_at", pa.timestamp("us", tz="UTC")),
])


def start_server() -> tuple[subprocess.Popen, str, str, str]:
    """The CRM in a child process; its URL and client credentials from its banner."""
    server, banner = start_estate_server(
        "headwater_demo.crm", ["--port", "0", "--accounts", "500", "--tickets", str(RECORDS)],
        "private_key_jwt", "the CRM server")
    url = re.search(r"CRM API:\s+(\S+)/api/", banner).group(1)
    client_id, secret = re.search(r"client_secret_basic/post: (\S+) / (\S+)", banner).groups()
    return server, url, client_id, secret


def read_with_headwater(url: str, client_id: str, secret: str) -> int:
    from connectors.http import OAuth2ClientCredentials
    from connectors.rest import LinkHeader, RESTConnector, RESTStream

    stream = RESTStream(name="tickets", path="/api/tickets", params={"per_page": PER_PAGE},
                        paginator=LinkHeader(), primary_key=("id",), schema=TICKETS)
    auth = OAuth2ClientCredentials(f"{url}/oauth/token", client_id, secret)
    with RESTConnector("crm", url, [stream], auth=auth) as connector:
        return sum(batch.num_rows for batch in connector.read("tickets"))


def read_plainly(url: str, client_id: str, secret: str) -> int:
    with requests.Session() as session:
        token = session.post(f"{url}/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, secret), timeout=30).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        records: list[dict] = []
        next_url: str | None = f"{url}/api/tickets?per_page={PER_PAGE}"
        while next_url:
            response = session.get(next_url, timeout=30)
            response.raise_for_status()
            records.extend(response.json())
            next_url = response.links.get("next", {}).get("url")
        return len(records)


def main() -> None:
    server, url, client_id, secret = start_server()
    try:
        read_plainly(url, client_id, secret)  # warm the server's caches and the imports
        read_with_headwater(url, client_id, secret)
        times = interleaved({
            "headwater": lambda: read_with_headwater(url, client_id, secret),
            "plain": lambda: read_plainly(url, client_id, secret),
        }, REPETITIONS, RECORDS)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report_overhead("rest_extract", times, RECORDS, "plain requests", MAX_OVERHEAD)


if __name__ == "__main__":
    main()
