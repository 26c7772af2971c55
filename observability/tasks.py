from celery import shared_task

from observability.gauges import snapshot_refresh


@shared_task(name="observability.refresh_gauges", ignore_result=True)
def refresh_gauges_task() -> None:
    """Thin: recompute the wallet, budget and hold gauges (observability/gauges.py)."""
    snapshot_refresh()
