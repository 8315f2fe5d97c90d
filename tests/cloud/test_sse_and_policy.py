"""Pure pieces of the cloud path: the SSE parser, route capping, fallback classification."""
from __future__ import annotations

import itertools

import pytest

from edgegen.cloud import Cloud, SSEParser, cloud_error
from edgegen.errors import (
    ContextOverflowError,
    InvalidRequestError,
    MemoryBudgetError,
    ModelNotFoundError,
    RouteError,
    TokenizerError,
)
from edgegen.router import ROUTES, cap_route, cloud_fallback_reason, default_route, local_fallback_reason

STREAM = (
    b": comment\r\n\r\n"
    b"data: one\r\n\r\n"
    b"event: update\n"
    b"data: two-a\n"
    b"data:two-b\n\n"
    b"data: three \xe6\x97\xa5\r\r"
    b"id: 5\nretry: 10\ndata: four\n\n"
)
EXPECTED = [("message", "one"), ("update", "two-a\ntwo-b"), ("message", "three 日"), ("message", "four")]


def _parse(pieces):
    p = SSEParser()
    events = []
    for piece in pieces:
        events += p.feed(piece)
    return events + p.finish()


def test_sse_whole_stream():
    assert _parse([STREAM]) == EXPECTED


@pytest.mark.parametrize("n_cuts", [1, 2])
def test_sse_events_split_at_every_point(n_cuts):
    for cuts in itertools.combinations(range(1, len(STREAM)), n_cuts):
        bounds = (0, *cuts, len(STREAM))
        assert _parse([STREAM[a:b] for a, b in zip(bounds, bounds[1:])]) == EXPECTED, cuts


def test_sse_final_event_without_blank_line_still_counts():
    assert _parse([b"data: last"]) == [("message", "last")]


def test_sse_invalid_utf8_and_overlong_lines_are_protocol_errors():
    from edgegen.errors import CloudError

    with pytest.raises(CloudError) as info:
        _parse([b"data: \xff\n\n"])
    assert info.value.kind == "protocol"
    with pytest.raises(CloudError):
        SSEParser().feed(b"data: " + b"x" * (2 << 20))


@pytest.mark.parametrize(
    "requested,allowed,expected",
    [
        ("cloud", "local", "local"), ("cloud", "local-first", "local-first"), ("cloud", "cloud-first", "cloud-first"),
        ("cloud", "cloud", "cloud"), ("local", "cloud", "local"), ("local-first", "cloud", "local-first"),
        ("cloud-first", "local-first", "local-first"), (None, "local-first", "local-first"),
    ],
)
def test_cap_route_never_exceeds_the_server_policy(requested, allowed, expected):
    assert cap_route(requested, allowed) == expected


def test_cap_route_default_is_capped_too_and_bad_names_are_errors():
    assert cap_route(None, "local", default="cloud") == "local"
    assert cap_route(None, "cloud", default="local-first") == "local-first"
    with pytest.raises(RouteError):
        cap_route("anywhere", "cloud")
    with pytest.raises(RouteError):
        cap_route("cloud", "sometimes")


def test_default_route_is_local_unless_configured(monkeypatch):
    monkeypatch.delenv("EDGEGEN_ROUTE", raising=False)
    assert default_route() == "local"
    monkeypatch.setenv("EDGEGEN_ROUTE", "local-first")
    assert default_route() == "local-first"
    monkeypatch.setenv("EDGEGEN_ROUTE", "bogus")
    with pytest.raises(RouteError):
        default_route()
    assert set(ROUTES) == {"local", "cloud", "local-first", "cloud-first"}


@pytest.mark.parametrize(
    "exc,reason",
    [
        (ModelNotFoundError("x"), "local_not_installed"), (ContextOverflowError("x"), "local_context_overflow"),
        (MemoryBudgetError("x"), "local_memory_budget"), (InvalidRequestError("x"), None), (TokenizerError("x"), None),
        (ValueError("x"), None),
    ],
)
def test_local_fallback_only_on_named_conditions(exc, reason):
    assert local_fallback_reason(exc) == reason


@pytest.mark.parametrize(
    "kind,status,reason",
    [
        ("unreachable", None, "cloud_unreachable"), ("connect_timeout", None, "cloud_connect_timeout"),
        ("idle_timeout", None, "cloud_idle_timeout"), ("http", 503, "cloud_http_503"), ("http", 429, "cloud_http_429"),
        ("http", 401, None), ("http", 400, None),
    ],
)
def test_cloud_fallback_only_on_unreachable_timeout_or_server_errors(kind, status, reason):
    assert cloud_fallback_reason(cloud_error(kind, "m", status=status)) == reason


def test_cloud_config_is_checked_and_the_key_stays_out_of_repr(monkeypatch):
    monkeypatch.setenv("EDGEGEN_CLOUD_API_KEY", "sk-very-secret")
    c = Cloud("https://api.example.com/v1", "m")
    assert "sk-very-secret" not in repr(c) and "key_set=True" in repr(c)
    with pytest.raises(InvalidRequestError, match="https"):
        Cloud("http://api.example.com/v1", "m")  # a key must not travel in clear text
    with pytest.raises(InvalidRequestError):
        Cloud("ftp://x/v1", "m")
    with pytest.raises(InvalidRequestError):
        Cloud("https://x/v1", "m", idle_timeout=0)
