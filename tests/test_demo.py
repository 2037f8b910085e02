"""`villagewatch demo` stops everything on Ctrl-C (SIGINT to the terminal's process group)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from conftest import REPO


def test_ctrl_c_stops_everything_and_leaves_no_process(tmp_path):
    data = tmp_path / "demo"
    env = {**os.environ, "VW_HTTP_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "demo", "--data-dir", str(data),
                             "--backfill-hours", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    saw_data = False
    for line in proc.stdout:
        lines.append(line.rstrip())
        m = re.search(r"new points in InfluxDB: ([\d,]+)", line)
        if m and int(m.group(1).replace(",", "")) > 0:
            saw_data = True
            break
        if time.monotonic() > deadline:
            break
    assert saw_data, "\n".join(lines)
    assert any("login: thanhtra /" in x for x in lines), "the inspector page and its demo login are shown"
    banner = [x for x in lines if "http://" in x]
    assert "commune portal" in banner[0], f"the portal's URL comes first: {banner}"
    portal_url = re.search(r"(http://\S+)", banner[0]).group(1)
    import urllib.request
    with urllib.request.urlopen(portal_url, timeout=30) as resp:
        assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    assert "everything stopped" in rest
    assert "Traceback" not in rest and "Traceback" not in "\n".join(lines), rest
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes left behind: {leftovers}"
