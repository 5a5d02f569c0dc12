"""The beat schedule: every periodic task of Hearth, each with an ``expires``.

``expires`` drops a tick that was not picked up in time instead of letting
ticks pile up behind a stopped worker.
"""

from celery.schedules import crontab

beat_schedule = {
    # Recovery of accepted work: jobs of dead workers, jobs the broker never got.
    # Ticks are frequent and cheap (two indexed updates); a missed one is simply dropped.
    "sweep-jobs": {"task": "tasks.jobs.sweep_jobs", "schedule": 15.0, "options": {"expires": 15}},
    "purge-finished-jobs": {
        "task": "tasks.jobs.purge_finished_jobs",
        "schedule": crontab(minute=41),
        "options": {"expires": 30 * 60},
    },
    # Job events that older versions wrote with a signed download link leave the replay streams.
    # Once per Redis: after that the task only finds its mark.
    "redact-signed-links-from-events": {
        "task": "tasks.maintenance.redact_signed_links_from_events",
        "schedule": 600.0,
        "options": {"expires": 540},
    },
    # Bans with an end (imported from Supabase) that have ended are lifted, so banned_at tells the truth.
    "lift-expired-bans": {
        "task": "tasks.maintenance.lift_expired_bans",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 9 * 60},
    },
    "purge-expired-tokens": {
        "task": "tasks.maintenance.purge_expired_tokens",
        "schedule": crontab(minute=17),
        "options": {"expires": 30 * 60},
    },
    # Responses kept for Idempotency-Key retries, past IDEMPOTENCY_KEY_TTL (never replayed by then).
    "purge-expired-idempotency-keys": {
        "task": "tasks.maintenance.purge_expired_idempotency_keys",
        "schedule": crontab(minute=29),
        "options": {"expires": 30 * 60},
    },
    # Uploads whose scan job ran out of attempts (clamd was down a long time) get a new one:
    # a quarantined file is scanned eventually, never served unscanned.
    "rescan-stalled-uploads": {"task": "tasks.uploads.rescan_stalled", "schedule": 300.0, "options": {"expires": 240}},
    # Upload intents never completed: the row and whatever was sent go.
    "purge-expired-upload-intents": {
        "task": "tasks.uploads.purge_expired_intents",
        "schedule": crontab(minute=23),
        "options": {"expires": 30 * 60},
    },
    # Listings left dirty in the search index with no reindex job (it failed for good) get a new one.
    "requeue-stale-search-reindexes": {
        "task": "tasks.search.requeue_stale_reindexes",
        "schedule": 300.0,
        "options": {"expires": 240},
    },
    # Notifications held for quiet hours go out when they end (checked every minute).
    "release-scheduled-notifications": {
        "task": "tasks.notifications.release_scheduled",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Daily digests: each hour, the users whose digest hour (in their time zone) has come.
    "send-notification-digests": {
        "task": "tasks.notifications.send_digests",
        "schedule": crontab(minute=5),
        "options": {"expires": 30 * 60},
    },
    # Saved-search alerts: new matches and price drops since the last scan.
    "scan-saved-search-alerts": {
        "task": "tasks.saved_searches.scan_alerts",
        "schedule": 120.0,
        "options": {"expires": 110},
    },
    # Offer expiry, overdue earnest money deposits, lapsed contingencies, closing reminders.
    "enforce-money-deadlines": {
        "task": "tasks.money_deadlines.enforce_deadlines",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
