"""Routes of the management API under /api/ (paths follow new-api so existing scripts keep working)."""

from django.urls import path

from accounts import api as accounts_api
from accounts import api_two_factor as two_factor_api
from accounts import api_users
from billing import api as billing_api
from billing import api_topup as topup_api
from config import api_options as options_api
from config.status import status_view
from relay import api as relay_api
from tokens import api as tokens_api

urlpatterns = [
    path("status", status_view, name="api-status"),
    path("notice", options_api.notice),
    path("option/", options_api.options),
    # accounts
    path("verification", accounts_api.verification),
    path("user/register", accounts_api.register),
    path("user/login", accounts_api.login_view),
    path("user/login/2fa", two_factor_api.login_code),
    path("user/2fa/status", two_factor_api.status),
    path("user/2fa/setup", two_factor_api.setup),
    path("user/2fa/enable", two_factor_api.enable),
    path("user/2fa/disable", two_factor_api.disable),
    path("user/logout", accounts_api.logout_view),
    path("user/self", accounts_api.self_view),
    path("user/token", accounts_api.access_token),
    path("user/topup", accounts_api.topup),
    path("user/checkin", accounts_api.checkin),
    path("user/pay", topup_api.pay),
    path("user/epay/notify", topup_api.epay_notify, name="epay-notify"),
    path("stripe/webhook", topup_api.stripe_webhook),
    path("user/manage", api_users.manage),
    path("user/", api_users.users),
    path("user/<int:user_id>", api_users.user_detail),
    path("user/<int:user_id>/quota", api_users.user_quota),
    # API tokens
    path("token/", tokens_api.tokens),
    path("token/<int:token_id>", tokens_api.token_detail),
    # upstreams ("channels")
    path("channel/", relay_api.upstreams),
    path("channel/<int:upstream_id>", relay_api.upstream_detail),
    path("channel/test/<int:upstream_id>", relay_api.upstream_test_view),
    path("channel/fetch_models/<int:upstream_id>", relay_api.upstream_models_view),
    path("channel/update_balance/<int:upstream_id>", relay_api.upstream_balance_view),
    # billing
    path("redemption/", billing_api.redemptions),
    path("redemption/<int:card_id>", billing_api.redemption_detail),
    path("group/", billing_api.groups),
    path("group/<int:group_id>", billing_api.group_detail),
    path("pricing", billing_api.public_pricing),
    path("pricing/", billing_api.prices),
    path("pricing/<int:price_id>", billing_api.price_detail),
    path("log/self", billing_api.logs_self),
    path("log/self/stat", billing_api.logs_self_stat),
    path("log/stat", billing_api.logs_all_stat),
    path("log/", billing_api.logs_all),
]
