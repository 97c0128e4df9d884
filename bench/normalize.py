"""Normalizing a million raw ERP orders: headwater against plain pandas + Pandera.

Run with no arguments (``make bench``). It builds 1,000,000 raw order rows shaped like
``raw_erp__orders`` (padded CHAR codes, 1900-01-01 for "not shipped", three-letter status
codes, integer cents, naive timestamps), about 1% of them bad in ways the schema catches
(unknown status, negative total, malformed customer number). Then, repetitions
interleaved in this process:

- ``headwater``: ``normalize(ORDER, table)`` with the demo estate's order mapping:
  polars cleaning, the lazy ``pandera.polars`` validation, the clean/quarantine split
  with one quarantine row per failure; Arrow in, Arrow out.
- ``plain``: the same rules written in pandas (``str.strip``, a ``map`` of the status
  codes, the sentinel masked, cents divided by 100) and validated lazily with
  ``pandera.pandas`` against the same constraints, the failing rows dropped by the
  failure cases' index. Money is float64 here: pandas has no exact decimal column short
  of Python objects, which would make it far slower; the comparison is generous to it.

Both must put every row somewhere (clean + quarantined = 1,000,000) and agree on which
rows fail.

Then the incremental case, in a DuckDB warehouse and each step in a fresh interpreter:
5,000,000 raw orders landed an hour ago are normalized whole (``clean_entity`` on the
first run: a rebuild in batches), then a 1% delta is landed (25,000 changed orders,
25,000 new ones) and normalized again (only the delta is read, cleaned and merged by
key). ``delta_vs_full`` is the delta run's time over the full run's; ``peak_rss_mb`` is
the full run's own process (the rebuild of 5,000,000 rows, imports included). Both
tables are then checked against what a rebuild gives.

The same 5,000,000 landed rows also go through the pandas + Pandera rules above in a
process of their own, read whole as such code reads them: ``peer_peak_rss_mb``.

The last line is ``RESULT normalize rows_per_s=<ours> vs_pandas=<pandas time / our time>
delta_vs_full=<delta time / full time> peak_rss_mb=<full run> peer_peak_rss_mb=<pandas +
Pandera full run> rss_vs_peer=<ours / theirs>``; pass ``--incremental`` to run the
incremental case alone.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as ppa
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import interleaved, peak_rss_mb, run_child, verdict

from headwater_demo.entities import ORDER_STATUSES
from headwater_demo.mappings import ORDER
from normalization import normalize

ROWS = 1_000_000
REPETITIONS = 5
MIN_ROWS_PER_S = 2_000_000
MIN_VS_PANDAS = 3.0
SENTINEL = dt.date(1900, 1, 1)
CODES = {"NEW": "new", "SHP": "shipped", "CAN": "cancelled", "HLD": "on_hold"}


def build_raw(rows: int, seed: int = 42) -> pa.Table:
    """Raw orders as the SQL connector lands them, with a known share of bad rows."""
    rng = np.random.default_rng(seed)
    customers = np.char.add("C", np.char.zfill(rng.integers(1, 100_000, rows).astype(str), 5))
    customers = np.char.ljust(customers, 8)
    customers[rng.random(rows) < 0.002] = "C12     "
    status = rng.choice(np.array(["NEW", "SHP", "CAN", "HLD"]), rows, p=[.05, .85, .05, .05])
    status[rng.random(rows) < 0.005] = "XXX"
    total = rng.integers(100, 5_000_000, rows)
    total[rng.random(rows) < 0.003] *= -1
    ordered = np.datetime64("2020-01-01") + rng.integers(0, 1500, rows).astype("timedelta64[D]")
    shipped = ordered + rng.integers(1, 15, rows).astype("timedelta64[D]")
    shipped[status != "SHP"] = np.datetime64(SENTINEL)
    stamps = ordered.astype("datetime64[us]") + rng.integers(0, 86_400_000_000, rows).astype(
        "timedelta64[us]")
    users = rng.choice(np.array(["JSMITH", "mkowalski", "a.nguyen ", "o'brien", "BATCH01"]), rows)
    return pa.table({
        "order_no": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
        "cust_no": pa.array(customers.tolist(), pa.string()),
        "order_date": pa.array(ordered, pa.date32()),
        "ship_date": pa.array(shipped, pa.date32()),
        "status": pa.array(status.tolist(), pa.string()),
        "total_cents": pa.array(total),
        "user": pa.array(users.tolist(), pa.string()),
        "updated_at": pa.array(stamps, pa.timestamp("us")),
    })


class PandasOrder(ppa.DataFrameModel):
    """The order entity's constraints in ``pandera.pandas`` (money as float64)."""

    order_no: int = ppa.Field(unique=True, ge=1)
    customer_no: str = ppa.Field(str_matches=r"^C\d{5}$")
    ordered_on: pd.Timestamp
    shipped_on: pd.Timestamp = ppa.Field(nullable=True)
    status: str = ppa.Field(isin=list(ORDER_STATUSES))
    total: float = ppa.Field(ge=0)
    entered_by: str
    is_shipped: bool
    updated_at: pd.DatetimeTZDtype = ppa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})

    class Config:
        strict = True


