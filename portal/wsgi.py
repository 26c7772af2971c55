import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# Captures a killed gateway process left in the outbox are replayed by the next one to start.
from gateway.outbox import replayer  # noqa: E402 - needs the settings above

replayer.start_if_pending()
