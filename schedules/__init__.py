"""The beat schedule: every periodic task of Hearth, each with an ``expires``.

``expires`` drops a tick that was not picked up in time instead of letting
ticks pile up behind a stopped worker.
"""
from celery.schedules import crontab

beat_schedule = {
    "purge-expired-tokens": {
        "task": "tasks.maintenance.purge_expired_tokens",
        "schedule": crontab(minute=17),
        "options": {"expires": 30 * 60},
    },
}
