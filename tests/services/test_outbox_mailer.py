"""The development outbox: one readable .eml per idempotency key, parsed back to what was sent."""

from __future__ import annotations

import email
import email.policy
import re

from services.mail import Message, OutboxMailer

TOKEN = "yTF_Od6Z-1yz3z2UuGrbe4yMJFyO-2SFNG8Z1NbXRYo"
TEXT = f"Hello Zoë,\n\nOpen http://127.0.0.1:8000/verify-email?token={TOKEN} to confirm.\n\ntoken={TOKEN}\n"


def test_the_file_reads_like_the_message_so_the_readme_can_grep_the_token(tmp_path):
    mailer = OutboxMailer(tmp_path, "Hearth <no-reply@hearth.local>")
    name = mailer.send(
        Message(
            to="zoe@example.com",
            subject="Confirm your email",
            text=TEXT,
            html=f'<a href="http://127.0.0.1:8000/verify-email?token={TOKEN}">Confirm</a>',
            headers=(("List-Unsubscribe", "<http://127.0.0.1:8000/v1/unsubscribe?token=t>"),),
        ),
        idempotency_key="job:42:email",
    )
    raw = (tmp_path / name).read_bytes()
    # What the README does: grep '^token=' and cut at the first '='.
    assert re.findall(rb"^token=(.*)$", raw, re.M) == [TOKEN.encode()]
    assert f"verify-email?token={TOKEN} to confirm".encode() in raw  # no soft line breaks, no =3D

    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert (parsed["To"], parsed["Subject"], parsed["X-Hearth-Idempotency-Key"]) == (
        "zoe@example.com",
        "Confirm your email",
        "job:42:email",
    )
    assert parsed["List-Unsubscribe"] == "<http://127.0.0.1:8000/v1/unsubscribe?token=t>"
    assert parsed.get_body(("plain",)).get_content() == TEXT
    assert TOKEN in parsed.get_body(("html",)).get_content()


def test_a_second_send_with_the_same_key_changes_nothing(tmp_path):
    mailer = OutboxMailer(tmp_path, "Hearth <no-reply@hearth.local>")
    first = mailer.send(Message(to="a@example.com", subject="One", text="first\n"), idempotency_key="k")
    before = (tmp_path / first).read_bytes()
    assert mailer.send(Message(to="a@example.com", subject="Two", text="second\n"), idempotency_key="k") == first
    assert (tmp_path / first).read_bytes() == before and len(list(tmp_path.glob("*.eml"))) == 1


def test_file_names_sort_in_the_order_the_mail_was_written(tmp_path):
    mailer = OutboxMailer(tmp_path, "h@example.com")
    # Keys whose own order is the reverse of the sending order: only the name's prefix can sort them.
    names = [
        mailer.send(Message(to="a@example.com", subject=str(n), text=f"{n}\n"), idempotency_key=f"job:{9 - n}")
        for n in range(10)
    ]
    assert sorted(names) == names == sorted(p.name for p in tmp_path.glob("*.eml"))
    assert all(re.fullmatch(r"\d{8}T\d{12}Z-\d{7}-job_\d\.eml", name) for name in names), names


def test_a_line_too_long_for_smtp_is_encoded_and_still_parses_back(tmp_path):
    long_line = "x" * 2000 + "\n"
    name = OutboxMailer(tmp_path, "h@example.com").send(
        Message(to="a@example.com", subject="Long", text=long_line), idempotency_key="long"
    )
    raw = (tmp_path / name).read_bytes()
    assert b"Content-Transfer-Encoding: quoted-printable" in raw and max(map(len, raw.splitlines())) <= 998
    assert email.message_from_bytes(raw, policy=email.policy.default).get_content() == long_line


def test_a_long_url_header_is_written_as_is_not_as_encoded_words(tmp_path):
    url = "<http://127.0.0.1:8000/v1/unsubscribe?token=" + "k" * 120 + ">"
    name = OutboxMailer(tmp_path, "h@example.com").send(
        Message(to="a@example.com", subject="Hi", text="hi\n", headers=(("List-Unsubscribe", url),)),
        idempotency_key="unsub",
    )
    raw = (tmp_path / name).read_bytes()
    assert f"List-Unsubscribe: {url}\n".encode() in raw and b"=?utf-8?" not in raw


def test_header_values_stay_one_line_whatever_they_were_built_from(tmp_path):
    # A name stored before the API refused control characters (an import, say) ends up in a subject.
    mailer = OutboxMailer(tmp_path, "Hearth <no-reply@hearth.local>")
    for i, breaker in enumerate(["\r\n", "\n", "\x85", "\u2028", "\u2029", "\x0b", "\x00"]):
        name = mailer.send(
            Message(
                to=f"zoe@example.com{breaker}",
                text="hi\n",
                subject=f"New message from Ada{breaker}Bcc: eve@example.com",
                headers=(("List-Unsubscribe", f"<http://h/u>{breaker}Cc: eve@example.com"),),
            ),
            idempotency_key=f"k{i}",
        )
        parsed = email.message_from_bytes((tmp_path / name).read_bytes(), policy=email.policy.default)
        assert parsed["Subject"] == "New message from Ada Bcc: eve@example.com", repr(breaker)
        assert (parsed["Bcc"], parsed["Cc"], parsed["To"]) == (None, None, "zoe@example.com"), repr(breaker)
        assert parsed["List-Unsubscribe"] == "<http://h/u> Cc: eve@example.com"
