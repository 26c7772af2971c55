from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway and usage"

    def ready(self):
        from gateway import config_section  # noqa: F401  (registers `gateway:`)
        from gateway.response_cache import config_section as cache_section  # noqa: F401  (`cache:`)
