"""The console in Simplified Chinese: the catalogue is complete and compiled, pages and service messages translate."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from billing.redemption import redemption_batch_create

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def _msgids() -> dict[str, str]:
    """msgid -> msgstr (or msgstr[0]) of the committed catalogue."""
    text = (CATALOGUE / "django.po").read_text()
    entries = {}
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[0\])?) "(.*)"$', line)
            if match:
                key = match.group(1).replace("[0]", "")
                fields[key] = match.group(2)
            elif line.startswith('"') and key:
                fields[key] += line[1:-1]
        if fields.get("msgid"):
            entries[fields["msgid"].replace('\\"', '"')] = fields.get("msgstr", "")
    return entries


def test_every_message_is_translated():
    result = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(CATALOGUE / "django.po")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
    assert "#, fuzzy" not in (CATALOGUE / "django.po").read_text()


def test_the_committed_mo_file_is_compiled_from_the_po_file(tmp_path):
    subprocess.run(["msgfmt", "-o", str(tmp_path / "django.mo"), str(CATALOGUE / "django.po")], check=True)
    assert (tmp_path / "django.mo").read_bytes() == (CATALOGUE / "django.mo").read_bytes(), (
        "run: msgfmt -o locale/zh_Hans/LC_MESSAGES/django.mo locale/zh_Hans/LC_MESSAGES/django.po")


def test_console_and_service_strings_are_in_the_catalogue():
    catalogue = _msgids()
    sources = [*ROOT.glob("templates/base.html"), *ROOT.glob("templates/console/**/*.html")]
    found = set()
    for path in sources:
        found |= set(re.findall(r'{% translate "([^"]+)"', path.read_text()))
        found |= set(re.findall(r"{% translate '([^']+)'", path.read_text()))
    python = [*ROOT.glob("platform/console/**/*.py"), ROOT / "platform/accounts/services.py",
              ROOT / "tokens/services.py", ROOT / "billing/redemption.py", ROOT / "billing/ledger.py"]
    for path in python:
        found |= set(re.findall(r'\b_\("((?:[^"\\]|\\.)+)"\)', path.read_text()))
    missing = sorted(s for s in found if not catalogue.get(s))
    assert len(found) > 150 and missing == []


def test_pages_follow_accept_language(console):
    page = console.get("/dashboard/", **ZH).content.decode()
    assert '<html lang="zh-hans">' in page and "仪表盘" in page and "今日消费" in page and "每日签到" in page
    assert "Dashboard" not in page
    page = console.get("/keys/", **ZH).content.decode()
    assert "创建密钥" in page and "无限额度（仅受账户余额限制）" in page


def test_chinese_is_the_default_language(client, settings, default_group):
    settings.LANGUAGE_CODE = "zh-hans"
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="").content.decode()
    assert '<html lang="zh-hans">' in page and "快速开始" in page


@pytest.mark.parametrize("path, data, message", [
    ("/topup/redeem/", {"code": "nope"}, "该卡密无效。"),
    ("/keys/new/", {"name": "k", "unlimited": "on", "allow_ips": "x.y"}, "不是有效的 IP 地址或 CIDR 网段：x.y"),
    ("/keys/new/", {"name": "k"}, "请输入密钥额度，或设为无限额度。"),
])
def test_form_and_service_messages_are_translated(console, path, data, message):
    assert message in console.post(path, data, HTTP_HX_REQUEST="true", **ZH).content.decode()


def test_check_in_in_chinese(console):
    first = console.post("/checkin/", HTTP_HX_REQUEST="true", **ZH).content.decode()
    assert "你获得了" in first and "今日已签到" in first
    again = console.post("/checkin/", HTTP_HX_REQUEST="true", **ZH).content.decode()
    assert "你今天已经签到过了。" in again


def test_used_cards_and_taken_usernames_in_chinese(console, client, make_user):
    code = redemption_batch_create(name="b", quota=1000, count=1, created_by_id=None)[0]
    console.post("/topup/redeem/", {"code": code}, HTTP_HX_REQUEST="true")
    page = console.post("/topup/redeem/", {"code": code}, HTTP_HX_REQUEST="true", **ZH).content.decode()
    assert "该卡密已被使用。" in page
    make_user("taken")
    page = client.post("/register/", {"username": "taken", "password": "s3cret-pass-word",
                                      "password_again": "s3cret-pass-word"}, **ZH).content.decode()
    assert "该用户名已被占用。" in page
