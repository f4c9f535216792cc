"""The README's Python examples and examples/quickstart.py, run against a real server: a README
block marked ``# doctest: live-server`` runs as written (blocks share one namespace, in order),
and the quickstart runs as a script in its own process, as a user would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "# doctest: live-server"


def live_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each ```python block holding the mark."""
    out = []
    for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M):
        if MARK in m.group(1):
            out.append((text[: m.start(1)].count("\n") + 1, m.group(1)))
    return out


def test_the_marked_blocks_are_found():
    assert len(live_blocks("```python\n# doctest: live-server\nx = 1\n```\n\n```python\ny = 2\n```\n")) == 1
    assert len(live_blocks((ROOT / "README.md").read_text())) == 3


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readme_python_examples_run_against_a_live_server(loop_server, monkeypatch, capsys):
    monkeypatch.setenv("DYNTRAIN_URL", loop_server.url)
    monkeypatch.delenv("DYNTRAIN_TOKEN", raising=False)
    namespace: dict = {"__name__": "readme"}
    for line, code in live_blocks((ROOT / "README.md").read_text()):
        # padded to its line in the README, so a failure's traceback points there
        exec(compile("\n" * (line - 1) + code, str(ROOT / "README.md"), "exec"), namespace)
    shelf, run, p = namespace["shelf"], namespace["run"], namespace["p"]
    assert run.status == "succeeded" and run.model_version == 1 and p.explanation["status"] == "ready"
    assert [m.version for m in shelf.models() if m.in_service] == [1]  # rolled back from 2
    said, explained = namespace["said"], namespace["reviews"].explain(namespace["said"])
    assert explained["method"] == "words" and explained["label"] == said.label
    assert [s["text"] for s in explained["spans"]] == "the staff were rude but the food was great".split()
    assert 150_000 < namespace["houses"].predict(rows=[{"rooms": 3, "area": 80.0}])[0].value < 450_000
    out = capsys.readouterr().out
    assert "image.linear_probe" in out and "mattered most" in out
    namespace["client"].close()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_quickstart_runs_against_a_live_server(loop_server):
    env = {**os.environ, "DYNTRAIN_URL": loop_server.url, "QUICKSTART_PROJECT": "quickstart"}
    env.pop("DYNTRAIN_TOKEN", None)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^run \d+: image\.linear_probe, accuracy [01]\.\d\d, model version 1, in service$", out, re.M), out
    steps = re.findall(r"^([a-z]+) +(\d+\.\d)%$", out, re.M)  # what the progress callback printed
    assert len(steps) >= 3 and steps[-1] == ("gate", "100.0"), out
    answers = re.findall(r"^ *(dahlia|pagoda) -> (dahlia|pagoda) +\d+%  .*mattered most", out, re.M)
    assert len(answers) == 4, out
    assert re.search(r"^dahlia +precision [01]\.\d\d  recall", out, re.M), out
    assert "in service: [2]" in out and "rolled back to version 1" in out, out
