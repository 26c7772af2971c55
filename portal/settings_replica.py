"""A read replica for reports (docs/operations.md "Scaling out"): with DATABASE_REPLICA_URL set,
dashboards, the spend API and export job runs read from it (chargeback/replica.py)."""

import environ

env = environ.Env()

__all__ = ["DATABASE_ROUTERS", "KT_REPLICA_LAG_NOTICE_SECONDS", "replica_configure"]


def replica_configure(databases: dict) -> None:
    url = env("DATABASE_REPLICA_URL", default="")
    if not url:
        return
    replica = env.db_url_config(url)
    default = databases["default"]
    replica.setdefault("OPTIONS", {})
    for key, value in (default.get("OPTIONS") or {}).items():
        replica["OPTIONS"].setdefault(key, value)  # the same pool and prepare settings
    replica["CONN_MAX_AGE"] = default.get("CONN_MAX_AGE", 0)
    # Tests run against one database: the replica alias mirrors the default there.
    replica["TEST"] = {"MIRROR": "default"}
    databases["replica"] = replica


DATABASE_ROUTERS = ["portal.db_router.ReplicaRouter"]
# A report page says how far behind its figures are when the replica lags more than this.
KT_REPLICA_LAG_NOTICE_SECONDS = env.float("KT_REPLICA_LAG_NOTICE_SECONDS", default=30.0)
