"""``python -m bench messaging``: a message sent through the API → received on the recipient's websocket.

BENCH_MESSAGING_CONVERSATIONS (500) conversations (a buyer, a seller's listing)
are written through the models. Each owner has a websocket on ``uvicorn
relay.app:app`` (the relay bench's flags), authenticated and subscribed to
``conversation:{id}``, all in one client process (``bench/messaging_client.py``).
The API runs under gunicorn with the project's settings; its broker is a Redis
database of its own (BENCH_BROKER_DB, default 11; it must be empty) with no
worker, so fan-out jobs only queue. With the same sockets, in turn:

* ``relay-publish``: ``EventBus.publish`` of a ``message.created`` event shaped like
  a message view, straight to the channels, BENCH_MESSAGING_RATE (50) a second
  for BENCH_MESSAGING_SECONDS (15); latency is publish → receipt.
* ``api-post`` and ``message``: the buyers ``POST /v1/conversations/{id}/messages``
  at the same rate, one conversation after the other, from 32 threads with
  keep-alive connections. ``api-post`` is the POST's round trip; ``message`` is
  send start (just before the POST) → receipt on the owner's socket.
* ``api-post-max`` and ``message-max``: the 32 threads post back to back for
  BENCH_MESSAGING_MAX_SECONDS (5; 0 skips it): what the API takes flat out.

Before each POST phase every owner has read their conversation, so the first
message of each conversation notifies its owner (a notification and a fan-out
job) and the later ones, an unread streak, are deduplicated.
"""

from __future__ import annotations

import collections
import datetime
import os
import statistics
import time
import uuid

import redis as redis_lib

from bench import Row, Run, benchmark, messaging_client, servers, stack
from bench.client_process import raise_nofile
from bench.jobs import percentile
from bench.messaging_senders import SENDERS, body, post_flat_out, post_paced, probe
from bench.relay import publish

HEARTH_APP = "api.wsgi:app"


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


@benchmark(
    "messaging",
    "message sent through the API → recipient's websocket over 500 conversations, "
    "beside the POST alone and relay delivery from Redis",
)
def messaging(run: Run) -> list[Row]:
    count = int(_setting("BENCH_MESSAGING_CONVERSATIONS", "500"))
    rate = float(_setting("BENCH_MESSAGING_RATE", "50"))
    seconds = float(_setting("BENCH_MESSAGING_SECONDS", "15"))
    flat_out = float(_setting("BENCH_MESSAGING_MAX_SECONDS", "5"))
    broker_db = int(_setting("BENCH_BROKER_DB", "11"))
    raise_nofile(count * 2 + 1024)
    with stack.workspace(run, "messaging", broker_db) as (hearth, directory, _):
        return _measure(run, hearth, directory, stack.broker_url(broker_db), count, rate, seconds, flat_out)


