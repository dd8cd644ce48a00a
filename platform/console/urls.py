"""Console pages (URL names in the `console` namespace)."""

from django.urls import path

from console.views import (
    account, auth, keys, logs, oauth, payments, playground, public, recovery, site, tasks, two_factor,
)

app_name = "console"

urlpatterns = [
    path("", public.home, name="home"),
    path("pricing/", public.pricing, name="pricing"),
    path("docs/", public.docs, name="docs"),
    path("register/", auth.register, name="register"),
    path("login/", auth.login_view, name="login"),
    path("login/code/", two_factor.login_code, name="login_code"),
    path("oauth/telegram/", oauth.telegram_auth, name="telegram_auth"),
    path("oauth/<str:provider>/", oauth.oauth_start, name="oauth_start"),
    path("oauth/<str:provider>/callback/", oauth.oauth_callback, name="oauth_callback"),
    path("oauth/<str:provider>/unlink/", oauth.oauth_unlink_view, name="oauth_unlink"),
    path("logout/", auth.logout_view, name="logout"),
    path("account/password/", auth.password_change, name="password_change"),
    path("account/email/", recovery.email_change, name="email_change"),
    path("password-reset/", recovery.ResetRequestView.as_view(), name="password_reset"),
    path("password-reset/sent/", recovery.ResetSentView.as_view(), name="password_reset_sent"),
    path("password-reset/<uidb64>/<token>/", recovery.ResetConfirmView.as_view(), name="password_reset_confirm"),
    path("dashboard/", account.dashboard, name="dashboard"),
    path("topup/", account.topup, name="topup"),
    path("topup/redeem/", account.redeem, name="redeem"),
    path("topup/pay/", payments.topup_pay, name="topup_pay"),
    path("topup/return/", payments.topup_return, name="topup_return"),
    path("checkin/", account.checkin, name="checkin"),
    path("settings/", account.settings_view, name="settings"),
    path("settings/access-token/", account.access_token, name="access_token"),
    path("settings/two-factor/", two_factor.two_factor, name="two_factor"),
    path("settings/two-factor/off/", two_factor.two_factor_off, name="two_factor_off"),
    path("keys/", keys.keys, name="keys"),
    path("keys/new/", keys.key_create, name="key_create"),
    path("keys/<int:token_id>/", keys.key_row, name="key_row"),
    path("keys/<int:token_id>/edit/", keys.key_edit, name="key_edit"),
    path("keys/<int:token_id>/toggle/", keys.key_toggle, name="key_toggle"),
    path("keys/<int:token_id>/delete/", keys.key_delete, name="key_delete"),
    path("logs/", logs.logs, name="logs"),
    path("logs/export.csv", logs.logs_csv, name="logs_csv"),
    path("tasks/", tasks.tasks, name="tasks"),
    path("playground/", playground.playground, name="playground"),
    path("site/", site.site, name="site"),
]
