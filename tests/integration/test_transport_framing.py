"""The transport against receivers that get HTTP framing wrong, byte for byte, or stop
in the middle of a response.

A response that may not have a body (204, 304) but carries one anyway is a success if
its status says so, and its stray bytes never reach the next response: the connection
is dropped, as curl and requests do, so the next delivery to that host (possibly
another company's) is answered on a clean connection. A response that stops after its
status line records no status: a FAILED delivery never shows "last status 200".
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from ipaddress import ip_network

import pytest

from app.delivery.transport import Transport
from tests.raw_receiver import OK_200, RawConnection, RawReceiver, RawRequest

LOOPBACK = [ip_network("127.0.0.0/8")]
BODY = b'{"id": "evt_1", "webhook": "ORDER_STATUS", "data": {}}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}

# Each head promises a body that a bodyless status forbids; the body follows.
SLOPPY: dict[str, tuple[int, bytes, bytes]] = {
    "204-content-length": (204, b"Content-Length: 2\r\n", b"ok"),
    "204-chunked": (204, b"Transfer-Encoding: chunked\r\n", b"2\r\nok\r\n0\r\n\r\n"),
    "304-content-length": (304, b"Content-Length: 2\r\n", b"ok"),
    "200-empty-then-stray": (200, b"Content-Length: 0\r\n", b"ok"),
}
REASONS = {200: b"OK", 204: b"No Content", 304: b"Not Modified"}
ERRORS = {200: None, 204: None, 304: "redirect (304) not followed"}
# A head that announces a body forbidden by its status: the body may come at any time.
ANNOUNCED = {name: case for name, case in SLOPPY.items() if not name.startswith("200")}


def head(status: int, framing: bytes) -> bytes:
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, REASONS[status], framing)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    async with Transport(timeout_seconds=5, allowed_networks=LOOPBACK) as sender:
        yield sender


@pytest.mark.parametrize(("status", "framing", "stray"), SLOPPY.values(), ids=SLOPPY.keys())
async def test_a_body_sent_with_the_head_neither_fails_the_attempt_nor_the_next(
    transport: Transport, status: int, framing: bytes, stray: bytes
) -> None:
    # Given a receiver whose answer to /a carries a body where none is allowed, written
    # together with the head (one segment)
    def sloppy(connection: RawConnection, request: RawRequest) -> None:
        connection.send(head(status, framing) + stray)

    with RawReceiver({"/a": sloppy}) as receiver:
        # When a delivery goes to /a, and then another (another company's) to /b
        first = await transport.send(receiver.url_for("/a"), BODY, HEADERS)
        second = await transport.send(receiver.url_for("/b"), BODY, HEADERS)
        requests = receiver.requests

    # Then the first attempt's outcome is what its status says, and the second succeeds
    assert (first.status, first.error, first.body_excerpt) == (status, ERRORS[status], "")
    assert (second.succeeded, second.status, second.body_excerpt) == (True, 200, "fine")
    # on a connection of its own: the one with stray bytes was dropped
    assert [(request.path, request.connection) for request in requests] == [("/a", 0), ("/b", 1)]


@pytest.mark.parametrize(("status", "framing", "stray"), ANNOUNCED.values(), ids=ANNOUNCED.keys())
async def test_a_body_sent_after_the_head_does_not_poison_the_next_response(
    transport: Transport, status: int, framing: bytes, stray: bytes
) -> None:
    # Given a receiver that sends the head of its sloppy answer at once and the body only
    # later: after the next request if that comes on the same connection
    def sloppy_late(connection: RawConnection, request: RawRequest) -> None:
        connection.send(head(status, framing))
        following = connection.next_request(timeout=0.5)
        connection.send(stray + (OK_200 if following is not None else b""))

    with RawReceiver({"/a": sloppy_late}) as receiver:
        # When a delivery goes to /a, and then another to /b
        first = await transport.send(receiver.url_for("/a"), BODY, HEADERS)
        second = await transport.send(receiver.url_for("/b"), BODY, HEADERS)
        requests = receiver.wait_for(2)

    # Then both are answered as their status says, the second on a fresh connection
    assert first.status == status
    assert (second.succeeded, second.status, second.error, second.body_excerpt) == (
        True,
        200,
        None,
        "fine",
    )
    assert [(request.path, request.connection) for request in requests] == [("/a", 0), ("/b", 1)]


async def test_a_bodyless_answer_without_framing_keeps_its_connection(
    transport: Transport,
) -> None:
    # Given a receiver answering a well-formed 204 (no body, no framing headers)
    def tidy_204(connection: RawConnection, request: RawRequest) -> None:
        connection.send(head(204, b""))

    with RawReceiver({"/a": tidy_204}) as receiver:
        # When two deliveries go to it
        outcomes = [await transport.send(receiver.url_for("/a"), BODY, HEADERS) for _ in range(2)]
        requests = receiver.requests

    # Then both succeed over one kept-alive connection (the common case stays cheap)
    assert [(outcome.succeeded, outcome.status) for outcome in outcomes] == [(True, 204)] * 2
    assert [request.connection for request in requests] == [0, 0]


async def test_a_response_that_stalls_mid_body_records_no_status() -> None:
    # Given a receiver that sends "200 OK" and part of the body, then nothing more
    def stall(connection: RawConnection, request: RawRequest) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        connection.next_request(timeout=3)  # says nothing until the client gives up

    with RawReceiver({"/a": stall}) as receiver:
        async with Transport(timeout_seconds=0.5, allowed_networks=LOOPBACK) as transport:
            # When a delivery goes to it
            outcome = await transport.send(receiver.url_for("/a"), BODY, HEADERS)

    # Then the attempt failed with no status: the error says what did arrive
    assert (outcome.succeeded, outcome.status, outcome.body_excerpt, outcome.error) == (
        False,
        None,
        None,
        "timed out after 0.5 s reading the response body (status 200)",
    )


async def test_a_head_whose_empty_line_is_split_across_reads_is_still_found(
    transport: Transport,
) -> None:
    # Given a receiver whose sloppy 204 arrives in two pieces, split inside the empty
    # line that ends its head, the body glued to the second piece
    def split_204(connection: RawConnection, request: RawRequest) -> None:
        whole = head(204, b"Content-Length: 2\r\n")
        connection.send(whole[:-1])
        time.sleep(0.05)
        connection.send(whole[-1:] + b"ok")

    with RawReceiver({"/a": split_204}) as receiver:
        # When a delivery goes to it, and another one after it
        first = await transport.send(receiver.url_for("/a"), BODY, HEADERS)
        second = await transport.send(receiver.url_for("/b"), BODY, HEADERS)

    # Then both succeed
    assert (first.succeeded, first.status) == (True, 204)
    assert (second.succeeded, second.status) == (True, 200)
