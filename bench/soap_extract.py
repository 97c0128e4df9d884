"""What headwater's SOAP connector costs over a plain zeep loop, page for page.

Run with no arguments (``make bench``). It starts the demo logistics service of the
legacy estate (``python -m headwater_demo.logistics``) in its own process on a free
port with 100,000 shipments, then, repetitions interleaved, reads every shipment:

- ``headwater``: ``SOAPConnector`` (hardened zeep, WS-Security UsernameToken digest
  with a timestamp), the continuation-token paginator and declared types; every page
  becomes an Arrow batch with its checkpoint (no landing);
- ``plain``: a ``zeep.Client`` with a plain UsernameToken calling ``ListShipments`` page
  after page, serializing each page's shipments into one list of dicts.

Both ask for pages of 500 shipments, from the same service, in the same process. The
last line is ``RESULT soap_extract overhead=<our time / plain time - 1> ...``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import interleaved, report_overhead, start_estate_server

RECORDS = 100_000
PAGE_SIZE = 500
REPETITIONS = 3
MAX_OVERHEAD = 0.15  # the target

UTC_US = pa.timestamp("us", tz="UTC")
SHIPMENTS = pa.schema([
    ("id", pa.string()), ("consignee", pa.string()), ("origin", pa.string()),
    ("destination", pa.string()), ("weightKg", pa.decimal128(12, 3)),
    ("declaredValue", pa.decimal128(14, 2)), ("currency", pa.string()),
    ("status", pa.string()), ("shippedAt", UTC_US), ("deliveredAt", UTC_US),
    ("updatedAt", UTC_US), ("event", pa.string()),
])


def start_service() -> tuple[subprocess.Popen, str, str, str]:
    """The logistics service in a child process; its WSDL and credentials from its banner."""
    service, banner = start_estate_server(
        "headwater_demo.logistics", ["--port", "0", "--shipments", str(RECORDS)],
        "UsernameToken:", "the logistics service")
    wsdl = re.search(r"WSDL:\s+(\S+)", banner).group(1)
    username, password = re.search(r"UsernameToken: (\S+) / (\S+)", banner).groups()
    return service, wsdl, username, password


def read_with_headwater(wsdl: str, username: str, password: str, *, pages: int = 0) -> int:
    from connectors.rest import CursorInBody
    from connectors.soap import SOAPConnector, SOAPStream

    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                        paginator=CursorInBody("nextPageToken", "pageToken", "pageSize",
                                               PAGE_SIZE),
                        primary_key=("id",), schema=SHIPMENTS)
    with SOAPConnector("logistics", wsdl, [stream], username=username,
                       password=password) as connector:
        batches = connector.read("shipments")
        if pages:  # a warm-up: imports, the WSDL, the first pages
            return sum(next(batches).num_rows for _ in range(pages))
        return sum(batch.num_rows for batch in batches)


def read_plainly(wsdl: str, username: str, password: str, *, pages: int = 0) -> int:
    import zeep
    from zeep.helpers import serialize_object
    from zeep.wsse.username import UsernameToken

    client = zeep.Client(wsdl, wsse=UsernameToken(username, password, use_digest=True))
    records: list[dict] = []
    token = None
    while True:
        page = client.service.ListShipments(pageSize=PAGE_SIZE, pageToken=token)
        records.extend(serialize_object(page.shipment or [], target_cls=dict))
        token = page.nextPageToken
        pages -= 1
        if not token or pages == 0:
            return len(records)


def main() -> None:
    service, wsdl, username, password = start_service()
    try:
        read_plainly(wsdl, username, password, pages=3)  # warm the imports and the WSDL
        read_with_headwater(wsdl, username, password, pages=3)
        times = interleaved({
            "headwater": lambda: read_with_headwater(wsdl, username, password),
            "plain": lambda: read_plainly(wsdl, username, password),
        }, REPETITIONS, RECORDS)
    finally:
        service.terminate()
        service.wait(timeout=30)
    report_overhead("soap_extract", times, RECORDS, "plain zeep", MAX_OVERHEAD)


if __name__ == "__main__":
    main()
