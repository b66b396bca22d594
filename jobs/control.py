"""A remote-control command of our own: each worker says what it holds in one answer.

Celery's ``inspect`` asks for running, reserved and scheduled tasks in three broadcasts, and each one waits out its
whole timeout (it cannot know how many workers will answer). The stranded-job sweeper asked all three every 30 s,
holding a pool process for three timeouts (about 6 s) each time; one broadcast costs one timeout.
"""

from celery.worker import control

HELD = "jobs_held"


@control.inspect_command(name=HELD)
def jobs_held(state, **kwargs) -> dict:
    """This worker's running, reserved (prefetched) and scheduled (ETA) tasks, as Celery's own commands report them."""
    return {
        "active": control.active(state),
        "reserved": control.reserved(state),
        "scheduled": [task["request"] for task in control.scheduled(state)],
    }
