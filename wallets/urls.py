from django.urls import path

from wallets import apis, apis_tickets, apis_transactions

# The fixed paths come first: `allocate` is an operation, not a team id.
urlpatterns = [
    path("wallets", apis.WalletListApi.as_view(), name="wallets-list"),
    path("wallets/allocate", apis.WalletAllocateApi.as_view(), name="wallets-allocate"),
    path("wallets/credit", apis.WalletCreditApi.as_view(), name="wallets-credit"),
    path("wallets/reclaim", apis.WalletReclaimApi.as_view(), name="wallets-reclaim"),
    path("wallets/refund", apis.WalletRefundApi.as_view(), name="wallets-refund"),
    path("wallets/<str:team_id>", apis.WalletDetailApi.as_view(), name="wallets-detail"),
    path("wallets/<str:team_id>/ledger", apis.WalletLedgerApi.as_view(), name="wallets-ledger"),
    path(
        "wallets/<str:team_id>/transactions",
        apis_transactions.WalletTransactionsApi.as_view(),
        name="wallets-transactions",
    ),
    path("cost-tickets", apis_tickets.CostTicketListApi.as_view(), name="cost-tickets-list"),
    path(
        "cost-tickets/<str:ticket_id>/approve",
        apis_tickets.CostTicketApproveApi.as_view(),
        name="cost-tickets-approve",
    ),
    path(
        "cost-tickets/<str:ticket_id>/deny",
        apis_tickets.CostTicketDenyApi.as_view(),
        name="cost-tickets-deny",
    ),
]
