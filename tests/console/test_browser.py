"""The console in a real browser (Debian's Chromium, headless) against the live server: the user's whole journey.

Screenshots of each page go to test-output/console/.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import httpx
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.ledger import ledger_sum
from billing.models import UsageLog
from billing.redemption import redemption_batch_create
from tests.support import settled
from tokens.models import ApiToken, TokenStatus
from tokens.services import token_create

PASSWORD = "s3cret-pass-word"
PHONE = {"width": 390, "height": 844}


def _digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def _nav(page: Page, name: str):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def _log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


def test_sign_up_create_a_key_call_the_api_and_see_the_cost(page: Page, live, bootstrap_demo, shot):
    page.goto("/")
    shot(page, "01-home")
    page.get_by_role("link", name="Sign up free").click()
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    shot(page, "02-register")
    page.get_by_role("button", name="Sign up").click()

    # The dashboard, with the trial credit announced and in the balance.
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.locator("#trial-credit")).to_contain_text("$1.00")
    balance = page.locator("#balance [data-balance-quota]")
    expect(balance).to_have_text("500,000")
    shot(page, "03-dashboard-new")

    # Create a key; it is shown once, copied with the button, and listed masked.
    _nav(page, "API keys").click()
    page.get_by_label("Name").fill("first key")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    assert key.startswith("sk-") and len(key) == 51
    page.locator("#copy-new-key").click()
    expect(page.locator("#copy-new-key")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    token = ApiToken.objects.get(user__username="newcomer")
    expect(page.locator(f"#key-{token.pk}")).to_contain_text(token.masked_key)
    assert key not in page.locator("#key-list").inner_html()
    shot(page, "04-key-created")

    # Call the relay with it against the demo upstream.
    reply = httpx.post(live.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "demo-chat", "messages": [{"role": "user", "content": "Hello console"}]},
                       timeout=10)
    assert reply.status_code == 200, reply.text
    assert settled(lambda: UsageLog.objects.filter(user__username="newcomer").exists())
    log = UsageLog.objects.get(user__username="newcomer")
    assert log.quota > 0

    # The call is in the usage logs with its cost...
    _nav(page, "Usage logs").click()
    row = page.locator(f'tr[data-request-id="{log.request_id}"]')
    expect(row).to_contain_text("demo-chat")
    expect(row).to_contain_text("first key")
    assert _digits(row.locator("td[data-quota]").get_attribute("data-quota")) == log.quota
    expect(page.locator("#total-quota")).to_have_text(f"{log.quota:,}")
    shot(page, "05-logs")

    # ...and the balance on the dashboard dropped by exactly that cost.
    _nav(page, "Dashboard").click()
    expect(balance).to_have_text(f"{500_000 - log.quota:,}")
    expect(page.locator("#chart-daily rect.col")).to_have_count(1)
    expect(page.locator("#chart-models")).to_contain_text("demo-chat")
    user = User.objects.get(username="newcomer")
    assert user.quota == 500_000 - log.quota == ledger_sum(user_id=user.pk)
    shot(page, "06-dashboard-after-call")

    # The management-API access token is generated in place and shown once.
    _nav(page, "Settings").click()
    page.get_by_role("button", name="Generate a token").click()
    expect(page.locator("#new-access-token")).to_be_visible()
    user.refresh_from_db()
    assert user.access_token_hint.startswith(page.locator("#new-access-token").inner_text()[:4])
    shot(page, "11-settings")
    for name, file in [("Pricing", "12-pricing"), ("API docs", "13-docs")]:
        _nav(page, name).click()
        shot(page, file)
    expect(page.locator("#example-curl")).to_contain_text(f"{live.url}/v1/chat/completions")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(live.url + "/")
    page.goto("/login/")
    shot(page, "14-login")
    assert page.js_errors == []


def test_redeem_check_in_and_switch_language_without_reloading(page: Page, live, make_user, shot):
    make_user("carol")
    code = redemption_batch_create(name="promo", quota=1_000_000, count=1, created_by_id=None)[0]
    _log_in(page, "carol")
    _nav(page, "Top up").click()
    page.evaluate("window.sameDocument = true")  # lost if anything reloads the page

    page.get_by_label("Card key").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.locator("#redeem-ok")).to_contain_text("$2.00")
    expect(page.locator("#balance [data-balance-quota]")).to_have_text("1,500,000")
    expect(page.locator(".chip [data-balance-usd]")).to_have_text("$3.00")
    expect(page.locator("#credits")).to_contain_text("Card key redeemed")

    page.get_by_label("Card key").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.locator("#redeem-form .errorlist")).to_contain_text("already been used")
    page.get_by_label("Card key").fill("not-a-card")
    page.get_by_role("button", name="Redeem").click()
    expect(page.locator("#redeem-form .errorlist")).to_contain_text("invalid")

    page.get_by_role("button", name="Check in").click()
    expect(page.locator("#checkin .ok")).to_contain_text("You received")
    expect(page.locator("#checkin-button")).to_be_disabled()
    expect(page.locator("#checkin-button")).to_have_text("Checked in today")
    carol = User.objects.get(username="carol")
    expect(page.locator("#balance [data-balance-quota]")).to_have_text(f"{carol.quota:,}")
    assert carol.quota > 1_500_000 and carol.last_checkin_date == timezone.localdate()
    expect(page.locator("#credits")).to_contain_text("Daily check-in")
    assert page.evaluate("window.sameDocument") is True
    shot(page, "07-topup")

    # The check-in stays disabled on the next visit; the language switch goes to Chinese and back.
    _nav(page, "Dashboard").click()
    expect(page.locator("#checkin-button")).to_be_disabled()
    page.locator("#language").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("h1")).to_have_text("仪表盘")
    expect(page.locator("#checkin-button")).to_have_text("今日已签到")
    shot(page, "08-dashboard-zh")
    page.locator("#language").select_option("en")
    expect(page.locator("h1")).to_have_text("Dashboard")
    assert page.js_errors == []


def test_edit_disable_and_delete_keys_in_place(page: Page, live, make_user, shot):
    dave = make_user("dave")
    keep, _ = token_create(user=dave, name="keep me", unlimited_quota=True)
    scratch, _ = token_create(user=dave, name="scratch", unlimited_quota=True)
    _log_in(page, "dave")
    _nav(page, "API keys").click()
    page.evaluate("window.sameDocument = true")

    row = page.locator(f"#key-{keep.pk}")
    row.get_by_role("link", name="Edit keep me").click()
    form = row.locator("form")
    form.get_by_label("Name").fill("production")
    form.get_by_label("Unlimited quota").uncheck()
    form.get_by_label("Key quota (USD)").fill("2.5")
    form.get_by_label("Allowed IPs").fill("10.0.0.0/8, not-an-ip")
    shot(page, "09-key-edit")
    form.get_by_role("button", name="Save").click()
    expect(row.locator(".errorlist")).to_contain_text("not-an-ip")
    row.locator("form").get_by_label("Allowed IPs").fill("10.0.0.0/8")
    row.locator("form").get_by_role("button", name="Save").click()
    expect(row).to_contain_text("production")
    expect(row).to_contain_text("$2.50")
    keep.refresh_from_db()
    assert (keep.name, keep.unlimited_quota, keep.remain_quota, keep.allow_ips) == (
        "production", False, 1_250_000, ["10.0.0.0/8"])

    row.get_by_role("button", name="Disable production").click()
    expect(row.locator(".badge")).to_have_text("Disabled")
    keep.refresh_from_db()
    assert keep.status == TokenStatus.DISABLED

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#key-{scratch.pk}").get_by_role("link", name="Delete scratch").click()
    expect(page.locator(f"#key-{scratch.pk}")).to_have_count(0)
    assert list(ApiToken.objects.filter(user=dave).values_list("name", flat=True)) == ["production"]
    assert page.evaluate("window.sameDocument") is True
    assert page.js_errors == []
    shot(page, "10-keys")


def test_logs_load_more_as_the_user_scrolls(page: Page, live, make_user):
    erin = make_user("erin")
    now = timezone.now()
    UsageLog.objects.bulk_create(
        UsageLog(user=erin, token_name="bulk", model="demo-chat", endpoint="/v1/chat/completions", quota=10,
                 prompt_tokens=5, completion_tokens=5, request_id=f"r{i}", created_at=now - timedelta(minutes=i))
        for i in range(60)
    )
    _log_in(page, "erin")
    _nav(page, "Usage logs").click()
    expect(page.locator("tr.log-row")).to_have_count(50)
    expect(page.locator("#total-requests")).to_have_text("60")
    page.locator("#log-more").scroll_into_view_if_needed()
    expect(page.locator("tr.log-row")).to_have_count(60)
    expect(page.locator("#log-more")).to_have_count(0)


def test_every_page_fits_a_phone_screen(browser, live, bootstrap_demo, make_user, shot):
    frank = make_user("frank")
    token_create(user=frank, name="a key with a rather long name", unlimited_quota=True)
    UsageLog.objects.create(user=frank, token_name="a key with a rather long name", model="demo-chat",
                            endpoint="/v1/chat/completions", quota=1234, prompt_tokens=10, completion_tokens=20,
                            request_id="phone")
    context = browser.new_context(base_url=live.url, viewport=PHONE, is_mobile=True, has_touch=True,
                                  extra_http_headers={"Accept-Language": "zh-hans"})
    context.set_default_timeout(5_000)
    page = context.new_page()
    too_wide = {}
    try:
        _log_in_zh(page, "frank")
        for path in ["/", "/dashboard/", "/keys/", "/topup/", "/logs/", "/pricing/", "/docs/", "/settings/"]:
            page.goto(path)
            expect(page.locator("h1")).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 0:
                too_wide[path] = overflow
            shot(page, f"phone-{path.strip('/') or 'home'}")
    finally:
        context.close()
    assert too_wide == {}, f"pages wider than the phone screen (px): {too_wide}"


def _log_in_zh(page: Page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


def test_the_playground_streams_an_answer_and_bills_it(page: Page, live, bootstrap_demo, make_user, shot):
    make_user("dana")
    _log_in(page, "dana")
    _nav(page, "Playground").click()
    page.get_by_label("Model").select_option("demo-chat")
    page.get_by_label("Message").fill("How are you?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn-assistant").last).to_contain_text("You said: How are you?")
    page.get_by_label("Message").fill("And now?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn-assistant")).to_have_count(2)
    expect(page.locator(".turn-assistant").last).to_contain_text("You said: And now?")
    shot(page, "12-playground")
    assert settled(lambda: UsageLog.objects.filter(user__username="dana", token_name="Playground").count() == 2)
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    page.get_by_label("Images (optional)").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": png}])
    page.get_by_label("Message").fill("What is this?")
    with page.expect_request("**/pg/chat/completions") as sent:
        page.get_by_role("button", name="Send").click()
    parts = json.loads(sent.value.post_data)["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    expect(page.locator(".turn-user img.turn-image")).to_have_count(1)
    expect(page.locator(".turn-assistant")).to_have_count(3)
    expect(page.locator(".turn-assistant").last).to_contain_text("You said: What is this?")
    assert page.js_errors == []
