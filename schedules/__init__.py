"""The beat schedule: every periodic task of Hearth, each with an ``expires``.

``expires`` drops a tick that was not picked up in time instead of letting
ticks pile up behind a stopped worker.
"""
from celery.schedules import crontab

beat_schedule = {
    # Recovery of accepted work: jobs of dead workers, jobs the broker never got.
    # Ticks are frequent and cheap (two indexed updates); a missed one is simply dropped.
    "sweep-jobs": {
        "task": "tasks.jobs.sweep_jobs",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    "purge-finished-jobs": {
        "task": "tasks.jobs.purge_finished_jobs",
        "schedule": crontab(minute=41),
        "options": {"expires": 30 * 60},
    },
    "purge-expired-tokens": {
        "task": "tasks.maintenance.purge_expired_tokens",
        "schedule": crontab(minute=17),
        "options": {"expires": 30 * 60},
    },
}
