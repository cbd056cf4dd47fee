"""The harness sees trouble: each check here must fail on a notebook that goes wrong.

``notebooks/broken.ipynb`` asks for an image on example.org, shows a widget
whose front end does not exist, has a slider whose callback raises in the
kernel, and divides by zero. In JupyterLab and in Voila, `assert_no_errors`
must name all four. A server that cannot start must fail fast with its log,
never hang.
"""

import json
import sys
from pathlib import Path

import pytest

from browser_page import (
    NotebookError,
    assert_no_errors,
    kernel_error,
    log_of,
    open_notebook,
    open_voila,
    press_slider,
    run_all,
    wait_until,
)
from browser_servers import ServerProcess, ServerStartError, free_port

pytestmark = pytest.mark.browser

BROKEN = Path(__file__).parent / "notebooks" / "broken.ipynb"
PROBE = "https://example.org/jw-harness-probe.png"


def assert_reports_every_problem(page):
    page.wait_for_selector(".jupyter-widgets-error-widget")
    assert log_of(page).kernel_errors == []
    press_slider(page, "ArrowRight")  # its callback raises in the kernel
    wait_until(page, lambda: log_of(page).kernel_errors, message="a kernel error")
    with pytest.raises(AssertionError) as failure:
        assert_no_errors(page)
    message = str(failure.value)
    assert PROBE in message  # the outside request
    assert "broken widget views" in message and "error widget" in message
    assert "[answering comm_msg] RuntimeError: jw-harness callback failure at 1" in message
    assert "ZeroDivisionError" in message
    # ...and each check can be turned off one at a time, so none of them hides another.
    with pytest.raises(AssertionError) as failure:
        assert_no_errors(page, allow_outside=[r"example\.org"], check_outputs=False)
    assert PROBE not in str(failure.value) and "ZeroDivisionError" not in str(failure.value)
    assert "error widget" in str(failure.value)


@pytest.mark.timeout(180)
def test_detects_problems_in_jupyterlab(jupyterlab_server, lab_page):
    relpath = jupyterlab_server.add(BROKEN, "harness/broken.ipynb")
    open_notebook(lab_page, jupyterlab_server, relpath)
    with pytest.raises(NotebookError, match="ZeroDivisionError: division by zero"):
        run_all(lab_page)
    assert_reports_every_problem(lab_page)
    # In JupyterLab the failed widget also shows as a console error.
    with pytest.raises(AssertionError, match="jw-harness-no-such-module"):
        assert_no_errors(lab_page, allow_outside=[r"example\.org"], check_outputs=False)


@pytest.mark.timeout(180)
def test_detects_problems_in_voila(voila_server, page):
    open_voila(page, voila_server(BROKEN))
    assert_reports_every_problem(page)


@pytest.mark.timeout(60)
def test_server_that_exits_fails_with_its_log(tmp_path):
    server = ServerProcess(
        "quitter",
        [sys.executable, "-c", "import sys; print('bad option --foo'); sys.exit(3)"],
        env=None, cwd=tmp_path, log_path=tmp_path / "quitter.log", port=free_port(), token="",
    )
    with pytest.raises(ServerStartError) as failure:
        server.start(timeout=30)
    message = str(failure.value)
    assert "quitter exited with code 3 before it was ready" in message
    assert "bad option --foo" in message  # the server's own words, from its log tail


@pytest.mark.timeout(60)
def test_server_that_never_answers_times_out_and_is_stopped(tmp_path):
    port = free_port()
    server = ServerProcess(
        "sleeper",
        [sys.executable, "-c", "import time; print('sleeping, not serving', flush=True); "
                               "time.sleep(600)"],
        env=None, cwd=tmp_path, log_path=tmp_path / "sleeper.log", port=port, token="",
    )
    with pytest.raises(ServerStartError, match="(?s)did not answer.*sleeping, not serving"):
        server.start(timeout=2)
    assert server.proc.poll() is not None  # stopped, not left behind


def _frame_v1(channel, header, parent, content):
    """A kernel message in the binary v1.kernel.websocket.jupyter.org framing."""
    parts = [channel.encode()] + [json.dumps(p).encode() for p in (header, parent, {}, content)]
    offsets, pos = [], 8 * (len(parts) + 2)
    for part in parts:
        offsets.append(pos)
        pos += len(part)
    offsets.append(pos)
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + b"".join(parts)


def test_kernel_error_decodes_both_web_socket_protocols():
    header = {"msg_type": "error", "msg_id": "1"}
    parent = {"msg_type": "comm_msg"}
    content = {"ename": "ValueError", "evalue": "bad",
               "traceback": ["\x1b[31mValueError\x1b[39m: bad"]}
    want = {"parent": "comm_msg", "ename": "ValueError", "evalue": "bad",
            "traceback": "ValueError: bad"}
    assert kernel_error(_frame_v1("iopub", header, parent, content)) == want
    text = json.dumps({"channel": "iopub", "header": header, "parent_header": parent,
                       "metadata": {}, "content": content})
    assert kernel_error(text) == want
    # Not errors: another channel, a plain stderr line, a status message.
    assert kernel_error(_frame_v1("shell", header, parent, content)) is None
    stderr = {"name": "stderr", "text": "UserWarning: careful"}
    assert kernel_error(_frame_v1("iopub", {"msg_type": "stream"}, parent, stderr)) is None
    status = {"execution_state": "idle"}
    assert kernel_error(_frame_v1("iopub", {"msg_type": "status"}, parent, status)) is None
    # A traceback printed on stderr (how some comm handlers report) counts.
    printed = {"name": "stderr", "text": "Traceback (most recent call last):\n  ...\nKeyError: 1"}
    got = kernel_error(_frame_v1("iopub", {"msg_type": "stream"}, parent, printed))
    assert got["ename"] == "stderr" and "KeyError: 1" in got["traceback"]
