"""Who and what a recommendation project knows, over HTTP on SQLite and PostgreSQL: people and
items with their counts (type-ahead prefix, keyset pages), and the interactions' summary."""

from __future__ import annotations

P = "/api/v1/projects/shop"


def _shop(client, interactions):
    assert client.post("/api/v1/projects", json={"name": "shop", "task": "recommendation"}).status_code == 201
    r = client.post(f"{P}/interactions", json={"interactions": interactions})
    assert r.status_code == 201, r.text


def test_people_and_items_are_listed_with_counts_by_prefix_and_page(client):
    rows = [{"user": f"u{k % 7}", "item": f"i{k % 5}", "time": 1_700_000_000 + k} for k in range(30)]
    rows += [{"user": "U1", "item": "i%_", "time": 1_800_000_000}]  # upper case, LIKE's wildcards in an id
    _shop(client, rows)

    everyone = client.get(f"{P}/people", params={"limit": 500}).json()
    assert [p["id"] for p in everyone["items"]] == ["U1", "u0", "u1", "u2", "u3", "u4", "u5", "u6"]
    assert everyone["next_after"] is None
    counts = {p["id"]: p["interactions"] for p in everyone["items"]}
    assert counts["u0"] == 5 and counts["u6"] == 4 and counts["U1"] == 1 and sum(counts.values()) == 31
    assert everyone["items"][0]["last_at"].startswith("2027-01-15")  # 1_800_000_000 s

    # the type-ahead: case-sensitive on both databases, wildcards are plain characters
    assert [p["id"] for p in client.get(f"{P}/people", params={"prefix": "u"}).json()["items"]] == \
        [f"u{k}" for k in range(7)]
    assert [p["id"] for p in client.get(f"{P}/people", params={"prefix": "U"}).json()["items"]] == ["U1"]
    assert [i["id"] for i in client.get(f"{P}/items", params={"prefix": "i%"}).json()["items"]] == ["i%_"]
    assert client.get(f"{P}/items", params={"prefix": "zz"}).json() == {"items": [], "next_after": None}

    # keyset pages: every person once, in order, however the pages fall
    seen, after = [], None
    while True:
        page = client.get(f"{P}/people", params={"limit": 3, **({"after": after} if after else {})}).json()
        assert len(page["items"]) <= 3
        seen += [p["id"] for p in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [p["id"] for p in everyone["items"]]

    items = client.get(f"{P}/items").json()["items"]
    assert {i["id"]: i["interactions"] for i in items} == {"i%_": 1, "i0": 6, "i1": 6, "i2": 6, "i3": 6, "i4": 6}


def test_summary_says_how_many_and_what_kind(client):
    _shop(client, [{"user": "a", "item": "x", "rating": 4}, {"user": "b", "item": "x", "rating": 1.5},
                   {"user": "b", "item": "y", "rating": 5, "time": "2026-01-02T03:04:05Z"}])
    s = client.get(f"{P}/interactions/summary").json()
    assert (s["interactions"], s["people"], s["items"], s["rated"], s["feedback"]) == (3, 2, 2, 3, "explicit")
    assert (s["rating_min"], s["rating_max"], s["version"]) == (1.5, 5.0, 1)
    assert s["first_at"].startswith("2026-01-02") and s["sources"] == {"api": 3}

    assert client.post(f"{P}/interactions", json={"user": "c", "item": "z"}).status_code == 201
    s = client.get(f"{P}/interactions/summary").json()
    assert (s["interactions"], s["people"], s["rated"], s["feedback"], s["version"]) == (4, 3, 3, "mixed", 2)

    assert client.delete(f"{P}/interactions", params={"user": "b"}).status_code == 200
    s = client.get(f"{P}/interactions/summary").json()
    assert (s["interactions"], s["people"], s["items"], s["rated"]) == (2, 2, 2, 1)
    assert [p["id"] for p in client.get(f"{P}/people").json()["items"]] == ["a", "c"]


def test_an_empty_project_and_the_wrong_task_are_answered_plainly(client):
    assert client.post("/api/v1/projects", json={"name": "shop", "task": "recommendation"}).status_code == 201
    s = client.get(f"{P}/interactions/summary").json()
    assert (s["interactions"], s["people"], s["feedback"], s["version"], s["sources"]) == (0, 0, "none", 0, {})
    assert client.get(f"{P}/people").json() == {"items": [], "next_after": None}
    assert client.post("/api/v1/projects", json={"name": "photos"}).status_code == 201
    r = client.get("/api/v1/projects/photos/people")
    assert r.status_code == 422 and "recommendation" in r.json()["error"]["message"], r.text
    assert client.get("/api/v1/projects/nope/items").status_code == 404
    assert client.get(f"{P}/people", params={"limit": 0}).status_code == 422


def test_the_routes_are_described_in_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/projects/{name}/people", "/api/v1/projects/{name}/items",
                 "/api/v1/projects/{name}/interactions/summary"):
        op = paths[path]["get"]
        assert op["description"] and "recommendation" in op["tags"], path
