"""The declarative config file (`version: '1'`, providers, consumer_groups, cost_tracking).

    from chargeback.config import config_apply
    report = config_apply(organization=org, text=yaml_text, actor="user:ana", via="api")
    print(report.text())

New top-level sections register a handler: see `chargeback/config/registry.py`.
"""

from chargeback.config.apply import ParsedConfig, config_apply, config_parse, config_validate
from chargeback.config.registry import register_group_key, register_section
from chargeback.config.report import ApplyContext, ConfigReport

__all__ = [
    "ApplyContext",
    "ConfigReport",
    "ParsedConfig",
    "config_apply",
    "config_parse",
    "config_validate",
    "register_group_key",
    "register_section",
]
