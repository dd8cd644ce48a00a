"""Operator-only management routes refuse anonymous callers and plain users, and serve admins."""

from __future__ import annotations

import pytest

ADMIN_ROUTES = [
    ("get", "/api/user/"), ("put", "/api/user/"), ("post", "/api/user/manage"), ("get", "/api/user/1"),
    ("post", "/api/user/1/quota"), ("get", "/api/channel/"), ("post", "/api/channel/"), ("put", "/api/channel/"),
    ("get", "/api/channel/1"), ("delete", "/api/channel/1"), ("get", "/api/redemption/"),
    ("post", "/api/redemption/"), ("delete", "/api/redemption/1"), ("get", "/api/group/"), ("post", "/api/group/"),
    ("put", "/api/group/"), ("delete", "/api/group/1"), ("get", "/api/pricing/"), ("post", "/api/pricing/"),
    ("put", "/api/pricing/"), ("delete", "/api/pricing/1"), ("get", "/api/log/"),
]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_plain_users_and_anonymous_callers_are_refused(method, path, user, client_for, api_client):
    r = getattr(client_for(user), method)(path, {}, format="json")
    assert r.status_code == 403 and r.json()["success"] is False
    r = getattr(api_client, method)(path, {}, format="json")
    assert r.status_code in (401, 403) and r.json()["success"] is False


@pytest.mark.parametrize("path", ["/api/user/", "/api/channel/", "/api/redemption/", "/api/group/", "/api/pricing/",
                                  "/api/log/"])
def test_admins_can_list(path, admin, client_for):
    r = client_for(admin).get(path)
    assert r.status_code == 200 and r.json()["success"] is True and "total" in r.json()["data"]


def test_admin_user_management(admin, user, client_for, assert_books_balance):
    from billing.groups import group_save

    group_save(name="vip", ratio="0.8")
    client = client_for(admin)
    r = client.put("/api/user/", {"id": user.pk, "group": "vip"}, format="json")
    assert r.json()["data"]["group"] == "vip"
    r = client.post(f"/api/user/{user.pk}/quota", {"amount": 12_345, "note": "gift"}, format="json")
    assert r.status_code == 200
    r = client.post(f"/api/user/{user.pk}/quota", {"amount": -10**12}, format="json")
    assert r.status_code == 403 and r.json()["message"] == "Insufficient balance."
    assert_books_balance(user)
    assert client.post("/api/user/manage", {"id": user.pk, "action": "disable"}, format="json").status_code == 200
    user_client = client_for(user)  # a disabled user's access token stops working
    user.refresh_from_db()
    assert user_client.get("/api/user/self").status_code == 401
    assert client.post("/api/user/manage", {"id": admin.pk, "action": "demote"}, format="json").status_code == 400
    assert client.get("/api/user/?keyword=ali").json()["data"]["total"] == 1


def test_card_batches_are_returned_once_then_listed_masked(admin, user, client_for):
    client = client_for(admin)
    r = client.post("/api/redemption/", {"name": "spring", "quota": 10_000, "count": 3}, format="json")
    codes = r.json()["data"]
    assert r.status_code == 201 and len(codes) == 3
    listed = client.get("/api/redemption/?name=spring").json()["data"]["items"]
    assert len(listed) == 3 and all(item["code"] not in codes and "…" in item["code"] for item in listed)
    assert client_for(user).post("/api/user/topup", {"key": codes[0]}, format="json").status_code == 200
    bad = client.post("/api/redemption/", {"name": "x", "quota": 0, "count": 5000}, format="json")
    assert bad.status_code == 400 and "quota" in bad.json()["message"] and "count" in bad.json()["message"]


def test_groups_and_prices_crud_and_the_public_price_list(admin, client_for, api_client):
    client = client_for(admin)
    group = client.post("/api/group/", {"name": "cheap", "ratio": "0.5", "selectable": True}, format="json")
    assert group.status_code == 201
    assert client.post("/api/group/", {"name": "cheap", "ratio": "1"}, format="json").status_code == 400
    price = client.post("/api/pricing/", {"model": "m-1", "model_ratio": "1.25", "completion_ratio": "4",
                                          "category": "general"}, format="json")
    assert price.status_code == 201
    call = client.post("/api/pricing/", {"model": "img-1", "price_per_call": "0.04", "category": "image"},
                       format="json")
    assert call.json()["data"]["quota_type"] == "per_call"
    public = {row["model"]: row for row in api_client.get("/api/pricing").json()["data"]}
    assert public["m-1"]["groups"]["default"] == {
        "input_per_million": "2.5", "output_per_million": "10", "cached_input_per_million": "2.5"}
    assert public["m-1"]["groups"]["cheap"]["output_per_million"] == "5"
    assert public["img-1"]["groups"]["cheap"] == {"per_call": "0.02"}
    r = client.put("/api/pricing/", {"id": price.json()["data"]["id"], "model_ratio": "2"}, format="json")
    assert r.json()["data"]["model_ratio"] == "2"
    default_id = client.get("/api/group/").json()["data"]["items"]
    default_id = next(g["id"] for g in default_id if g["name"] == "default")
    assert client.delete(f"/api/group/{default_id}").status_code == 400
    assert client.delete(f"/api/group/{group.json()['data']['id']}").status_code == 200


def test_media_price_fields_round_trip_and_are_validated(admin, client_for):
    client = client_for(admin)
    r = client.post("/api/pricing/", {"model": "dall-e-3", "category": "image", "price_per_call": "0.04",
                                      "price_variants": {"hd 1024x1792": "0.12", "1024x1792": 0.08}}, format="json")
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["price_variants"] == {"hd 1024x1792": "0.12", "1024x1792": "0.08"}
    r = client.post("/api/pricing/", {"model": "whisper-1", "price_per_minute": "0.006", "audio_ratio": "2.4",
                                      "cache_write_ratio": "1.25"}, format="json")
    assert r.status_code == 201
    assert (r.json()["data"]["price_per_minute"], r.json()["data"]["cache_write_ratio"]) == ("0.006", "1.25")
    for bad in ({"price_variants": {"1024x1024": "-1"}}, {"price_variants": {"1024x1024": "cheap"}},
                {"audio_ratio": "-2"}, {"price_variants": ["0.1"]}):
        r = client.post("/api/pricing/", {"model": "x-1", **bad}, format="json")
        assert r.status_code == 400 and r.json()["success"] is False, bad
