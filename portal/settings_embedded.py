"""The embedded default's Celery (`make run`, docs/operations.md "The embedded worker"): when
`KT_EMBEDDED_BROKER_DIR` names a directory, tasks go through kombu's filesystem transport in
that directory to the worker `demo_run` starts beside gunicorn (with beat), as they go through
Redis in production: the same schedule, countdowns honoured, nothing in-process. The transport
ships with kombu (made to publish atomically: portal/embedded_broker.py) and needs no server
and no download. Without the variable nothing changes."""

import environ

env = environ.Env()
KT_EMBEDDED_BROKER_DIR = env("KT_EMBEDDED_BROKER_DIR", default="")


def embedded_celery(broker_dir: str) -> dict:
    """The Celery settings for a filesystem broker in `broker_dir` (its queue and exchange
    folders are created by the worker's starter, demo/worker.py)."""
    return {
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_TRANSPORT": "portal.embedded_broker:Transport",
        "CELERY_TASK_ALWAYS_EAGER": False,
        "CELERY_BROKER_TRANSPORT_OPTIONS": {
            # One folder both ways: producers and the worker share the queue.
            "data_folder_in": f"{broker_dir}/queue",
            "data_folder_out": f"{broker_dir}/queue",
            "control_folder": f"{broker_dir}/control",
            "store_processed": False,
        },
    }
