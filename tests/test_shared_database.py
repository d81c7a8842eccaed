"""The service on PostgreSQL and MariaDB, and several hosts sharing one database."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import Notification
from notifier import payments
from notifier.orders import create_order, parse_order
from notifier.settings import Settings
from tests.client import order_body
from tests.conftest import service_env
from tests.databases import database_params, open_fresh, server_url

ROOT = Path(__file__).resolve().parent.parent
SHARED = database_params(("postgres", "mysql"))


@pytest.mark.parametrize("server", SHARED)
def test_paid_order_is_delivered_on_a_server_database(
    server, make_service, smtp, whatsapp
):
    url = server_url(server)
    open_fresh(url).close()
    live = make_service(DATABASE_URL=url)
    live.client.create_order("PG-1")
    assert live.client.pay("PG-1").json() == {"status": "paid"}
    assert live.client.pay("PG-1").json() == {"status": "duplicate"}
    order = live.client.wait_for_states("PG-1")
    assert order["status"] == "paid" and len(order["notifications"]) == 3
    assert len(smtp.wait_for(1)) == 1
    assert len(whatsapp.wait_for(2)) == 2


def start_worker(env, log_path):
    return subprocess.Popen(
        [sys.executable, "server.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.parametrize("server", SHARED)
def test_two_worker_hosts_share_a_backlog_without_sending_twice(
    server, tmp_path, smtp, whatsapp
):
    url = server_url(server)
    open_fresh(url)
    settings = Settings(admin_whatsapp="966500000001")
    orders = 40
    for i in range(orders):
        create_order(parse_order(order_body(f"H-{i}")))
        payment = payments.Payment(
            gateway="generic",
            event_id=f"evt-H-{i}",
            outcome=payments.SUCCEEDED,
            reference=f"H-{i}",
            amount=15000,
            currency="SAR",
        )
        payments.apply(payment, settings)
    Notification._meta.database.close()
    whatsapp.delay = 0.02
    smtp.delay = 0.02

    env = dict(os.environ)
    env.update(service_env(tmp_path / "unused.db", smtp, whatsapp, DATABASE_URL=url))
    env["LOG_LEVEL"] = "INFO"
    workers = [start_worker(env, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while whatsapp_count(whatsapp) < 2 * orders or len(smtp.messages) < orders:
            assert time.monotonic() < deadline, "backlog not delivered in time"
            assert all(w.poll() is None for w in workers), "a worker died"
            time.sleep(0.1)
        time.sleep(0.5)  # anything sent twice would arrive by now
    finally:
        for worker in workers:
            worker.terminate()
        codes = [worker.wait(timeout=20) for worker in workers]
    assert codes == [0, 0]

    keys = [c.body["biz_opaque_callback_data"] for c in whatsapp.delivered()]
    assert len(keys) == len(set(keys)) == 2 * orders
    message_ids = [m.message["Message-ID"] for m in smtp.messages]
    assert len(message_ids) == len(set(message_ids)) == orders
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert all(" sent in " in log for log in logs), "one host did all the work"
    unsent = Notification.select().where(Notification.state != "sent")
    assert unsent.count() == 0


def whatsapp_count(whatsapp):
    return len(whatsapp.delivered())


def terminate_connections(url):
    """What a database restart does to the service's open connections."""
    import psycopg2

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0].replace("postgresql", "postgres"))
    admin.autocommit = True
    admin.cursor().execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    admin.close()


@pytest.mark.postgres
def test_service_reconnects_after_the_database_dropped_its_connections(
    make_service, smtp, whatsapp
):
    url = server_url("postgres")
    open_fresh(url).close()
    live = make_service(DATABASE_URL=url)
    client = live.client
    client.create_order("RC-1")
    assert client.pay("RC-1").json() == {"status": "paid"}
    client.wait_for_states("RC-1")

    terminate_connections(url)
    client.create_order("RC-2")  # a read first, then a write transaction
    answers = [client.pay("RC-2").status_code for _ in range(3)]
    assert answers[0] == 200 or answers[1] == 200, answers
    assert 500 not in answers[1:], answers
    order = client.wait_for_states("RC-2")
    assert order["status"] == "paid"
    assert len(smtp.wait_for(2)) == 2
    assert len(whatsapp.wait_for(4)) == 4
