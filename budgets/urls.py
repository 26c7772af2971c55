from django.urls import path

from budgets.apis import BudgetDetailApi, BudgetListCreateApi

urlpatterns = [
    path("budgets", BudgetListCreateApi.as_view(), name="budget-list"),
    path("budgets/<int:budget_id>", BudgetDetailApi.as_view(), name="budget-detail"),
]
