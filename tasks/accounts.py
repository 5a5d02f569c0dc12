"""Account emails: verification, password reset, the taken-address notice, unlock links and two-factor
changes, sent by the worker.

The token in each email is derived from the job id (HMAC with ``SECRET_KEY``),
so a retried or redelivered job stores the same token hash and writes the same
message: the user never receives two different links for one request.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import urlencode

from models.accounts import AccountToken, User, expires_in, token_hash
from models.db import db
from models.jobs import JobEffect
from services.mail import MailError, Message
from services.signing import Signer
from tasks.base import JobContext, Transient, job_task
from tasks.runtime import runtime

log = logging.getLogger("hearth.accounts")
# The mark a run commits just before it hands an email to the provider (see ``_send``).
SENDING = "email-sending"


def job_token(purpose: str, job_id) -> str:
    digest = Signer(runtime().settings.secret_key).job_digest(purpose, job_id)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _link(path: str, token: str) -> str:
    return f"{runtime().settings.pages_url}{path}?{urlencode({'token': token})}"


def _send(ctx: JobContext, message: Message) -> dict:
    """Send ``message`` at most once for this job, even when a worker dies while the provider has it.

    A committed mark (``email-sending``) goes before the call. A later run of
    the job that finds the mark but no record of the send knows an earlier run
    died in the middle of it: the mail may have gone out, and SendGrid cannot
    tell (it keeps no idempotency keys), so the run records the send as
    ``uncertain`` instead of risking a second copy. The user asks for another
    (resend the verification, forgot password) if none arrived. A failure known
    to have sent nothing (a 5xx, the provider unreachable) takes the mark back
    before the retry.
    """
    if ctx.attempt > 1:
        done, result = ctx.recorded("email")
        if done:
            return result
        if ctx.recorded(SENDING)[0]:
            log.warning(
                "an earlier run died while sending an email; not sending it again", extra={"job": str(ctx.job.id)}
            )
            return ctx.once("email", lambda key: {"message": None, "uncertain": True})
    ctx.once(SENDING, lambda key: {"started": True})
    unsent = False

    def deliver(key):
        nonlocal unsent
        try:
            return {"message": runtime().mailer.send(message, idempotency_key=key)}
        except MailError as exc:
            if exc.transient:
                unsent = not exc.uncertain
                raise Transient(str(exc)) from exc
            raise

    try:
        return ctx.once("email", deliver)
    except Transient:
        if unsent:
            with db.atomic():
                JobEffect.delete().where(JobEffect.key == ctx.effect_key(SENDING)).execute()
        raise


def _issue_token(ctx: JobContext, user: User, purpose: str, ttl: int) -> str:
    raw = job_token(purpose, ctx.job.id)
    (
        AccountToken.insert(token_hash=token_hash(raw), user=user.id, purpose=purpose, expires_at=expires_in(ttl))
        .on_conflict_ignore()
        .execute()
    )
    return raw


def _compat_link(ctx: JobContext, token: str, kind: str) -> str | None:
    """The Supabase-style link (``/auth/v1/verify``) when the request came through ``/auth/v1``.

    It signs the user in and lands on the redirect the request named (checked
    against the allowed URLs when it was queued); the token in it is the same one.
    """
    redirect = ctx.input.get("compat_redirect")
    if redirect is None:
        return None
    query = urlencode({"token": token, "type": kind, "redirect_to": redirect})
    return f"{runtime().settings.public_url.rstrip('/')}/auth/v1/verify?{query}"


def _emailed_link(ctx: JobContext, purpose: str, ttl: int, path: str) -> tuple[User, str, str] | None:
    """For jobs queued by address, known or not: (user, token, link), or None when no mail is due.

    Banned accounts get none, as unknown addresses get none."""
    user = User.get_or_none(User.email == ctx.input["email"])
    if user is None or user.is_banned:
        return None
    token = _issue_token(ctx, user, purpose, ttl)
    return user, token, _link(path, token)


@job_task(transient=(Transient,))
def send_verification_email(ctx: JobContext) -> dict:
    user = User.get_or_none(User.id == ctx.input["user_id"])
    if user is None or user.email_verified_at is not None:
        return {"sent": False}
    token = _issue_token(ctx, user, "verify_email", runtime().settings.verify_email_ttl)
    link = _compat_link(ctx, token, "signup") or _link("/verify-email", token)
    _send(
        ctx,
        Message(
            to=user.email,
            subject="Confirm your email for Hearth",
            text=(
                f"Hello {user.full_name},\n\nConfirm your email address by opening this link:\n\n{link}\n\n"
                "Or send this token to POST /v1/auth/verify-email:\n\n"
                f"token={token}\n\nThe link is valid for 48 hours. If you did not sign up, ignore this email.\n"
            ),
            html=(
                f'<p>Hello {_escape(user.full_name)},</p><p><a href="{link}">Confirm your email address</a>'
                "</p><p>The link is valid for 48 hours. If you did not sign up, ignore this email.</p>"
            ),
        ),
    )
    return {"sent": True}


@job_task(transient=(Transient,))
def send_password_reset(ctx: JobContext) -> dict:
    # The API enqueues this for every request, known email or not, so that the
    # answer and its timing reveal nothing; the job decides here.
    found = _emailed_link(ctx, "password_reset", runtime().settings.password_reset_ttl, "/reset-password")
    if found is None:
        return {"sent": False}
    user, token, link = found
    link = _compat_link(ctx, token, "recovery") or link
    _send(
        ctx,
        Message(
            to=user.email,
            subject="Reset your Hearth password",
            text=(
                f"Hello {user.full_name},\n\nSomeone asked to reset the password of this account. "
                f"To choose a new password, open:\n\n{link}\n\nor send this token to "
                f"POST /v1/auth/password/reset:\n\ntoken={token}\n\n"
                "The link is valid for one hour and works once. If it was not you, ignore this email.\n"
            ),
            html=(
                f'<p>Hello {_escape(user.full_name)},</p><p><a href="{link}">Choose a new password</a></p>'
                "<p>The link is valid for one hour and works once. If it was not you, ignore this email.</p>"
            ),
        ),
    )
    return {"sent": True}


@job_task(transient=(Transient,))
def send_signup_notice(ctx: JobContext) -> dict:
    # Registration with a taken address answers like a new one; the address's owner hears of it
    # here, with a way back in should they have forgotten they signed up.
    found = _emailed_link(ctx, "password_reset", runtime().settings.password_reset_ttl, "/reset-password")
    if found is None:
        return {"sent": False}
    user, token, link = found
    _send(
        ctx,
        Message(
            to=user.email,
            subject="Someone tried to sign up to Hearth with your address",
            text=(
                f"Hello {user.full_name},\n\nSomeone tried to create a Hearth account with this email address, "
                "which already has one. Nothing was changed.\n\nIf it was you, log in instead. If you forgot "
                f"your password, choose a new one here:\n\n{link}\n\nor send this token to "
                f"POST /v1/auth/password/reset:\n\ntoken={token}\n\n"
                "The link is valid for one hour and works once. If it was not you, ignore this email: "
                "your account is unchanged.\n"
            ),
            html=(
                f"<p>Hello {_escape(user.full_name)},</p><p>Someone tried to create a Hearth account with this "
                "email address, which already has one. Nothing was changed.</p><p>If it was you, log in instead. "
                f'If you forgot your password, <a href="{link}">choose a new one</a>.</p>'
                "<p>The link is valid for one hour and works once. If it was not you, ignore this email: your "
                "account is unchanged.</p>"
            ),
        ),
    )
    return {"sent": True}


@job_task(transient=(Transient,))
def send_unlock_link(ctx: JobContext) -> dict:
    # Queued by the login that locked the account from everywhere, known email or not.
    found = _emailed_link(ctx, "account_unlock", runtime().settings.account_unlock_ttl, "/unlock-account")
    if found is None:
        return {"sent": False}
    user, token, link = found
    minutes = runtime().settings.account_unlock_ttl // 60
    _send(
        ctx,
        Message(
            to=user.email,
            subject="Your Hearth account was locked",
            text=(
                f"Hello {user.full_name},\n\nSomeone failed to log in to your Hearth account from many different "
                "places, so we locked it for a while. To log in now, open this link on the device you log in "
                "from, then log in there:"
                f"\n\n{link}\n\nor send this token to POST /v1/auth/unlock:\n\ntoken={token}\n\n"
                f"The link works once, for {minutes} minutes. If the failed logins were not you, consider "
                "choosing a new password.\n"
            ),
            html=(
                f"<p>Hello {_escape(user.full_name)},</p><p>Someone failed to log in to your Hearth account from "
                "many different places, so we locked it. To log in now, open this link on the device you log "
                f'in from, then log in:</p><p><a href="{link}">Unlock my account</a></p><p>The link works '
                f"once, for {minutes} minutes. If the failed logins were not you, consider choosing a new "
                "password.</p>"
            ),
        ),
    )
    return {"sent": True}


# What a two-factor change mail says: (subject, what happened).
MFA_CHANGES = {
    "enabled": ("Two-factor login is on", "Two-factor login was turned on for your Hearth account."),
    "disabled": ("Two-factor login is off", "Two-factor login was turned off for your Hearth account."),
    "factor_removed": ("An authenticator app was removed", "An authenticator app was removed from your account."),
    "recovery_codes": ("New recovery codes", "New recovery codes were made for your account; the old ones are void."),
    "recovery_code_used": ("A recovery code was used", "A recovery code was used to log in to your account."),
}


@job_task(transient=(Transient,))
def send_mfa_notice(ctx: JobContext) -> dict:
    # Every change to two-factor login is mailed, so a change the owner did not make is noticed.
    user = User.get_or_none(User.id == ctx.input["user_id"])
    change = MFA_CHANGES.get(ctx.input.get("change", ""))
    if user is None or change is None:
        return {"sent": False}
    subject, what = change
    advice = "If this was not you, choose a new password at once and review your sessions."
    _send(
        ctx,
        Message(
            to=user.email,
            subject=f"Hearth: {subject}",
            text=f"Hello {user.full_name},\n\n{what}\n\n{advice}\n",
            html=f"<p>Hello {_escape(user.full_name)},</p><p>{_escape(what)}</p><p>{_escape(advice)}</p>",
        ),
    )
    return {"sent": True}


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
