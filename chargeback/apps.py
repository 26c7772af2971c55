from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


def _sync_roles(sender, **kwargs):
    from django.apps import apps

    from chargeback.roles import roles_sync

    # Tests that flush with a restricted `available_apps` migrate without auth: nothing to sync.
    if apps.is_installed("django.contrib.auth") and apps.is_installed("chargeback"):
        roles_sync()


def _sync_membership(sender, instance, **kwargs):
    from chargeback.roles import membership_sync

    membership_sync(instance)


class ChargebackConfig(AppConfig):
    name = "chargeback"
    verbose_name = "Organizations"

    def ready(self):
        # Role groups follow the permissions that migrate creates; a membership follows its role.
        # Sent once per app (each creates its own permissions): cheap and idempotent, so rerun.
        post_migrate.connect(_sync_roles, dispatch_uid="kt_sync_roles")
        post_save.connect(
            _sync_membership, sender="chargeback.Membership", dispatch_uid="kt_sync_membership"
        )
