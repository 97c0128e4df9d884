"""Party resolution and context builds after a 1% change, against rebuilding them whole.

Run with no arguments. It writes, into a fresh DuckDB warehouse, the clean tables of an
estate of 60,000 companies, each known to three systems as normalization leaves them
(rows with their landing time, and the state entry ``clean.<entity>`` with its mark):
60,000 suppliers, 60,000 payees keeping the supplier number (a tenth of them missing it,
matched by name instead), 30,000 carriers keeping the payee code, and 150,000 invoices
of the payees. A context ``payee`` declares one document per payee with its invoices
(linked by key) and its party's carriers (linked through the parties).

Then, each in the same process, timed as the medians of three repetitions:

- ``full``: the crosswalk resolved from every record, the documents built for every payee
  (``full=True``: what every run cost before either followed the change);
- ``delta``: 1% of the suppliers, payees and carriers renamed or relinked and 1% new
  invoices landed with a fresh landing time, the marks moved past them, and both steps
  run again incrementally.

Each delta run is checked: the crosswalk must equal a whole resolution of the same
tables, and the documents a whole build. The last line is ``RESULT downstream
parties_delta_vs_full=<delta / full> context_delta_vs_full=<delta / full>
parties_rebuilt=<records re-resolved> documents_rebuilt=<documents rebuilt>
peak_rss_mb=<this process>``.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import peak_rss_mb

from normalization import PartySource, Resolution, resolve
from pipelines._parties import crosswalk_table, resolve_parties
from pipelines.context import ContextSpec, Root, Section, build_contexts
from pipelines.warehouse import DuckDBWarehouse

COMPANIES = 60_000
SHARE = 0.01
REPETITIONS = 3
RESOLUTION = Resolution(name="vendor", sources=(
    PartySource(system="purchasing", entity="supplier", key="supplier_no", name="legal_name"),
    PartySource(system="payables", entity="payee", key="payee_code", name="payee_name",
                links={"purchasing": "supplier_ref"}),
    PartySource(system="freight", entity="carrier", key="carrier_id", name="carrier_name",
                links={"payables": "payee_code"}),
))
CONTEXT = ContextSpec(
    name="payee", parties="vendor",
    root=Root(entity="payee", key="payee_code", fields=("payee_code", "payee_name"),
              parties="payables"),
    sections=(
        Section(name="invoices", entity="invoice", key="invoice_no",
                fields=("invoice_no", "amount"), on={"payee_code": "payee_code"},
                order_by=("amount DESC",)),
        Section(name="carriers", entity="carrier", key="carrier_id",
                fields=("carrier_id", "carrier_name"), through_parties=("freight",
                                                                         "carrier_id")),
    ),
    budget=400, priorities=("invoices",),
)
LANDED = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)


def estate(rng: random.Random) -> dict[str, list[dict]]:
    names = [f"Company {i} {rng.choice(['Ltd', 'Limited', 'Inc', 'GmbH', 'AS'])}"
             for i in range(COMPANIES)]
    suppliers = [{"supplier_no": i, "legal_name": names[i], "_hw_extracted_at": LANDED}
                 for i in range(COMPANIES)]
    payees = [{"payee_code": f"P{i}", "payee_name": names[i].upper(),
               "supplier_ref": None if i % 10 == 0 else str(i), "_hw_extracted_at": LANDED}
              for i in range(COMPANIES)]
    carriers = [{"carrier_id": f"C{i}", "carrier_name": f"{names[i]} Freight",
                 "payee_code": f"P{i}", "_hw_extracted_at": LANDED}
                for i in range(0, COMPANIES, 2)]
    invoices = [{"invoice_no": n, "payee_code": f"P{rng.randrange(COMPANIES)}",
                 "amount": rng.randrange(100, 100_000), "_hw_extracted_at": LANDED}
                for n in range(COMPANIES * 5 // 2)]
    return {"supplier": suppliers, "payee": payees, "carrier": carriers, "invoice": invoices}


def write(warehouse: DuckDBWarehouse, tables: dict[str, list[dict]], mark: dt.datetime,
          epoch: str = "bench") -> None:
    warehouse.replace_tables({f"clean_{e}": pa.Table.from_pylist(rows)
                              for e, rows in tables.items()})
    for entity in tables:
        warehouse.save_state(f"clean.{entity}", {"since": mark, "epoch": epoch})


def change(rng: random.Random, tables: dict[str, list[dict]], at: dt.datetime) -> None:
    """1% of suppliers, payees and carriers renamed or relinked; 1% new invoices."""
    for entity, field in (("supplier", "legal_name"), ("payee", "supplier_ref"),
                          ("carrier", "payee_code")):
        rows = tables[entity]
        for index in rng.sample(range(len(rows)), int(len(rows) * SHARE)):
            row = dict(rows[index])
            if field == "legal_name":
                row[field] = f"Renamed {rng.randrange(10**9)} Ltd"
            else:
                row[field] = (str(rng.randrange(COMPANIES)) if entity == "payee"
                              else f"P{rng.randrange(COMPANIES)}")
            row["_hw_extracted_at"] = at
            rows[index] = row
    invoices = tables["invoice"]
    first = len(invoices)
    invoices += [{"invoice_no": first + n, "payee_code": f"P{rng.randrange(COMPANIES)}",
                  "amount": rng.randrange(100, 100_000), "_hw_extracted_at": at}
                 for n in range(int(first * SHARE))]


def crosswalk(warehouse: DuckDBWarehouse) -> set[tuple]:
    return {tuple(r.values()) for r in warehouse.read_table(crosswalk_table("vendor"))
            .select(["party_id", "system", "source_key", "matched_by"]).to_pylist()}


def documents(warehouse: DuckDBWarehouse) -> dict[str, str]:
    rows = warehouse.query('SELECT context_id, content_hash FROM "context_payee"').to_pylist()
    return {r["context_id"]: r["content_hash"] for r in rows}


def timed(step) -> tuple[float, object]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def main() -> None:
    rng = random.Random(20)
    fulls: dict[str, list[float]] = {"parties": [], "context": []}
    deltas: dict[str, list[float]] = {"parties": [], "context": []}
    rebuilt = {"parties": 0, "context": 0}
    with tempfile.TemporaryDirectory() as folder:
        for repetition in range(REPETITIONS):
            path = Path(folder) / f"w{repetition}.duckdb"
            with DuckDBWarehouse(path) as warehouse:
                tables = estate(rng)
                mark = LANDED + dt.timedelta(minutes=30)
                write(warehouse, tables, mark)
                seconds, _ = timed(lambda: resolve_parties(warehouse, RESOLUTION, full=True,
                                                           run_id="full"))
                fulls["parties"].append(seconds)
                seconds, _ = timed(lambda: build_contexts(warehouse, CONTEXT, "full",
                                                          full=True))
                fulls["context"].append(seconds)

                change(rng, tables, mark + dt.timedelta(minutes=1))
                write(warehouse, tables, mark + dt.timedelta(minutes=30))
                seconds, parties = timed(lambda: resolve_parties(warehouse, RESOLUTION,
                                                                 run_id="delta"))
                assert parties is not None and parties.mode == "incremental", parties
                deltas["parties"].append(seconds)
                seconds, context = timed(lambda: build_contexts(warehouse, CONTEXT, "delta"))
                assert context.mode == "incremental", context.why_full
                deltas["context"].append(seconds)
                rebuilt = {"parties": parties.crosswalk.num_rows,
                           "context": context.table.num_rows}
                print(f"repetition {repetition + 1}: parties {fulls['parties'][-1]:.2f} s "
                      f"whole, {deltas['parties'][-1]:.2f} s after the change "
                      f"({rebuilt['parties']:,} records re-resolved); documents "
                      f"{fulls['context'][-1]:.2f} s whole, "
                      f"{deltas['context'][-1]:.2f} s after the change "
                      f"({rebuilt['context']:,} rebuilt)", flush=True)

                if repetition == 0:  # the delta must end where a whole run ends
                    incremental = (crosswalk(warehouse), documents(warehouse))
                    whole = resolve(RESOLUTION, {e: warehouse.read_table(f"clean_{e}")
                                                 for e in ("supplier", "payee", "carrier")})
                    expected = {(r["party_id"], r["system"], r["source_key"], r["matched_by"])
                                for r in whole.crosswalk.to_pylist()}
                    assert incremental[0] == expected, "the crosswalk differs from a whole run"
                    build_contexts(warehouse, CONTEXT, "check", full=True)
                    assert incremental[1] == documents(warehouse), \
                        "the documents differ from a whole build"
    ratios = {name: statistics.median(deltas[name]) / statistics.median(fulls[name])
              for name in fulls}
    print(f"whole: parties {statistics.median(fulls['parties']):.2f} s, documents "
          f"{statistics.median(fulls['context']):.2f} s; after a 1% change: parties "
          f"{statistics.median(deltas['parties']):.2f} s, documents "
          f"{statistics.median(deltas['context']):.2f} s (medians of {REPETITIONS})")
    print(f"RESULT downstream parties_delta_vs_full={ratios['parties']:.3f} "
          f"context_delta_vs_full={ratios['context']:.3f} "
          f"parties_rebuilt={rebuilt['parties']} documents_rebuilt={rebuilt['context']} "
          f"peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
