"""The operator's side of `python server.py`: status, retry, bad settings,
and a first start with nothing configured but a database and a port."""

import re
import time

import pytest
import requests

from tests.client import SECRET, TOKEN
from tests.conftest import service_env
from tests.fakes.whatsapp import WhatsAppStandIn
from tests.proc import child_env, free_port, run_command

STATES = ["pending", "running", "sent", "dead"]
CUSTOMER_PHONE = "966501112233"
CUSTOMER_EMAIL = "laila@example.com"
COURIER_PHONE = "966504445566"


@pytest.fixture
def env(tmp_path, smtp, whatsapp):
    return service_env(tmp_path / "notifier.db", smtp, whatsapp)


def status(env, dead_lines=None):
    """({state: count}, oldest pending line) from `server.py status`; the
    listing of dead rows that may follow goes into `dead_lines`."""
    done = run_command(["status"], env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    if dead_lines is not None:
        dead_lines.extend(lines[5:])
        lines = lines[:5]
    assert len(lines) == 5, done.stdout
    counts = {}
    for line in lines[:4]:
        state, count = line.split()
        counts[state] = int(count)
    assert list(counts) == STATES, done.stdout
    assert lines[4].startswith("oldest pending: "), done.stdout
    return counts, lines[4]


def kill_whatsapp(whatsapp, n):
    """The next `n` WhatsApp sends fail for good (131026: undeliverable)."""
    whatsapp.script(*[WhatsAppStandIn.error(131026)] * n)


def paid_order(client, reference, states=("sent", "dead")):
    client.create_order(reference)
    assert client.pay(reference).json() == {"status": "paid"}
    return client.wait_for_states(reference, states)


def ids_of(order, state):
    return [n["id"] for n in order["notifications"] if n["state"] == state]


def keys_delivered(whatsapp):
    return [c.body["biz_opaque_callback_data"] for c in whatsapp.delivered()]


# -- status ------------------------------------------------------------------


def test_status_on_a_fresh_database_is_all_zero(env):
    counts, oldest = status(env)
    assert counts == dict.fromkeys(STATES, 0)
    assert oldest == "oldest pending: none"


def test_status_counts_each_state_and_the_oldest_waiting(env, launcher, whatsapp):
    # One permanent failure (dead), one transient failure retried far later
    # (pending), the rest sent.
    whatsapp.script(WhatsAppStandIn.error(131026), WhatsAppStandIn.error(131000))
    service = launcher.launch(
        dict(
            env,
            NOTIFIER_THREADS=1,
            NOTIFIER_BACKOFF_SECONDS=600,
            NOTIFIER_BACKOFF_MAX_SECONDS=600,
        )
    )
    order = paid_order(service.client, "S-1", ("sent", "dead", "pending"))
    deadline = time.monotonic() + 10
    while sorted(n["state"] for n in order["notifications"]) != [
        "dead",
        "pending",
        "sent",
    ]:
        assert time.monotonic() < deadline, order["notifications"]
        time.sleep(0.05)
        order = service.client.get_order("S-1")

    dead_lines = []
    counts, oldest = status(env, dead_lines)
    assert counts == {"pending": 1, "running": 0, "sent": 1, "dead": 1}
    match = re.fullmatch(r"oldest pending: (\d+) s", oldest)
    assert match and int(match.group(1)) < 60, oldest
    # What failed, and how to send it again.
    dead = next(n for n in order["notifications"] if n["state"] == "dead")
    assert dead_lines[0] == ""
    assert dead_lines[1].startswith("latest dead")
    assert re.fullmatch(
        rf"  {dead['id']} whatsapp_\w+ order S-1, 1 attempts: .*131026.*",
        dead_lines[2],
    ), dead_lines


# -- retry -------------------------------------------------------------------


def test_retry_id_requeues_a_dead_notification_and_the_service_sends_it(
    env, launcher, whatsapp
):
    kill_whatsapp(whatsapp, 1)
    service = launcher.launch(env)
    order = paid_order(service.client, "R-1")
    (dead,) = ids_of(order, "dead")
    assert f"notification-{dead}" not in keys_delivered(whatsapp)

    done = run_command(["retry", str(dead)], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"requeued 1: {dead}"

    order = service.client.wait_for_states("R-1", ("sent",))
    again = next(n for n in order["notifications"] if n["id"] == dead)
    assert again["attempts"] == 1  # a fresh round
    assert keys_delivered(whatsapp).count(f"notification-{dead}") == 1


def test_retry_dead_requeues_every_dead_notification(env, launcher, whatsapp):
    kill_whatsapp(whatsapp, 2)
    service = launcher.launch(env)
    order = paid_order(service.client, "R-2")
    dead = ids_of(order, "dead")
    assert len(dead) == 2

    done = run_command(["retry", "--dead"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"requeued 2: {dead[0]}, {dead[1]}"
    service.client.wait_for_states("R-2", ("sent",))
    delivered = keys_delivered(whatsapp)
    assert all(f"notification-{nid}" in delivered for nid in dead)

    done = run_command(["retry", "--dead"], env)
    assert (done.returncode, done.stdout.strip()) == (0, "no dead notifications")


def test_retry_unknown_id_says_so_and_fails(env):
    done = run_command(["retry", "99999"], env)
    assert done.returncode == 1
    assert done.stdout.strip() == "no notification 99999"


def test_retry_refuses_a_sent_notification(env, launcher):
    service = launcher.launch(env)
    order = paid_order(service.client, "R-3", ("sent",))
    sent = order["notifications"][0]["id"]

    done = run_command(["retry", str(sent), "99999"], env)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"notification {sent} is sent; not requeued",
        "no notification 99999",
    ]
    after = service.client.get_order("R-3")["notifications"][0]
    assert (after["state"], after["attempts"]) == ("sent", 1)


def test_retry_without_ids_or_dead_is_a_usage_error(env):
    done = run_command(["retry"], env)
    assert done.returncode == 2
    assert "retry needs notification ids or --dead" in done.stderr


# -- bad settings --------------------------------------------------------------


BAD = [
    ("PORT", "abc"),
    ("SMTP_SECURITY", "tls"),
    ("NOTIFIER_THREADS", "0"),
    ("DATABASE_URL", "nonsense"),
    ("DATABASE_URL", "foo://bar"),
    ("NOTIFIER_LEASE_SECONDS", "2"),  # not longer than the send timeouts
    ("ADMIN_WHATSAPP", "call-me"),
]


def assert_one_line_naming(done, name):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert name in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("command", [[], ["status"]], ids=["serve", "status"])
@pytest.mark.parametrize("name, value", BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_bad_setting_stops_start_up_with_one_line(env, name, value, command):
    done = run_command(command, dict(env, **{name: value}), timeout=15)
    assert_one_line_naming(done, name)


def test_database_url_in_a_missing_directory_stops_start_up_with_one_line(
    env, tmp_path
):
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'notifier.db'}"
    done = run_command([], dict(env, DATABASE_URL=url), timeout=15)
    assert_one_line_naming(done, "DATABASE_URL")


def test_in_memory_sqlite_database_url_is_refused_or_works(env, launcher):
    url = "sqlite:///:memory:"
    service = launcher.process(dict(env, DATABASE_URL=url)).start()
    deadline = time.monotonic() + 15
    while service.alive() and time.monotonic() < deadline:
        try:
            if requests.get(service.url("/healthz"), timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.05)
    if not service.alive():  # refused: one line naming the variable
        assert service.popen.returncode == 2, service.log
        lines = service.log.strip().splitlines()
        assert len(lines) == 1 and "DATABASE_URL" in lines[0], service.log
        return
    # It serves, so it must keep orders like with any other database.
    service.client.create_order("M-1")


# -- nothing configured: the console channel ---------------------------------


def bare_env(tmp_path, **extra):
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bare.db'}",
        "PORT": str(free_port()),
        **extra,
    }


def test_start_with_only_a_database_and_a_port_uses_the_console(tmp_path, launcher):
    service = launcher.launch(bare_env(tmp_path))
    health = service.wait_healthy()
    assert health["status"] == "ok"
    assert health["channels"] == {"email": "console", "whatsapp": "console"}
    # No API_TOKEN, no GATEWAY_SECRET: those routes say they are not set up.
    http = service.client.http  # keep-alive: see test_crash's lost-SIGTERM test
    assert http.get(service.url("/orders/1"), timeout=5).status_code == 503
    webhook = http.post(service.url("/payments/webhook"), data=b"{}", timeout=5)
    assert webhook.status_code == 503
    code, _ = service.stop()
    assert code == 0, service.tail()


def test_console_channel_logs_a_paid_order_with_masked_contacts(tmp_path, launcher):
    service = launcher.launch(
        bare_env(tmp_path, API_TOKEN=TOKEN, GATEWAY_SECRET=SECRET)
    )
    order = paid_order(service.client, "P-1", ("sent",))
    assert sorted(n["kind"] for n in order["notifications"]) == [
        "email_customer",
        "whatsapp_courier",  # no ADMIN_WHATSAPP: no admin message
    ]
    code, _ = service.stop()
    assert code == 0, service.tail()

    log = service.log
    assert "(console: not sent)" in log
    assert "email to l***@example.com" in log
    assert "to 9665*****566" in log  # the courier
    assert "9665*****233" in log  # the customer, a template parameter
    for raw in (CUSTOMER_PHONE, CUSTOMER_EMAIL, COURIER_PHONE):
        assert raw not in log, f"{raw} in the log"


def test_child_env_keeps_only_what_a_process_needs(monkeypatch):
    monkeypatch.setenv("SMTP_HOST", "smtp.leaked.example")
    env = child_env({"PORT": 1})
    assert "SMTP_HOST" not in env
    assert env["PORT"] == "1"


def test_start_up_lists_the_gateways_configured_and_not(env, launcher):
    service = launcher.launch(dict(env, STRIPE_WEBHOOK_SECRET="whsec_x"))
    log = service.log
    assert "gateways configured: stripe; not configured" in log
    assert "paymob" in log.split("not configured", 1)[1]
