"""Shared by every benchmark: machine description and writing one section of RESULTS.md.

Each script owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``;
the rest of the file is left as it is, so scripts can run in any order.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names (`python benchmarks/NAME.py`).\n"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # The machine is shared: the load average says how much other work the figures competed with.
    load1, load5, _ = os.getloadavg()
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"load average {load1:.1f} (1 min) / {load5:.1f} (5 min) when written")


def write_section(name: str, title: str, body: str, quick: bool = False) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md; a ``quick`` run never
    replaces figures of a full run."""
    note = " — `--quick` run (CI smoke test; figures not comparable)" if quick else ""
    section = (f"<!-- {name}:start -->\n## {title}\n\n_Machine: {machine()}{note}. "
               f"Script: `benchmarks/{name}.py`._\n\n{body.strip()}\n<!-- {name}:end -->")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    current = pattern.search(text)
    if quick and current and "`--quick` run" not in current.group(0):
        print(f"(--quick: the full figures of {name!r} in {RESULTS.name} are kept)")
        return
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    print(f"(wrote the {name!r} section of {RESULTS.name})")


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
