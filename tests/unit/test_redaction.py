"""redact() masks credentials in URLs, connection strings, headers and known secrets."""

from __future__ import annotations

import logging

import pytest

from connectors import _redaction
from connectors._redaction import RedactingFilter, redact, register_secret


@pytest.fixture(autouse=True)
def isolated_secrets(monkeypatch):
    """Each test starts with no registered secrets and leaves none behind."""
    monkeypatch.setattr(_redaction, "_known_secrets", set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "postgresql://etl:hunter2@db1:5432/erp",
            "postgresql://etl:***@db1:5432/erp",
            id="url-password",
        ),
        pytest.param(
            "postgresql+psycopg://etl:hunter2@db1/erp?sslmode=require",
            "postgresql+psycopg://etl:***@db1/erp?sslmode=require",
            id="url-with-driver-and-query",
        ),
        pytest.param(
            "mssql+pyodbc://sa:p%40ss%3Bw0rd@host/db",
            "mssql+pyodbc://sa:***@host/db",
            id="url-percent-encoded-password",
        ),
        pytest.param(
            "could not connect to oracle://scott:tiger@ora:1521/XE: timeout",
            "could not connect to oracle://scott:***@ora:1521/XE: timeout",
            id="url-inside-a-sentence",
        ),
        pytest.param(
            "DRIVER={ODBC Driver 18 for SQL Server};SERVER=h;UID=sa;PWD=hunter2;Encrypt=yes",
            "DRIVER={ODBC Driver 18 for SQL Server};SERVER=h;UID=sa;PWD=***;Encrypt=yes",
            id="odbc-pwd",
        ),
        pytest.param(
            "Driver={x};Uid=sa;Password={hun;ter 2};Server=h",
            "Driver={x};Uid=sa;Password=***;Server=h",
            id="odbc-braced-password-with-semicolon",
        ),
        pytest.param(
            "Driver={x};Uid=sa;pwd=hunter2",
            "Driver={x};Uid=sa;pwd=***",
            id="odbc-pwd-last-lower-case",
        ),
        pytest.param(
            "host=db1 user=etl password=hunter2 dbname=erp",
            "host=db1 user=etl password=*** dbname=erp",
            id="libpq",
        ),
        pytest.param(
            "host=db1 password='hunter 2' dbname=erp",
            "host=db1 password=*** dbname=erp",
            id="libpq-quoted",
        ),
        pytest.param(
            "GET /v1/items?access_token=abc123XYZ&page=2",
            "GET /v1/items?access_token=***&page=2",
            id="query-access-token",
        ),
        pytest.param(
            "client_id=app&client_secret=s3cr3t&grant_type=client_credentials",
            "client_id=app&client_secret=***&grant_type=client_credentials",
            id="form-client-secret",
        ),
        pytest.param(
            "refresh_token=r1 api_key=k1 apikey=k2 token=t1",
            "refresh_token=*** api_key=*** apikey=*** token=***",
            id="other-token-keys",
        ),
        pytest.param(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
            "Authorization: Bearer ***",
            id="bearer-header",
        ),
        pytest.param(
            "authorization: basic dXNlcjpwYXNz", "authorization: basic ***", id="basic-header"
        ),
        pytest.param(
            "Proxy-Authorization: Basic dXNlcjpwYXNz, next",
            "Proxy-Authorization: Basic ***, next",
            id="proxy-authorization-header",
        ),
        # Good input side by side: nothing secret, so nothing changes.
        pytest.param("postgresql://etl@db1:5432/erp", None, id="clean-url-without-password"),
        pytest.param(
            "https://example.com/api/v2/items?page=2&per_page=100", None, id="clean-query"
        ),
        pytest.param("DRIVER={ODBC Driver 18};SERVER=h;UID=sa;Encrypt=yes", None, id="clean-odbc"),
        pytest.param('ERROR: relation "orders" does not exist', None, id="clean-db-error"),
        pytest.param("select * from t where token_count = 5", None, id="clean-token-prefix"),
        pytest.param("passwords are rotated monthly", None, id="clean-password-word"),
        pytest.param("the primary key is (id)", None, id="clean-key-word"),
        pytest.param("", None, id="clean-empty"),
    ],
)
def test_credentials_are_masked_and_other_text_is_unchanged(text, expected):
    assert redact(text) == (text if expected is None else expected)


