"""A complete webhook receiver: verify, deduplicate on webhook-id, answer 2xx fast.

    pip install standardwebhooks
    SIGNING_SECRET=whsec_... python examples/receiver.py 9000

With ``AUTHORIZATION="Bearer ..."`` as well, a request must also carry that
``Authorization`` header (a custom header of the subscription), or it is answered 401.

A subscription ordered per subject numbers each subject's deliveries (``webhook-sequence``:
1, 2, ...); the receiver notes a number past the next one expected (a ``gap``: the ones
between failed for good or were cancelled) and one at or below the last seen (``old``: an
earlier event arriving late, such as a redelivery of one that had failed; do not apply it
over newer state).

Standard library HTTP server plus the `standardwebhooks` package; swap in your web
framework and keep the three steps. Processed ids are kept in memory here: use your
database (a unique key on webhook-id) in real life.
"""

from __future__ import annotations

import hmac
import json
import os
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

verifier = Webhook(os.environ["SIGNING_SECRET"])
expected_authorization = os.environ.get("AUTHORIZATION", "")
seen: set[str] = set()
seen_lock = threading.Lock()
last_sequence: dict[str, int] = {}  # per subject, for ordered subscriptions
work: queue.Queue[dict[str, object]] = queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            event = verifier.verify(body, headers)  # 1. verify the signature and timestamp
        except WebhookVerificationError:
            self.answer(400)
            return
        # The signature does not cover custom headers: a credential sent in one is
        # checked on its own, in constant time.
        given = headers.get("authorization", "")
        if expected_authorization and not hmac.compare_digest(
            given.encode(), expected_authorization.encode()
        ):
            self.answer(401)
            return
        with seen_lock:  # 2. deduplicate: retries and redeliveries reuse the webhook-id
            duplicate = headers["webhook-id"] in seen
            seen.add(headers["webhook-id"])
            order = None if duplicate else sequence_order(headers, event)
        if not duplicate:
            work.put(event)
        print(
            json.dumps(
                {
                    "webhookId": headers["webhook-id"],
                    "duplicate": duplicate,
                    "sequence": order,
                    "event": event,
                }
            ),
            flush=True,
        )
        self.answer(204)  # 3. answer fast; process `work` elsewhere

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep stdout for the events


def sequence_order(headers: dict[str, str], event: dict[str, object]) -> dict[str, object] | None:
    """Where a numbered delivery stands among its subject's: next, after a gap, or old.
    Called with ``seen_lock`` held."""
    if "webhook-sequence" not in headers:
        return None
    number, subject = int(headers["webhook-sequence"]), str(event["subject"])
    last = last_sequence.get(subject, 0)
    last_sequence[subject] = max(last, number)
    if number <= last:
        return {"number": number, "old": True}
    if number > last + 1:
        return {"number": number, "gap": list(range(last + 1, number))}
    return {"number": number}


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
