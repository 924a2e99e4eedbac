"""A served process refuses a fragment-spread bomb at once and stays responsive meanwhile.

Chained fragments, each spreading the previous one twice, stand for 2^n fields in a few
hundred bytes. Judged by expanding the spreads, 40 of them never finish, on the event
loop, without a key: /healthz stalls with the rest. Judged in linear time they cost about
what any small document costs.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.secret_box import generate_key
from schema.limits import COST_CODE
from tests.acceptance.processes import Processes, service_environment

FRAGMENTS = 40
ROUNDS = 10
TRIVIAL = "{ __typename }"
# Bounds that only catch a stall: the 2^40 expansion never ends at all.
HANG_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 5.0
# The bomb is a 1.6 KB document refused with an error; a trivial query is answered. Both
# are parsed and validated; the ratio allows for a loaded machine, not for 2^n work.
RATIO = 50


def bomb(fragments: int, padding: int = 0) -> str:
    """F0 selects __typename; each Fn spreads F(n-1) twice; the query spreads the last.

    ``padding`` changes the whitespace: another text, so no cache of documents helps.
    """
    definitions = ["fragment F0 on Query { __typename }"] + [
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, fragments + 1)
    ]
    return " ".join(definitions) + " " * padding + f" {{ ...F{fragments} }}"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


def timed_post(client: httpx.Client, query: str) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = client.post("/graphql", json={"query": query})
    return time.monotonic() - started, response


def test_a_fragment_bomb_is_refused_fast_and_healthz_answers_meanwhile(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    # Given a served API and the time of a trivial query (no key: the bomb needs none)
    env = service_environment(database_url, tmp_path / "data", generate_key())
    server = processes.serve(env)
    client = httpx.Client(base_url=server.url(""), timeout=HANG_SECONDS)
    baseline = [timed_post(client, TRIVIAL) for _ in range(ROUNDS)]
    assert all(response.json() == {"data": {"__typename": "Query"}} for _, response in baseline)

    # When 40-fragment bombs, each with other whitespace, are sent one after another
    bombs: list[tuple[float, httpx.Response]] = []
    failures: list[BaseException] = []

    def send_bombs() -> None:
        with httpx.Client(base_url=server.url(""), timeout=HANG_SECONDS) as bomber:
            try:
                for padding in range(ROUNDS):
                    bombs.append(timed_post(bomber, bomb(FRAGMENTS, padding)))
            except httpx.HTTPError as error:
                failures.append(error)

    bomber = threading.Thread(target=send_bombs, daemon=True)
    bomber.start()
    # ... while /healthz is asked, again and again, until the last bomb is answered
    probes: list[int | str] = []
    with httpx.Client(base_url=server.url(""), timeout=PROBE_TIMEOUT_SECONDS) as prober:
        while True:
            try:
                probes.append(prober.get("/healthz").status_code)
            except httpx.HTTPError as error:
                probes.append(repr(error))
            if not bomber.is_alive():
                break
    bomber.join(HANG_SECONDS)
    client.close()

    # Then /healthz answered every time it was asked
    assert probes and all(status == 200 for status in probes), probes
    # ... every bomb was refused for its cost, none stalled the process
    assert failures == [], server.describe()
    assert len(bombs) == ROUNDS
    for _, response in bombs:
        assert response.status_code == 200
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == COST_CODE
        assert error["extensions"]["cost"] == 2**FRAGMENTS
    # ... and a bomb costs about what a trivial query costs, not 2^40 of it
    bomb_time = statistics.median(seconds for seconds, _ in bombs)
    trivial_time = statistics.median(seconds for seconds, _ in baseline)
    assert bomb_time <= RATIO * trivial_time, (bomb_time, trivial_time)