def test_redact_accepts_any_object():
    assert redact(ValueError("postgresql://u:hunter2@h/db")) == "postgresql://u:***@h/db"
    assert redact(42) == "42"


def test_registered_secret_is_masked_anywhere_in_text():
    register_secret("Xq9-unparseable-secret")
    text = "driver said: login 'svc' with Xq9-unparseable-secret rejected (Xq9-unparseable-secret)"
    assert redact(text) == "driver said: login 'svc' with *** rejected (***)"


def test_registered_secret_is_masked_where_xml_escapes_it():
    """A WS-Security PasswordText in an envelope (zeep logs them at DEBUG) is escaped."""
    from lxml import etree

    secret = "St&ck<pw>9'\""
    register_secret(secret)
    password = etree.Element("Password", Type="...#PasswordText")
    password.text = secret
    envelope = etree.tostring(password).decode()
    assert secret not in envelope  # lxml wrote it escaped
    assert redact(envelope) == '<Password Type="...#PasswordText">***</Password>'


def test_longer_registered_secret_is_masked_before_a_shorter_one_inside_it():
    register_secret("abcd")
    register_secret("abcd1234")
    assert redact("key abcd1234 and abcd") == "key *** and ***"


@pytest.mark.parametrize(
    ("secret", "masked"),
    [(None, False), ("", False), ("a", False), ("abc", False), ("abcd", True), ("abcde", True)],
)
def test_secrets_shorter_than_four_characters_are_ignored(secret, masked):
    register_secret(secret)
    text = "the value abc then abcd then abcde"
    assert (redact(text) != text) is masked
    if secret:
        assert (secret in redact(f"<{secret}>")) is not masked


@pytest.mark.parametrize(
    "text", ['{"password": "hunter2"}', "{'password': 'hunter2', 'user': 'etl'}"]
)
def test_password_in_a_json_or_dict_payload_is_masked(text):
    assert "hunter2" not in redact(text)


def test_authorization_in_a_headers_dict_repr_is_masked():
    assert "abc123token" not in redact("{'Authorization': 'Bearer abc123token'}")


@pytest.mark.parametrize(
    "text",
    ["?auth_token=abc123secret", "?id_token=abc123secret", "X-API-Key: abc123secret"],
)
def test_other_common_token_names_are_masked(text):
    assert "abc123secret" not in redact(text)


def test_odbc_braced_password_with_escaped_brace_is_fully_masked():
    assert "cdef" not in redact("Driver={x};PWD={ab}}cdef};Server=h")


class ListHandler(logging.Handler):
    """Keeps each formatted record."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def logger():
    # A logger outside the manager's tree: nothing global is touched.
    log = logging.Logger("headwater.test.redaction", logging.DEBUG)
    handler = ListHandler()
    log.addHandler(handler)
    log.addFilter(RedactingFilter())
    log.lines = handler.lines
    return log


def test_filter_redacts_percent_args_after_formatting(logger):
    logger.info("connecting to %s as %s", "postgresql://etl:hunter2@db1/erp", "etl")
    assert logger.lines == ["connecting to postgresql://etl:***@db1/erp as etl"]


def test_filter_redacts_mapping_args_and_registered_secrets(logger):
    register_secret("s3cr3t-value")
    logger.warning(
        "token %(tok)s rejected, header %(hdr)s",
        {"tok": "s3cr3t-value", "hdr": "Authorization: Bearer abc.def"},
    )
    assert logger.lines == ["token *** rejected, header Authorization: Bearer ***"]


def test_filter_leaves_the_record_with_no_args(logger):
    records = []
    logger.addFilter(lambda record: records.append(record) or True)
    logger.info("rows: %d, pwd=%s", 5, "hunter2")
    (record,) = records
    assert record.msg == "rows: 5, pwd=***"
    assert record.args is None
    assert record.getMessage() == "rows: 5, pwd=***"


def test_filter_keeps_text_without_secrets(logger):
    logger.info("read %d rows from %s", 10, "orders")
    assert logger.lines == ["read 10 rows from orders"]


def test_filter_redacts_logged_exception_text(logger):
    try:
        raise ConnectionError("could not connect to postgresql://etl:hunter2@db1/erp")
    except ConnectionError:
        logger.exception("connect failed")
    assert "hunter2" not in "\n".join(logger.lines)
