"""What headwater's REST connector costs over a plain ``requests`` loop, page for page.

Run with no arguments (``make bench``). It starts the demo CRM of the legacy estate
(``python -m pipelines.estate.crm``) in its own process on a free port with 200,000
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
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import peak_rss_mb, verdict

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
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.estate.crm", "--port", "0", "--accounts", "500",
         "--tickets", str(RECORDS)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    banner = ""
    assert server.stdout is not None
    while "private_key_jwt" not in banner:
        line = server.stdout.readline()
        if not line:
            raise SystemExit(f"the CRM server did not start (exit {server.poll()})")
        banner += line
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
        times: dict[str, list[float]] = {"headwater": [], "plain": []}
        methods = {"headwater": read_with_headwater, "plain": read_plainly}
        for rep in range(1, REPETITIONS + 1):
            for name, method in methods.items():
                started = time.perf_counter()
                rows = method(url, client_id, secret)
                seconds = time.perf_counter() - started
                if rows != RECORDS:
                    raise SystemExit(f"{name} read {rows:,} records, expected {RECORDS:,}")
                times[name].append(seconds)
                print(f"  {name:<9} rep {rep}/{REPETITIONS}: {seconds:.2f} s "
                      f"({RECORDS / seconds:,.0f} records/s)", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours, plain = statistics.median(times["headwater"]), statistics.median(times["plain"])
    overhead = ours / plain - 1
    print()
    print(f"headwater: median {ours:.2f} s ({RECORDS / ours:,.0f} records/s); "
          f"plain requests: median {plain:.2f} s ({RECORDS / plain:,.0f} records/s)")
    print(f"target overhead <= {MAX_OVERHEAD:.0%}: {overhead:.1%} -> "
          f"{verdict(overhead <= MAX_OVERHEAD)}")
    print(f"RESULT rest_extract overhead={overhead:.3f} records_per_s={RECORDS / ours:.0f} "
          f"plain_records_per_s={RECORDS / plain:.0f} peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
