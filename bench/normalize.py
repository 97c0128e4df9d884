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
rows fail. The last line is ``RESULT normalize rows_per_s=<ours> vs_pandas=<pandas time
/ our time>``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as ppa
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import interleaved, peak_rss_mb, verdict

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


def main() -> None:
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
    print(f"RESULT normalize rows_per_s={rate:.0f} vs_pandas={ratio:.2f} "
          f"peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
