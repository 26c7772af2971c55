"""Sends report reads to the read replica (chargeback/replica.py decides which reads may go);
every write, and every migration, goes to the primary."""

from django.db import DEFAULT_DB_ALIAS

from chargeback.replica import REPLICA, read_alias


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        # Explicit: an object read from the replica is saved to the primary, never back there.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the same data on both

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA  # a standby is read-only; it follows the primary's schema
