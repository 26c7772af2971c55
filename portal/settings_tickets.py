"""Cost ticket settings (docs/configuration.md, "Cost tickets"). Imported at the end of
portal/settings.py; reads the environment like the rest of it."""

import environ

env = environ.Env()

# A pending cost ticket nobody decided is closed as `expired` this many hours after it opened
# (by the hold sweeper's beat task, every minute).
KT_COST_TICKET_HOURS = env.float("KT_COST_TICKET_HOURS", default=24)
