import re
from pathlib import Path

import pytest

from tests.alert_channels.receiver import Receiver

# The budgets tests' fixtures: the pinned clock, eager Celery, Support with its wallet and
# budget, and the outsider's same-named department and budget.
from tests.budgets.conftest import (  # noqa: F401
    budget,
    check_every_request,
    eager_celery,
    outsider_budget,
    outsider_support,
    pinned_clock,
    spend,
    support,
    support_wallet,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def receiver(settings):
    """A receiver on loopback, allow-listed the way an operator allows a private receiver
    (KT_UPSTREAM_ALLOW_HOSTS, as the gateway tests allow the fake provider)."""
    server = Receiver().start()
    settings.KT_UPSTREAM_ALLOW_HOSTS = [*settings.KT_UPSTREAM_ALLOW_HOSTS, server.host]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def verify_kt_signature():
    """The receiver's check exactly as docs/operations.md tells receivers to write it."""
    text = DOCS.read_text()
    section = text[text.index("### Verifying a webhook") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace["verify_kt_signature"]