def _measure(run, hearth, directory, broker_url, count, rate, seconds, flat_out) -> list[Row]:
    from services.events import EventBus

    started = time.perf_counter()
    people = _seed(hearth, count)
    run.log(
        f"messaging: {count} conversations (buyer, owner, listing, sessions, tokens) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    # The client process opens every socket from one address, up to 100 at a time: more than the
    # relay's default allowance of sockets waiting to authenticate per address (10).
    env = {**hearth.env, "BROKER_URL": broker_url, "RELAY_UNAUTHENTICATED_PER_ADDRESS": "1000"}
    run.settings["messaging"] = (
        f"{count} conversations, one owner socket each; {rate:g} messages/s for "
        f"{seconds:g} s, then {flat_out:g} s flat out, from {SENDERS} sender threads; "
        f"api {HEARTH_APP} under {servers.project_settings().describe()}; relay as in "
        "`relay`; no Celery worker (fan-out jobs wait in the broker)"
    )
    redis = redis_lib.Redis.from_url(stack.REDIS_URL)
    bus = EventBus(redis, hearth.redis_prefix)
    channels = [f"conversation:{c['conversation']}" for c in people]
    total = int(rate * seconds)
    with (
        servers.relay_server(env, directory / "relay.log") as ws_url,
        servers.Gunicorn(
            HEARTH_APP, servers.project_settings(), env, directory / "api.log", ready_path="/healthz"
        ) as api,
    ):
        probe(api.base_url, people[0])
        config = {"url": ws_url, "sockets": [[c["owner_token"], ch] for c, ch in zip(people, channels, strict=True)]}
        with messaging_client.client(directory, config) as client:
            run.log(f"messaging: {client.ready} recipients connected and subscribed")
            # One event to every socket and a few seconds of messages, unmeasured: a fresh
            # connection's first delivery and a fresh gunicorn thread's first request are slow.
            publish(
                rate,
                count / rate,
                lambda i, data: bus.publish(channels[i % count], "message.created", _view(people[i % count], -1 - i)),
            )
            warm = client.collect(count)
            warm_posts = post_paced(api.base_url, people, int(rate * 2), rate, first_seq=-10_000_000)
            client.collect(_created(warm_posts))

            sent, pub_rate = publish(
                rate,
                seconds,
                lambda i, data: bus.publish(channels[i % count], "message.created", _view(people[i % count], i)),
            )
            direct = client.collect(sent)

            _read_all()
            cpu = api.cpu_seconds()
            posts = post_paced(api.base_url, people, total, rate)
            cpu = api.cpu_seconds() - cpu
            received = client.collect(_created(posts))
            if flat_out > 0:
                _read_all()
                cpu_max = api.cpu_seconds()
                max_posts = post_flat_out(api.base_url, people, flat_out, first_seq=10_000_000)
                cpu_max = api.cpu_seconds() - cpu_max
                max_received = client.collect(_created(max_posts))
    redis.close()
    run.log(
        f"messaging: relay-publish {direct['received']}/{sent}; messages {received['received']}/{total} "
        f"({_created(posts)} answered 201)"
    )

    rows = [
        _row("relay-publish", direct, sent, {"published_per_s": round(pub_rate, 1)}),
        _post_row("api-post", posts, cpu, {"offered_per_s": rate}),
        _row("message", received, total, {}, baseline="relay-publish"),
    ]
    if flat_out > 0:
        rows += [
            _post_row("api-post-max", max_posts, cpu_max, {}),
            _row("message-max", max_received, len(max_posts), {}, baseline="api-post-max"),
        ]
    post = rows[1]
    run.note(
        f"messaging: send → receipt p50 {received['p50_ms']:.1f} ms, p99 {received['p99_ms']:.1f} ms at "
        f"{rate:g}/s over {count} conversations; the POST alone p50 {post.p50_ms:.1f} ms, p99 {post.p99_ms:.1f} "
        f"ms, {post.cpu_us_per_request:.0f} us of API CPU each; relay delivery of the same event published to "
        f"Redis p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.1f} ms. The API publishes after its "
        "commit, before it answers; all on one machine clock, client queueing included. First delivery on "
        f"each fresh socket (unmeasured): p99 {warm['p99_ms']:.0f} ms"
    )
    # posts[:count] are the first message of each conversation since its owner read it.
    notifying = [ms for status, _, ms in posts[:count] if status == 201]
    streak = [ms for status, _, ms in posts[count:] if status == 201]
    if notifying and streak:
        run.note(
            f"messaging: POST p50 {statistics.median(notifying):.1f} ms for the {len(notifying)} messages that "
            f"notified their recipient (notification and fan-out job written, job sent to the broker), "
            f"{statistics.median(streak):.1f} ms for the {len(streak)} later ones of an unread streak "
            "(deduplicated)"
        )
    return rows


def _created(posts: list[tuple]) -> int:
    return sum(1 for status, _, _ in posts if status == 201)


def _post_row(name: str, posts: list[tuple], cpu_seconds: float, detail: dict) -> Row:
    answered = [ms for status, _, ms in posts if status == 201]
    span = max(at + ms / 1000 for _, at, ms in posts) - min(at for _, at, _ in posts)
    statuses = collections.Counter(str(status) for status, _, _ in posts)
    return Row(
        name,
        len(answered) / span,
        statistics.median(answered) if answered else float("nan"),
        percentile(answered, 99),
        requests=len(posts),
        errors=len(posts) - len(answered),
        cpu_us_per_request=cpu_seconds * 1e6 / max(1, len(posts)),
        detail={
            "statuses": dict(statuses),
            "max_ms": max(answered, default=float("nan")),
            "sent_per_s": round(len(posts) / span, 1),
            **detail,
        },
    )


def _row(name: str, result: dict, sent: int, detail: dict, baseline: str | None = None) -> Row:
    return Row(
        name,
        result["events_per_s"],
        result["p50_ms"],
        result["p99_ms"],
        baseline=baseline,
        requests=result["received"],
        errors=max(0, sent - result["received"]),
        detail={"sent": sent, "max_ms": result["max_ms"], "duplicates": result["duplicates"], **detail},
    )


def _seed(hearth, count: int) -> list[dict]:
    """``count`` conversations, each with a buyer, a seller who owns the listing, and both their tokens."""
    from models.accounts import AuthSession, User
    from models.base import utcnow
    from models.conversations import Conversation, ConversationParticipant
    from models.db import db
    from models.properties import Property
    from services.tokens import KeyRing, TokenIssuer
    from settings import Settings

    settings = Settings.from_env(hearth.env)
    issuer = TokenIssuer(
        KeyRing.from_settings(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
    )
    now = utcnow()
    expires = now + datetime.timedelta(hours=2)
    people = [
        {
            "buyer": uuid.uuid4(),
            "owner": uuid.uuid4(),
            "listing": uuid.uuid4(),
            "conversation": uuid.uuid4(),
            "buyer_session": uuid.uuid4(),
            "owner_session": uuid.uuid4(),
        }
        for _ in range(count)
    ]
    users, sessions, listings, conversations, participants = [], [], [], [], []
    for i, p in enumerate(people):
        for kind, role in (("buyer", "buyer"), ("owner", "seller")):
            users.append(
                {
                    "id": p[kind],
                    "email": f"{kind}{i}@messaging.bench.hearth.test",
                    "full_name": f"{kind} {i}",
                    "role": role,
                    "email_verified_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            sessions.append(
                {
                    "id": p[f"{kind}_session"],
                    "user": p[kind],
                    "expires_at": expires,
                    "created_at": now,
                    "last_used_at": now,
                }
            )
        listings.append(
            {
                "id": p["listing"],
                "owner": p["owner"],
                "standard_status": "Active",
                "property_type": "Residential",
                "list_price": 450_000_00 + i * 100,
                "original_list_price": 450_000_00 + i * 100,
                "city": "Austin",
                "state_or_province": "TX",
                "unparsed_address": f"{100 + i} Bench Street",
                "on_market_timestamp": now,
            }
        )
        conversations.append(
            {"id": p["conversation"], "property": p["listing"], "buyer": p["buyer"], "created_at": now}
        )
        participants += [
            {"conversation": p["conversation"], "user": p["buyer"], "role": "buyer", "joined_at": now},
            {"conversation": p["conversation"], "user": p["owner"], "role": "owner", "joined_at": now},
        ]
    with db.connection_context(), db.atomic():
        for model, rows in (
            (User, users),
            (AuthSession, sessions),
            (Property, listings),
            (Conversation, conversations),
            (ConversationParticipant, participants),
        ):
            for start in range(0, len(rows), 1000):
                model.insert_many(rows[start : start + 1000]).execute()
    for p in people:
        p["buyer_token"] = issuer.issue(user_id=p["buyer"], role="buyer", session_id=p["buyer_session"])[0]
        p["owner_token"] = issuer.issue(user_id=p["owner"], role="seller", session_id=p["owner_session"])[0]
    return people


def _read_all() -> None:
    """Every owner has read their conversation: the next message in each notifies them again."""
    from models.db import db

    with db.connection_context():
        db.execute_sql(
            "UPDATE conversation_participants p SET last_read_message_id = c.last_message_id "
            "FROM conversations c WHERE c.id = p.conversation_id AND p.role = 'owner' "
            "AND c.last_message_id IS NOT NULL"
        )


def _view(person: dict, seq: int) -> dict:
    """What the API publishes for a message (its message view), for events sent straight to Redis."""
    return {
        "id": 1_000_000 + seq,
        "conversation_id": str(person["conversation"]),
        "sender_id": str(person["buyer"]),
        "body": body(seq, time.time()),
        "attachments": [],
        "client_id": f"bench-{seq}",
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
    }
