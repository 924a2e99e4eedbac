"""Connection limits: every wait on the database ends, even when the network eats packets.

A refused connection or a restarted server fails fast by itself. A black-holed one (a
firewall dropping packets, a dead switch, a failover that moved the address) does not:
without limits a connect waits for the kernel's SYN retries, a statement waits forever
for an answer that never comes, and the request waiting on it hangs with it. So:

- ``connect_timeout`` bounds a connect;
- TCP keepalives and ``tcp_user_timeout`` (Linux) declare a connection dead once the
  server has not answered for ``dead_after_seconds``, whether a statement is waiting for
  its result (keepalives) or the statement itself is not acknowledged (user timeout);
- ``statement_timeout`` and ``idle_in_transaction_session_timeout`` let the server end
  what its client no longer waits for, so locks do not outlive a vanished client;
- the pool's wait for a connection is bounded (``pool_wait_seconds``), and so is its
  reconnect backoff (:data:`RECONNECT_GIVE_UP_SECONDS`).

The limits travel in the conninfo string, so every connection made from it (the pools,
Procrastinate's LISTEN connection, the delivery-updates listener) has them.
``webhooks migrate`` connects without them: a migration may rightly run for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict, make_conninfo

# psycopg_pool retries a failed connect with a doubling delay until it gives up after
# its ``reconnect_timeout`` (5 minutes by default): after a minute's outage the next try
# could be half a minute away. Giving up after a few seconds keeps the delays at 1 and
# 2 s; the next request that needs a connection then starts a fresh attempt at once.
RECONNECT_GIVE_UP_SECONDS = 5.0
KEEPALIVE_PROBES = 3


@dataclass(frozen=True)
class ConnectionLimits:
    """How long the service waits for the database, at most."""

    connect_seconds: int = 5
    dead_after_seconds: int = 10
    statement_seconds: float = 30.0  # 0: no statement timeout
    pool_wait_seconds: float = 10.0

    def parameters(self) -> dict[str, str]:
        """libpq connection parameters (``options`` holds the server-side timeouts)."""
        dead = self.dead_after_seconds
        parameters = {
            "connect_timeout": str(self.connect_seconds),
            "keepalives": "1",
            # Idle half the budget, then three probes over the rest: dead after ~``dead``.
            "keepalives_idle": str(max(1, round(dead / 2))),
            "keepalives_interval": str(max(1, round(dead / 2 / KEEPALIVE_PROBES))),
            "keepalives_count": str(KEEPALIVE_PROBES),
            "tcp_user_timeout": str(dead * 1000),
        }
        if self.statement_seconds > 0:
            statement_ms = round(self.statement_seconds * 1000)
            parameters["options"] = (
                f"-c statement_timeout={statement_ms}"
                # A transaction never waits on third-party I/O (see stack notes); twice
                # the statement timeout only ends what a vanished client left open.
                f" -c idle_in_transaction_session_timeout={2 * statement_ms}"
            )
        return parameters


def limited_conninfo(url: str, limits: ConnectionLimits) -> str:
    """``url`` as a conninfo string carrying ``limits``; what the URL sets itself wins,
    except ``options``, to which the server-side timeouts are added."""
    given = {name: str(value) for name, value in conninfo_to_dict(url).items()}
    ours = limits.parameters()
    parameters = {**ours, **given}
    if "options" in given and "options" in ours:
        parameters["options"] = f"{ours['options']} {given['options']}"
    return make_conninfo("", **parameters)
