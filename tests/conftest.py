"""Fixtures: loopback stand-ins, and the service on the real waitress server."""

import threading

import pytest
import waitress
from waitress import wasyncore

import server
from notifier.service import Service
from notifier.settings import Settings
from tests.client import SECRET, TOKEN, Client
from tests.databases import drop_run_databases
from tests.fakes.smtp import SmtpStandIn
from tests.fakes.whatsapp import WhatsAppStandIn

WA_TOKEN = "wa-test-token"
PHONE_NUMBER_ID = "1098765432"
ADMIN = "966500000001"


@pytest.fixture
def smtp():
    with SmtpStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def whatsapp():
    with WhatsAppStandIn(expected_token=WA_TOKEN) as stand_in:
        yield stand_in


def service_env(db_path, smtp=None, whatsapp=None, **overrides):
    """Environment for a service wired to the stand-ins, with fast timings."""
    env = {
        "DATABASE_URL": f"sqlite:///{db_path}",
        "API_TOKEN": TOKEN,
        "GATEWAY_SECRET": SECRET,
        "ADMIN_WHATSAPP": ADMIN,
        "NOTIFIER_SWEEP_SECONDS": "0.1",
        "NOTIFIER_BACKOFF_SECONDS": "0.05",
        "NOTIFIER_BACKOFF_MAX_SECONDS": "0.5",
        "NOTIFIER_LEASE_SECONDS": "10",
        "NOTIFIER_DRAIN_SECONDS": "3",
        "SMTP_TIMEOUT": "2",
        "WHATSAPP_CONNECT_TIMEOUT": "1",
        "WHATSAPP_READ_TIMEOUT": "2",
        "LOG_LEVEL": "DEBUG",
    }
    if smtp is not None:
        env.update(SMTP_HOST=smtp.host, SMTP_PORT=str(smtp.port), SMTP_SECURITY="none")
    if whatsapp is not None:
        env.update(
            WHATSAPP_API_URL=whatsapp.url,
            WHATSAPP_TOKEN=WA_TOKEN,
            WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


class Running:
    """A Service served by waitress in a thread, with a client pointed at it."""

    def __init__(self, settings):
        self.settings = settings
        self.service = Service(settings).start()
        self.server = waitress.create_server(
            server.create_app(lambda: self.service),
            host="127.0.0.1",
            port=0,
            threads=8,
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.client = Client(f"http://127.0.0.1:{self.server.effective_port}")
        self.stopped = False

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self.client.close()
        # Close every socket from the server's own loop thread (through its
        # trigger), so the loop ends with an empty map instead of selecting
        # on a socket closed under it.
        sockets = self.server._map
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(sockets))
        except OSError:  # the loop is gone already: close from here
            wasyncore.close_all(sockets, ignore_all=True)
        self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.service.stop()


@pytest.fixture
def make_service(tmp_path, smtp, whatsapp):
    """Build and start a service; keyword arguments override settings."""
    started = []

    def make(**overrides):
        env = service_env(tmp_path / "notifier.db", smtp, whatsapp, **overrides)
        running = Running(Settings.from_env(env))
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def launcher(tmp_path):
    """Runs `python server.py ...` as real subprocesses; stops them after."""
    from tests.proc import Launcher

    launcher = Launcher(tmp_path)
    yield launcher
    launcher.close()


@pytest.fixture
def live(make_service):
    """The service with default test settings."""
    return make_service()


def pytest_sessionfinish(session, exitstatus):
    drop_run_databases()
