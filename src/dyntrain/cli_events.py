"""``dyntrain events``: follow the CloudEvents a server publishes on its broker."""

from __future__ import annotations

import asyncio
import json
from typing import Optional

import typer

from .cli import app, console, out

events_app = typer.Typer(help="Events on the message broker (DYNTRAIN_EVENTS_URL).", no_args_is_help=True)
app.add_typer(events_app, name="events")


def _line(body: bytes) -> str:
    """One event as a terminal line: time, project, type, data."""
    try:
        event = json.loads(body)
        data = json.dumps(event.get("data"), separators=(",", ":"), ensure_ascii=False)
        return f"{event.get('time', '')}  {event.get('subject', '?')}  {event.get('type', '?')}  {data}"
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")


@events_app.command("tail")
def tail(
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Only this project's events."),
    url: str = typer.Option(..., "--broker", envvar="DYNTRAIN_EVENTS_URL",
                            help="The broker the server publishes to: nats://… or amqp://… (env DYNTRAIN_EVENTS_URL)."),
    count: int = typer.Option(0, "--count", "-n", help="Stop after this many events (0 = until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print each CloudEvent as it arrived (one JSON per line)."),
):
    """Follow the events the server publishes (training, promotions, new dataset versions) as they happen."""
    from .brokers.clients import open_client
    from .brokers.publisher import event_subject
    from .kernel.errors import DyntrainError

    try:
        client = open_client(url)
    except DyntrainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1)
    pattern = event_subject(project) if project else "dyntrain.>"

    async def follow() -> None:
        done = asyncio.Event()
        seen = 0

        def show(body: bytes) -> None:
            nonlocal seen
            if count and seen >= count:  # more may arrive before the subscription is closed
                return
            out.print(body.decode("utf-8", "replace") if as_json else _line(body), markup=False, highlight=False,
                      soft_wrap=True)
            seen += 1
            if count and seen >= count:
                done.set()

        tail = asyncio.create_task(client.tail(pattern, show))
        waiter = asyncio.create_task(done.wait())
        try:
            finished, _ = await asyncio.wait({tail, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if tail in finished:
                tail.result()  # a connection error surfaces here
        finally:
            tail.cancel()
            waiter.cancel()
            await asyncio.gather(task, waiter, return_exceptions=True)  # closed before the connection
            await client.reset()

    console.print(f"following {pattern} on {url} (Ctrl-C to stop)")
    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # cannot reach the broker: say so plainly
        console.print(f"[red]error:[/red] cannot follow events on {url}: {exc}")
        raise typer.Exit(1)
