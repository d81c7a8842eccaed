"""`waitress-serve server:app`: the service starts with the first request and
drains at interpreter exit."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.client import Client
from tests.conftest import service_env

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_waitress_serve_entry_point_delivers_and_drains(tmp_path, smtp, whatsapp):
    port = free_port()
    env = dict(os.environ)
    env.update(service_env(tmp_path / "wsgi.db", smtp, whatsapp, LOG_LEVEL="INFO"))
    env["PYTHONPATH"] = str(ROOT)
    log_path = tmp_path / "wsgi.log"
    command = [
        sys.executable,
        "-m",
        "waitress",
        "--host=127.0.0.1",
        f"--port={port}",
        "server:app",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A shell's background job ignores SIGINT; this child must not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.http.get(client.url("/healthz"), timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        client.create_order("W-1")
        assert client.pay("W-1").json() == {"status": "paid"}
        client.wait_for_states("W-1")
    finally:
        client.close()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    output = log_path.read_text()
    assert code == 0, output
    assert "notifier" in output and "stopped; nothing left in flight" in output
    assert len(smtp.wait_for(1)) == 1
    assert len(whatsapp.wait_for(2)) == 2
