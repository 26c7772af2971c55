"""Budgets: soft spend targets per department and period, with threshold, forecast and wallet
alerts emailed to the budget owners. See docs/budgets.md."""
