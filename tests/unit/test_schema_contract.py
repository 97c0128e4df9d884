"""Schema contracts, type widening and schemas kept in state: pure functions."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pyarrow as pa
import pytest

from connectors import DataContractError
from connectors._state import schema_from_state, schema_to_state
from pipelines._contract import hold_to_contract
from pipelines.warehouse import SchemaDiff
from pipelines.warehouse._duckdb import _TYPES as DUCKDB
from pipelines.warehouse._postgres import _TYPES as POSTGRES


@pytest.mark.parametrize(("check", "existing", "incoming", "verdict"), [
    (DUCKDB, "BIGINT", "INTEGER", "holds"),
    (DUCKDB, "INTEGER", "BIGINT", "widens"),
    (DUCKDB, "TINYINT", "HUGEINT", "widens"),
    (DUCKDB, "FLOAT", "DOUBLE", "widens"),
    (DUCKDB, "DECIMAL(12,2)", "DECIMAL(10,2)", "holds"),
    (DUCKDB, "DECIMAL(10,2)", "DECIMAL(14,3)", "widens"),
    (DUCKDB, "DECIMAL(10,2)", "DECIMAL(10,3)", "refused"),  # one integer digit fewer
    (DUCKDB, "INTEGER", "DOUBLE", "refused"),  # a double changes large integers
    (DUCKDB, "INTEGER", "VARCHAR", "refused"),
    (DUCKDB, "VARCHAR", "VARCHAR", "holds"),  # longer text: no length to change
    (POSTGRES, "INTEGER", "BIGINT", "widens"),
    (POSTGRES, "SMALLINT", "INTEGER", "widens"),
    (POSTGRES, "NUMERIC(8,2)", "NUMERIC(20,2)", "widens"),
    (POSTGRES, "REAL", "DOUBLE PRECISION", "widens"),
    (POSTGRES, "BIGINT", "TEXT", "refused"),
])
def test_which_type_changes_widen(check, existing, incoming, verdict) -> None:
    diff = check.diff({"c": existing}, {"c": incoming})
    found = ("widens" if diff.widened else "refused" if diff.refused else "holds")
    assert found == verdict


def test_a_table_that_does_not_exist_has_nothing_to_change() -> None:
    assert not DUCKDB.diff({}, {"a": "BIGINT"})


DATA = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "discount": [None, 5, None]})
ADDED = SchemaDiff(added={"discount": "BIGINT"})
WIDENED = SchemaDiff(widened={"id": ("INTEGER", "BIGINT")})
REFUSED = SchemaDiff(refused={"name": ("BIGINT", "VARCHAR")})


@pytest.mark.parametrize(("contract", "diff", "expectation"), [
    ("evolve", ADDED, nullcontext()),
    ("evolve", WIDENED, nullcontext()),
    ("evolve", REFUSED, pytest.raises(DataContractError, match=r"state reset --drop shop\.t")),
    ("freeze", ADDED, pytest.raises(DataContractError, match="new column 'discount'")),
    ("freeze", WIDENED, pytest.raises(DataContractError, match="'id' INTEGER -> BIGINT")),
    ("discard_columns", ADDED, nullcontext()),
    ("discard_columns", WIDENED, pytest.raises(DataContractError, match="'discard_columns'")),
    ("discard_rows", ADDED, nullcontext()),
    ("discard_rows", REFUSED, pytest.raises(DataContractError, match="cannot hold")),
])
def test_each_contract_lets_through_or_refuses(contract, diff, expectation) -> None:
    with expectation:
        held = hold_to_contract(contract, diff, DATA, where="connector 'shop', stream 't'",
                                table="raw_shop__t", primary_key=("id",))
        assert held.data.num_rows + (held.rejects.num_rows if held.rejects else 0) == 3


def test_discard_columns_counts_the_values_it_drops() -> None:
    held = hold_to_contract("discard_columns", ADDED, DATA, where="w", table="t",
                            primary_key=("id",))
    assert held.data.column_names == ["id", "name"] and held.discarded == {"discount": 1}


def test_discard_rows_rejects_only_the_records_with_a_value_in_the_new_column() -> None:
    held = hold_to_contract("discard_rows", ADDED, DATA, where="w", table="t",
                            primary_key=("id",))
    assert held.data.column("id").to_pylist() == [1, 3]
    assert held.data.column_names == ["id", "name"]
    (reject,) = held.rejects.to_pylist()
    assert reject["id"] == 2 and "['discount']" in reject["_hw_reason"]
    assert json.loads(reject["_hw_record"]) == {"id": 2, "name": "b", "discount": 5}


@pytest.mark.parametrize("schema", [
    pa.schema([("a", pa.int64()), ("b", pa.timestamp("us", tz="UTC")),
               ("c", pa.decimal128(38, 2)), ("d", pa.date32()), ("e", pa.string()),
               ("f", pa.timestamp("us")), ("g", pa.time64("us")), ("h", pa.bool_())]),
    pa.schema([("x", pa.list_(pa.int64())), ("y", pa.timestamp("ms", tz="+02:00"))]),
])
def test_a_schema_kept_in_state_comes_back_the_same(schema) -> None:
    kept = json.loads(json.dumps(schema_to_state(schema)))
    assert schema_from_state(kept).equals(schema)
