"""Alert channels besides e-mail: Slack incoming webhooks and signed HTTPS webhooks
(docs/operations.md "Alert channels"). Budgets, wallets and exports publish their events here;
this app imports none of them."""