def plain_pandas(raw: pa.Table) -> tuple[int, set[int]]:
    """Clean, validate and split with pandas; (rows placed, failing order numbers)."""
    df = raw.to_pandas(date_as_object=False)
    shipped = df["ship_date"].where(df["ship_date"] != pd.Timestamp(SENTINEL))
    frame = pd.DataFrame({
        "order_no": df["order_no"],
        "customer_no": df["cust_no"].str.strip(),
        "ordered_on": df["order_date"],
        "shipped_on": shipped,
        "status": df["status"].str.strip().map(CODES),
        "total": df["total_cents"] / 100,
        "entered_by": df["user"].str.strip(),
        "is_shipped": shipped.notna(),
        "updated_at": df["updated_at"].dt.tz_localize("UTC"),
    })
    try:
        PandasOrder.validate(frame, lazy=True)
        failing = pd.Index([])
    except ppa.errors.SchemaErrors as exc:
        failing = pd.Index(exc.failure_cases["index"].dropna().unique())
    quarantined = frame.loc[failing, "order_no"]
    clean = frame.drop(index=failing)
    return len(clean) + len(quarantined), set(quarantined.tolist())


def ours(raw: pa.Table) -> tuple[int, set[int]]:
    result = normalize(ORDER, raw, run_id="bench")
    keys = {int(k.split(":")[1].rstrip("}")) for k in result.quarantine.column("source_key")
            .unique().to_pylist()}
    return result.clean_rows + result.quarantined_rows, keys


INCREMENTAL_ROWS = 5_000_000
DELTA_SHARE = 0.01
MAX_DELTA_VS_FULL = 0.05
MAX_FULL_RSS_MB = 400


def child(step: str, folder: str) -> dict:
    """One step of the incremental case, in this fresh interpreter."""
    from pipelines.cleaning import clean_entity
    from pipelines.warehouse import DuckDBWarehouse, Provenance

    path = Path(folder) / "warehouse.duckdb"
    with DuckDBWarehouse(path) as warehouse:
        if step == "land":
            an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            provenance = Provenance("erp", "orders", "bench-land", an_hour_ago)
            raw = build_raw(INCREMENTAL_ROWS)
            for start in range(0, INCREMENTAL_ROWS, 500_000):
                warehouse.merge("raw_erp__orders", raw.slice(start, 500_000), ("order_no",),
                                provenance=provenance)
            return {"rows": warehouse.row_count("raw_erp__orders")}
        if step == "delta":
            delta = build_delta(INCREMENTAL_ROWS, DELTA_SHARE)
            warehouse.merge("raw_erp__orders", delta, ("order_no",), provenance=Provenance(
                "erp", "orders", "bench-delta", dt.datetime.now(dt.UTC)))
            return {"rows": delta.num_rows}
        if step == "peer":
            return peer_full_run(warehouse)
        full = step == "rebuild"
        # Pandera registers its polars backend at the first validation (and imports
        # hypothesis then, where it is installed): once per process, not part of a run.
        normalize(ORDER, build_raw(1).slice(0, 0), run_id="warm-up")
        started = time.perf_counter()
        result = clean_entity(warehouse, ORDER, demo_spec(), run_id=f"bench-{step}", full=full)
        seconds = time.perf_counter() - started
        stored = {name: warehouse.row_count(f"{name}_order") for name in ("clean", "quarantine")}
        digest = warehouse.query(
            "SELECT sum(hash(order_no, status, total, customer_no)) AS h FROM clean_order"
        ).column(0)[0].as_py()
    return {"mode": result.mode, "seconds": seconds, "raw": result.raw_rows,
            "clean": result.clean_rows, "quarantined": result.quarantined_rows,
            "stored": stored, "digest": str(digest), "peak_rss_mb": own_peak_rss_mb()}


