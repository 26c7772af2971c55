"""Cost tickets (issue 14.3): models in wallets/models_tickets.py, writes in services.py, reads in
selectors.py, the budget owners' e-mail in notify.py. docs/gateway.md describes the flow."""
