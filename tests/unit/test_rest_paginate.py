"""Paginators are pure: the next page from this page and what it returned."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from connectors._errors import DataContractError
from connectors.rest import (
    CursorInBody,
    LinkHeader,
    NextURLInBody,
    Offset,
    Page,
    PageLoop,
    PageNumber,
    PageProgress,
    PageResult,
    Paginator,
    parse_link_header,
)

URL = "https://api.example.com/v1/orders"
START = Page(URL, {"status": "open"})


def result(records: int, body=None, headers=None) -> PageResult:
    return PageResult(body if body is not None else {}, headers or {}, records)


def walk(paginator: Paginator, results: list[PageResult], start: Page = START) -> list[Page]:
    """The pages requested when the source answers ``results`` in turn."""
    page, pages = paginator.first(start), []
    for answer in results:
        pages.append(page)
        page = paginator.next(page, answer)
        if page is None:
            return pages
    raise AssertionError(f"still paging after {len(results)} results: {page}")


# -- the base paginator ------------------------------------------------------------------


def test_the_base_paginator_reads_one_page():
    paginator = Paginator()
    assert paginator.first(START) is START
    assert paginator.next(START, result(100, {"next": "x"})) is None


# -- PageNumber ----------------------------------------------------------------------------


def test_page_number_first_page():
    assert PageNumber().first(START) == Page(URL, {"status": "open", "page": 1, "per_page": 100})
    assert PageNumber(page_param="p", size_param="size", size=25, start=0).first(START) == Page(
        URL, {"status": "open", "p": 0, "size": 25}
    )
    assert PageNumber(size_param=None).first(START) == Page(URL, {"status": "open", "page": 1})


def test_page_number_continues_on_a_full_page():
    paginator = PageNumber(size=10)
    page = paginator.first(START)
    assert paginator.next(page, result(10)) == Page(
        URL, {"status": "open", "page": 2, "per_page": 10}
    )


@pytest.mark.parametrize("records", [0, 1, 9])
def test_page_number_stops_on_a_short_or_empty_page(records):
    paginator = PageNumber(size=10)
    assert paginator.next(paginator.first(START), result(records)) is None


def test_page_number_walks_until_the_short_page():
    pages = walk(PageNumber(size=2), [result(2), result(2), result(1)])
    assert [p.params["page"] for p in pages] == [1, 2, 3]
    assert all(p.params["per_page"] == 2 and p.params["status"] == "open" for p in pages)


def test_page_number_stops_at_total_pages_even_on_full_pages():
    paginator = PageNumber(size=2, total_pages_path="meta.total_pages")
    body = {"meta": {"total_pages": 3}}
    pages = walk(paginator, [result(2, body)] * 5)
    assert [p.params["page"] for p in pages] == [1, 2, 3]


def test_page_number_total_pages_as_text_and_absent():
    paginator = PageNumber(size=2, total_pages_path="$.meta.total_pages")
    page = paginator.first(START)
    assert paginator.next(page, result(2, {"meta": {"total_pages": "1"}})) is None
    assert paginator.next(page, result(2, {"meta": {}})).params["page"] == 2


def test_page_number_without_a_size_stops_only_on_an_empty_page():
    paginator = PageNumber(size_param=None, size=50)
    page = paginator.first(START)
    assert paginator.next(page, result(3)) == Page(URL, {"status": "open", "page": 2})
    assert paginator.next(page, result(0)) is None


def test_page_number_reads_the_number_from_a_resumed_page():
    # A page restored from state may carry its number as text.
    page = Page(URL, {"page": "4", "per_page": 10})
    assert PageNumber(size=10).next(page, result(10)).params["page"] == 5


# -- Offset ------------------------------------------------------------------------------


def test_offset_first_page():
    assert Offset().first(START) == Page(URL, {"status": "open", "offset": 0, "limit": 100})
    assert Offset(offset_param="skip", limit_param="top", limit=5).first(START) == Page(
        URL, {"status": "open", "skip": 0, "top": 5}
    )


def test_offset_advances_by_the_records_returned():
    paginator = Offset(limit=3)
    pages = walk(paginator, [result(3), result(3), result(2)])
    assert [p.params["offset"] for p in pages] == [0, 3, 6]
    assert all(p.params["limit"] == 3 for p in pages)


@pytest.mark.parametrize("records", [0, 2])
def test_offset_stops_on_a_short_or_empty_page(records):
    paginator = Offset(limit=3)
    assert paginator.next(paginator.first(START), result(records)) is None


@pytest.mark.parametrize(
    ("total", "offsets"),
    [(9, [0, 3, 6]), (7, [0, 3, 6]), (6, [0, 3]), (3, [0]), ("6", [0, 3])],
)
def test_offset_stops_at_the_total(total, offsets):
    paginator = Offset(limit=3, total_path="total")
    pages = walk(paginator, [result(3, {"total": total})] * 10)
    assert [p.params["offset"] for p in pages] == offsets


# -- CursorInBody ------------------------------------------------------------------------


def test_cursor_in_body_first_page_with_and_without_a_limit():
    assert CursorInBody().first(START) == START
    assert CursorInBody(limit_param="limit", limit=50).first(START) == Page(
        URL, {"status": "open", "limit": 50}
    )


def test_cursor_in_body_sends_the_token_back():
    paginator = CursorInBody()
    page = paginator.first(START)
    assert paginator.next(page, result(100, {"next_cursor": "abc"})) == Page(
        URL, {"status": "open", "cursor": "abc"}
    )


def test_cursor_in_body_at_a_nested_path_and_custom_param():
    paginator = CursorInBody(cursor_path="$.meta.next", cursor_param="after")
    pages = walk(paginator, [
        result(2, {"meta": {"next": "t1"}}),
        result(2, {"meta": {"next": "t2"}}),
        result(2, {"meta": {"next": None}}),
    ])
    assert [p.params.get("after") for p in pages] == [None, "t1", "t2"]


@pytest.mark.parametrize(
    "body",
    [{"next_cursor": None}, {"next_cursor": ""}, {}, {"other": "x"}],
    ids=["null", "empty", "missing", "elsewhere"],
)
def test_cursor_in_body_stops_without_a_token(body):
    assert CursorInBody().next(START, result(100, body)) is None


def test_cursor_in_body_continues_on_a_short_page_with_a_token():
    # The token, not the page size, says whether there is more.
    assert CursorInBody().next(START, result(1, {"next_cursor": "z"})).params["cursor"] == "z"


# -- NextURLInBody -----------------------------------------------------------------------

NEXT = "https://api.example.com/v1/orders?page=2"



@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        pytest.param("https://api.example.com/v1/orders?page=2", NEXT, id="absolute"),
        pytest.param("/v1/orders?page=2", NEXT, id="root-relative"),
        pytest.param("?page=2", NEXT, id="query-only"),
        pytest.param("orders?page=2", NEXT, id="path-relative"),
        pytest.param("https://cdn.example.net/p/2", "https://cdn.example.net/p/2", id="other-host"),
    ],
)
def test_next_url_in_body_follows_the_link(next_url, expected):
    page = NextURLInBody().next(START, result(10, {"links": {"next": next_url}}))
    assert page == Page(expected, {})


@pytest.mark.parametrize(
    "body",
    [{"links": {"next": None}}, {"links": {"next": ""}}, {"links": {}}, {}],
    ids=["null", "empty", "missing", "no-links"],
)
def test_next_url_in_body_stops_without_a_url(body):
    assert NextURLInBody().next(START, result(10, body)) is None


def test_next_url_in_body_at_a_custom_path_drops_the_old_params():
    paginator = NextURLInBody(path="$.paging.next")
    page = paginator.next(START, result(1, {"paging": {"next": "/v1/orders?after=9"}}))
    assert page == Page("https://api.example.com/v1/orders?after=9", {})


# -- LinkHeader and parse_link_header ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, {}, id="none"),
        pytest.param("", {}, id="empty"),
        pytest.param("garbage without brackets", {}, id="garbage"),
        pytest.param("<https://a/2>", {}, id="no-rel"),
        pytest.param('<https://a/2>; rel="next"', {"next": "https://a/2"}, id="quoted"),
        pytest.param("<https://a/2>; rel=next", {"next": "https://a/2"}, id="unquoted"),
        pytest.param(
            '<https://a/2>; rel="next", <https://a/9>; rel="last", <https://a/1>; rel="first"',
            {"next": "https://a/2", "last": "https://a/9", "first": "https://a/1"},
            id="several",
        ),
        pytest.param(
            '<https://a/9>; rel="next last"',
            {"next": "https://a/9", "last": "https://a/9"},
            id="several-rels-in-one",
        ),
        pytest.param(
            '<https://a/2>; rel="Next"', {"next": "https://a/2"}, id="rel-lower-cased"
        ),
        pytest.param(
            '<https://a/2>; title="page two"; rel="next"; type="application/json"',
            {"next": "https://a/2"},
            id="extra-params",
        ),
        pytest.param(
            '  <https://a/2> ;  rel = "next" ,<https://a/3>;rel=last  ',
            {"next": "https://a/2", "last": "https://a/3"},
            id="whitespace",
        ),
        pytest.param(
            '<https://api.github.com/r?page=2&per_page=30>; rel="next", '
            '<https://api.github.com/r?page=5&per_page=30>; rel="last"',
            {
                "next": "https://api.github.com/r?page=2&per_page=30",
                "last": "https://api.github.com/r?page=5&per_page=30",
            },
            id="urls-with-queries",
        ),
        pytest.param(
            '<https://a/2>; rel="next", <https://a/3>; rel="next"',
            {"next": "https://a/2"},
            id="first-of-a-repeated-rel-wins",
        ),
        pytest.param("</orders?page=2>; rel=next", {"next": "/orders?page=2"}, id="relative"),
    ],
)
def test_parse_link_header(value, expected):
    assert parse_link_header(value) == expected


def test_parse_link_header_with_a_comma_inside_a_quoted_parameter():
    value = '<https://a/2>; title="orders, page 2"; rel="next", <https://a/1>; rel="prev"'
    assert parse_link_header(value) == {"next": "https://a/2", "prev": "https://a/1"}


def test_link_header_follows_next_and_joins_relative_urls():
    headers = {"Link": '</v1/orders?page=2>; rel="next", </v1/orders?page=9>; rel="last"'}
    page = LinkHeader().next(START, result(10, headers=headers))
    assert page == Page("https://api.example.com/v1/orders?page=2", {})


def test_link_header_name_is_case_insensitive_and_rel_is_configurable():
    headers = {"link": '<https://a/2>; rel="next", <https://a/0>; rel="Prev"'}
    assert LinkHeader().next(START, result(1, headers=headers)) == Page("https://a/2", {})
    assert LinkHeader(rel="PREV").next(START, result(1, headers=headers)) == Page("https://a/0", {})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Link": ""}, {"Link": '<https://a/9>; rel="last"'}, {"Content-Type": "x"}],
    ids=["no-header", "empty", "only-last", "other-headers"],
)
def test_link_header_stops_without_a_next_link(headers):
    assert LinkHeader().next(START, result(10, headers=headers)) is None


# -- Page and PageLoop -------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        Page(URL),
        Page(URL, {"page": 3, "per_page": 100}),
        Page(URL, {"cursor": "abc==", "filter": "a,b"}),
        Page("https://api.example.com/v1/orders?after=9", {}),
    ],
)
def test_page_state_round_trip(page):
    state = page.to_state()
    assert state == {"url": page.url, "params": dict(page.params)}
    assert Page.from_state(state) == page


def test_page_from_state_without_params():
    assert Page.from_state({"url": URL}) == Page(URL, {})
    assert Page.from_state({"url": URL, "params": None}) == Page(URL, {})


def test_page_to_state_is_a_copy():
    page = Page(URL, {"page": 1})
    page.to_state()["params"]["page"] = 99
    assert page.params == {"page": 1}


def test_with_params_adds_and_replaces_without_changing_the_page():
    page = Page(URL, {"a": 1, "b": 2})
    assert page.with_params(b=3, c=4) == Page(URL, {"a": 1, "b": 3, "c": 4})
    assert page.params == {"a": 1, "b": 2}


def test_page_loop_refuses_the_same_page_twice():
    loop = PageLoop("orders")
    loop.visit(Page(URL, {"page": 1, "per_page": 10}))
    with pytest.raises(DataContractError, match=r"stream 'orders'.*already read") as info:
        loop.visit(Page(URL, {"per_page": 10, "page": 1}))  # same, other order
    assert URL in info.value.message


def test_page_loop_sees_a_resumed_text_param_as_the_same_page():
    loop = PageLoop("orders")
    loop.visit(Page(URL, {"page": 2}))
    with pytest.raises(DataContractError):
        loop.visit(Page(URL, {"page": "2"}))


@pytest.mark.parametrize(
    "pages",
    [
        [Page(URL, {"page": 1}), Page(URL, {"page": 2}), Page(URL, {"page": 3})],
        [Page(URL, {"cursor": "a"}), Page(URL, {"cursor": "b"}), Page(URL, {})],
        [Page(URL), Page(URL + "?page=2"), Page("https://other.example.com/v1/orders")],
        [Page(URL, {"a": 1}), Page(URL, {"a": 1, "b": 1})],
    ],
)
def test_page_loop_admits_different_pages(pages):
    loop = PageLoop("orders")
    for page in pages:
        loop.visit(page)


def test_page_loop_stops_a_source_that_hands_back_an_old_token():
    paginator, loop = CursorInBody(), PageLoop("events")
    tokens = iter(["t1", "t2", "t1"])
    page = paginator.first(START)
    with pytest.raises(DataContractError):
        for _ in range(10):
            loop.visit(page)
            page = paginator.next(page, result(5, {"next_cursor": next(tokens)}))
    assert page.params["cursor"] == "t1"


# -- PageProgress -------------------------------------------------------------------------


def test_progress_refuses_a_page_of_keys_all_read_already():
    progress = PageProgress("shop", "orders")
    progress.check(1, Page(URL, {"page": 1}), [1, 2, 3])
    progress.check(2, Page(URL, {"page": 2}), [3, 4])  # one new key is progress
    with pytest.raises(DataContractError) as info:
        progress.check(3, Page(URL, {"page": 3}), [4, 1, 2])
    message = info.value.message
    assert message.startswith("connector 'shop', stream 'orders': page 3 of this read")
    assert f"{URL} {{'page': 3}}" in message and "3 record(s)" in message


def test_progress_lets_empty_pages_pass():
    progress = PageProgress("shop", "orders")
    progress.check(1, Page(URL), [1])
    for number in range(2, 10):
        progress.check(number, Page(URL, {"window": number}), [])


@pytest.mark.parametrize("keys", [[("a", 1), ("a", 2)], [["x"], ["y"]], [{"k": 1}, {"k": 2}]],
                         ids=["tuples", "lists", "mappings"])
def test_progress_takes_keys_of_any_shape(keys):
    progress = PageProgress("shop", "orders")
    progress.check(1, Page(URL), keys)
    with pytest.raises(DataContractError):
        progress.check(2, Page(URL, {"p": 2}), list(reversed(keys)))


def test_progress_memory_is_bounded_by_the_window_and_repeats_are_still_caught():
    progress = PageProgress("shop", "orders", window=100)
    first = list(range(10))
    progress.check(1, Page(URL), first)
    for number in range(2, 60):  # 580 more keys: the first page left the window long ago
        progress.check(number, Page(URL, {"p": number}), list(range(number * 10,
                                                                     number * 10 + 10)))
    assert len(progress._current) + len(progress._previous) <= 100
    with pytest.raises(DataContractError):  # the same page again, by its fingerprint
        progress.check(60, Page(URL, {"p": 60}), list(reversed(first)))
    progress.check(61, Page(URL, {"p": 61}), first[:5])  # a part of it is not caught


def test_progress_remembers_at_least_half_the_window_exactly():
    progress = PageProgress("shop", "orders", window=100)
    for number in range(1, 20):
        progress.check(number, Page(URL, {"p": number}), list(range(number * 10,
                                                                    number * 10 + 10)))
    last_half_window = list(range(199, 149, -1))  # the last 50 keys, across 5 pages
    with pytest.raises(DataContractError):
        progress.check(20, Page(URL, {"p": 20}), last_half_window)


def test_stored_pages_leave_out_credential_parameters():
    page = Page(URL + "?page=2&api_key=k%2B1&sort=id", {"api_key": "k+1", "limit": 5})
    assert page.without({"api_key"}) == Page(URL + "?page=2&sort=id", {"limit": 5})
    assert page.without({"sort", "page"}).url == URL + "?api_key=k%2B1"
    assert Page(URL).without({"api_key"}) == Page(URL)


# -- a custom paginator ------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderToken(Paginator):
    """The next page's token in an ``X-Next-Page`` header, sent back as ``?page_token=``."""

    header: str = "X-Next-Page"

    def first(self, page: Page) -> Page:
        return page.with_params(page_size=2)

    def next(self, page: Page, result: PageResult) -> Page | None:
        token = {k.lower(): v for k, v in result.headers.items()}.get(self.header.lower())
        return page.with_params(page_token=token) if token else None


def test_a_custom_paginator_walks_pages():
    answers = [
        result(2, headers={"X-Next-Page": "p2"}),
        result(2, headers={"x-next-page": "p3"}),
        result(1, headers={}),
    ]
    pages = walk(HeaderToken(), answers)
    assert pages == [
        Page(URL, {"status": "open", "page_size": 2}),
        Page(URL, {"status": "open", "page_size": 2, "page_token": "p2"}),
        Page(URL, {"status": "open", "page_size": 2, "page_token": "p3"}),
    ]


def test_a_custom_paginator_is_stopped_by_the_page_loop():
    paginator, loop = HeaderToken(), PageLoop("custom")
    page = paginator.first(START)
    loop.visit(page)
    page = paginator.next(page, result(2, headers={"X-Next-Page": "p2"}))
    loop.visit(page)
    page = paginator.next(page, result(2, headers={"X-Next-Page": "p2"}))
    with pytest.raises(DataContractError, match="'custom'"):
        loop.visit(page)