def peer_full_run(warehouse) -> dict:
    """The same full run as pandas + Pandera users write it: the landed raw orders read
    whole into pandas, cleaned, validated and split (``plain_pandas``), in this process."""
    started = time.perf_counter()
    raw = warehouse.query("SELECT * EXCLUDE (_hw_source, _hw_stream, _hw_extracted_at, "
                          "_hw_run_id) FROM raw_erp__orders")
    placed, failing = plain_pandas(raw)
    return {"seconds": time.perf_counter() - started, "placed": placed,
            "quarantined": len(failing), "peak_rss_mb": own_peak_rss_mb()}


def own_peak_rss_mb() -> float:
    """This process image's peak RSS (``VmHWM``): unlike ``ru_maxrss`` it does not keep
    the peak of the parent that forked this interpreter before ``exec``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def build_delta(rows: int, share: float) -> pa.Table:
    """``share`` of ``rows``: half changed orders (new totals), half new order numbers."""
    count = int(rows * share)
    changed = build_raw(count // 2, seed=7)
    step = rows // (count // 2)
    changed = changed.set_column(0, "order_no", pa.array(
        np.arange(1, rows + 1, step, dtype=np.int64)[: count // 2]))
    added = build_raw(count - count // 2, seed=8)
    added = added.set_column(0, "order_no", pa.array(
        np.arange(rows + 1, rows + 1 + added.num_rows, dtype=np.int64)))
    return pa.concat_tables([changed, added])


def demo_spec():
    from pipelines.config import EMBEDDED_ORIGIN, embedded_config_text, read_config

    return read_config(embedded_config_text(), EMBEDDED_ORIGIN, None).normalization_spec()


def incremental_case() -> tuple[float, float, float]:
    """(delta time / full time, the full run's peak RSS in MB, the peer's in MB)."""
    with tempfile.TemporaryDirectory(prefix="hw-bench-normalize-") as folder:
        landed = run_child(__file__, "landing the raw orders", "land", folder)
        print(f"landed {landed['rows']:,} raw orders in DuckDB", flush=True)
        full = run_child(__file__, "the full run", "first", folder)
        print(f"full ({full['mode']}): {full['raw']:,} raw -> {full['clean']:,} clean, "
              f"{full['quarantined']:,} quarantined in {full['seconds']:.2f} s, peak RSS "
              f"{full['peak_rss_mb']:.0f} MB", flush=True)
        peer = run_child(__file__, "the pandas + Pandera full run", "peer", folder)
        print(f"pandas + Pandera over the same rows: {peer['placed']:,} placed, "
              f"{peer['quarantined']:,} failing, in {peer['seconds']:.2f} s, peak RSS "
              f"{peer['peak_rss_mb']:.0f} MB", flush=True)
        delta = run_child(__file__, "landing the delta", "delta", folder)
        inc = run_child(__file__, "the incremental run", "next", folder)
        print(f"delta of {delta['rows']:,} rows ({inc['mode']}): {inc['raw']:,} raw -> "
              f"{inc['clean']:,} clean, {inc['quarantined']:,} quarantined in "
              f"{inc['seconds']:.2f} s, peak RSS {inc['peak_rss_mb']:.0f} MB", flush=True)
        check = run_child(__file__, "the rebuild to compare with", "rebuild", folder)
    if full["mode"] != "full" or inc["mode"] != "incremental" or inc["raw"] != delta["rows"]:
        raise SystemExit(f"the runs were not what they should be: {full} {inc}")
    if (inc["stored"], inc["digest"]) != (check["stored"], check["digest"]):
        raise SystemExit(f"the incremental tables differ from a rebuild: {inc['stored']} "
                         f"{inc['digest']} against {check['stored']} {check['digest']}")
    print(f"the incremental tables equal a rebuild ({check['stored']['clean']:,} clean rows, "
          f"{check['stored']['quarantine']:,} quarantine rows)")
    ratio, rss = inc["seconds"] / full["seconds"], full["peak_rss_mb"]
    print(f"target delta_vs_full <= {MAX_DELTA_VS_FULL}: {ratio:.3f} -> "
          f"{verdict(ratio <= MAX_DELTA_VS_FULL)}; target full-run peak RSS <= "
          f"{MAX_FULL_RSS_MB} MB: {rss:.0f} MB -> {verdict(rss <= MAX_FULL_RSS_MB)} "
          f"({rss / peer['peak_rss_mb']:.2f}x the pandas + Pandera run's)")
    return ratio, rss, peer["peak_rss_mb"]


def main() -> None:
    if "--child" in sys.argv:
        step, folder = sys.argv[sys.argv.index("--child") + 1:][:2]
        print(json.dumps(child(step, folder)))
        return
    if "--incremental" in sys.argv:
        ratio, rss, peer = incremental_case()
        print(f"RESULT normalize delta_vs_full={ratio:.4f} peak_rss_mb={rss:.0f} "
              f"peer_peak_rss_mb={peer:.0f} rss_vs_peer={rss / peer:.2f}")
        return
    raw = build_raw(ROWS)
    print(f"built {ROWS:,} raw orders ({raw.nbytes / 2**20:,.0f} MiB in Arrow)", flush=True)
    placed_ours, failing_ours = ours(raw)
    placed_plain, failing_plain = plain_pandas(raw)
    if placed_ours != ROWS or placed_plain != ROWS or failing_ours != failing_plain:
        raise SystemExit(f"the two paths disagree: placed {placed_ours:,} / {placed_plain:,}, "
                         f"failing {len(failing_ours):,} / {len(failing_plain):,}")
    print(f"both place every row; {len(failing_ours):,} rows fail the schema "
          f"({len(failing_ours) / ROWS:.2%})", flush=True)

    times = interleaved({"headwater": lambda: ours(raw)[0], "plain": lambda: plain_pandas(raw)[0]},
                        REPETITIONS, ROWS)
    mine, plain = statistics.median(times["headwater"]), statistics.median(times["plain"])
    rate, ratio = ROWS / mine, plain / mine
    print()
    print(f"headwater: median {mine:.2f} s ({rate:,.0f} rows/s); "
          f"pandas + pandera: median {plain:.2f} s ({ROWS / plain:,.0f} rows/s)")
    print(f"target >= {MIN_ROWS_PER_S:,} rows/s: {verdict(rate >= MIN_ROWS_PER_S)}; "
          f"target >= {MIN_VS_PANDAS:.0f}x pandas: {ratio:.1f}x -> "
          f"{verdict(ratio >= MIN_VS_PANDAS)}")
    print()
    delta_ratio, rss, peer = incremental_case()
    print(f"RESULT normalize rows_per_s={rate:.0f} vs_pandas={ratio:.2f} "
          f"delta_vs_full={delta_ratio:.4f} peak_rss_mb={rss:.0f} "
          f"peer_peak_rss_mb={peer:.0f} rss_vs_peer={rss / peer:.2f}")


if __name__ == "__main__":
    main()
