"""The messaging bench's senders: buyers posting ``POST /v1/conversations/{id}/messages``.

``SENDERS`` threads, each with a keep-alive connection of its own, post either at a
given rate (``post_paced``) or back to back (``post_flat_out``). Each message body
carries its sequence number and send time, which the recipient's client process
(``bench/messaging_client.py``) reads back; ``bench/messaging.py`` drives both.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import urllib.parse

SENDERS = 32
# What a short chat message weighs; the sequence number and send time go in front of it.
TEXT = "Hi, is the house still available? Could we see it on Saturday morning, around ten?"


def body(seq: int, sent_at: float) -> str:
    """A message body that carries its sequence number and send time to the receiving socket."""
    return f"{seq} {sent_at:.6f} {TEXT}"


def probe(base_url: str, person: dict) -> None:
    """One message before measuring, so that an endpoint that is not there fails the run at once."""
    status, _, _ = _post(_connection(base_url), person, -20_000_000)
    if status != 201:
        raise RuntimeError(f"POST /v1/conversations/{{id}}/messages answered {status}, expected 201")


def _connection(base_url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def _post(conn: http.client.HTTPConnection, person: dict, seq: int) -> tuple[int, float, float]:
    """``(status, send start (wall clock), round trip ms)``; status 0 when the connection failed."""
    sent_at, started = time.time(), time.perf_counter()
    payload = json.dumps({"body": body(seq, sent_at), "client_id": f"bench-{seq}"})
    try:
        conn.request(
            "POST",
            f"/v1/conversations/{person['conversation']}/messages",
            payload,
            {"Content-Type": "application/json", "Authorization": f"Bearer {person['buyer_token']}"},
        )
        answer = conn.getresponse()
        answer.read()
        status = answer.status
    except (OSError, http.client.HTTPException):
        conn.close()  # reopened by the next request
        status = 0
    return status, sent_at, (time.perf_counter() - started) * 1000


def post_paced(base_url: str, people: list[dict], total: int, rate: float, first_seq: int = 0) -> list[tuple]:
    """``total`` POSTs at ``rate`` a second, conversation after conversation; one result per POST.

    Message ``i`` is due at ``start + i / rate`` on sender thread ``i % SENDERS``; a thread that
    falls behind sends at once, so a slow API shows as a lower send rate, not a burst later.
    """
    results: list = [None] * total
    start = time.perf_counter() + 0.05

    def sender(k: int, conn) -> None:
        for i in range(k, total, SENDERS):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            results[i] = _post(conn, people[i % len(people)], first_seq + i)

    _run_senders(base_url, sender)
    return results


def post_flat_out(base_url: str, people: list[dict], seconds: float, first_seq: int) -> list[tuple]:
    """Each sender thread posts its next message as soon as its last one is answered."""
    results: list = []
    numbers = itertools.count(first_seq)
    deadline = time.perf_counter() + seconds

    def sender(_k: int, conn) -> None:
        while time.perf_counter() < deadline:
            seq = next(numbers)
            results.append(_post(conn, people[seq % len(people)], seq))

    _run_senders(base_url, sender)
    return results


def _run_senders(base_url: str, sender) -> None:
    def run(k: int) -> None:
        conn = _connection(base_url)
        try:
            sender(k, conn)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
