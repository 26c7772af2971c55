from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway and usage"

    def ready(self):
        # Register the config file's sections (and keys of `providers`) the gateway reads.
        from gateway import config_policies, config_routing, config_section  # noqa: F401
        from gateway.response_cache import config_section as cache_section  # noqa: F401  (`cache:`)
