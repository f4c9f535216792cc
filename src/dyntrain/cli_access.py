"""CLI: `dyntrain tokens …` (admin) and `dyntrain audit` — clients of the server like the rest."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from .cli import URL, _client, _fail, app, console, out
from .client import ApiError

tokens = typer.Typer(help="API tokens: create (the secret is shown once), list, revoke. Needs an admin token.",
                     no_args_is_help=True)
app.add_typer(tokens, name="tokens")


@tokens.command("create")
def tokens_create(
    name: str = typer.Argument(..., help="Who or what uses the token, e.g. shop-app."),
    role: str = typer.Option("predictor", help="admin | trainer (data, training, promotion) | "
                                               "predictor (predict only) | viewer (read only)."),
    project: Optional[List[str]] = typer.Option(None, "--project", "-p",
                                                help="Limit the token to this project (repeat for more); "
                                                     "none = every project."),
    url: str = URL,
):
    """Create a token and print its secret, which is never shown again."""
    try:
        t = _client(url).post("/tokens", json={"name": name, "role": role, "projects": project or []})
    except ApiError as exc:
        _fail(exc)
    console.print(f"Token {t['id']} {t['name']!r} ({t['role']}, projects: {', '.join(t['projects']) or 'all'}). "
                  "Store the secret now, it will not be shown again:")
    out.print(t["token"])


@tokens.command("list")
def tokens_list(all_: bool = typer.Option(False, "--all", help="Include revoked tokens."), url: str = URL):
    """List tokens (never their secrets) with when each was last used."""
    try:
        items = _client(url).get("/tokens", params={"include_revoked": all_})
    except ApiError as exc:
        _fail(exc)
    table = Table("id", "name", "role", "projects", "created", "last used", "revoked")
    for t in items:
        table.add_row(str(t["id"]), t["name"], t["role"], ", ".join(t["projects"]) or "all", t["created_at"][:16],
                      (t["last_used_at"] or "never")[:16], (t["revoked_at"] or "")[:16])
    out.print(table)


@tokens.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(..., help="The token's id (see `dyntrain tokens list`)."),
                  url: str = URL):
    """Revoke a token: requests carrying it are refused from now on."""
    try:
        t = _client(url).delete(f"/tokens/{token_id}")
    except ApiError as exc:
        _fail(exc)
    console.print(f"Token {t['id']} {t['name']!r} revoked.")


@app.command()
def audit(project: Optional[str] = typer.Option(None, "--project", "-p", help="Only this project."),
          limit: int = typer.Option(50, help="How many entries, newest first."), url: str = URL):
    """Who changed data, trained, promoted or rolled back, and when."""
    try:
        client = _client(url)
        items = (client.get(f"/projects/{project}/audit", params={"limit": limit}) if project
                 else client.get("/audit", params={"limit": limit}))
    except ApiError as exc:
        _fail(exc)
    table = Table("when (UTC)", "who", "what", "project", "details")
    for e in items:
        details = ", ".join(f"{k}={v}" for k, v in e["details"].items() if k not in ("path", "status"))
        table.add_row(e["created_at"][:19].replace("T", " "), e["actor"], e["action"], e["project"] or "-", details)
    out.print(table)
