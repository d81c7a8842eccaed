"""`python server.py simulate GATEWAY REFERENCE [--failed]` against a running
service, as a shop checks its set-up before going live."""

import pytest

from tests.conftest import service_env
from tests.proc import run_command

STRIPE_SECRET = "whsec_simulated"


@pytest.fixture
def running(tmp_path, launcher, smtp, whatsapp):
    env = service_env(
        tmp_path / "notifier.db",
        smtp,
        whatsapp,
        STRIPE_WEBHOOK_SECRET=STRIPE_SECRET,
    )
    service = launcher.launch(env)
    return service, service.env


@pytest.mark.parametrize("gateway", ["generic", "stripe"])
def test_simulated_payment_pays_the_order(running, gateway, smtp):
    service, env = running
    service.client.create_order(f"SIM-{gateway}")
    done = run_command(["simulate", gateway, f"SIM-{gateway}"], env)
    assert done.returncode == 0, done.stderr
    assert "-> 200" in done.stdout
    assert '{"status": "paid"}' in done.stdout
    order = service.client.wait_for_states(f"SIM-{gateway}")
    assert order["status"] == "paid"


def test_simulated_failure_marks_the_order_failed(running):
    service, env = running
    service.client.create_order("SIM-F")
    done = run_command(["simulate", "stripe", "SIM-F", "--failed"], env)
    assert done.returncode == 0, done.stderr
    assert '{"status": "failed"}' in done.stdout
    assert service.client.get_order("SIM-F")["status"] == "failed"


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "nogateway", "SIM-1"], "no gateway 'nogateway'"),
        (["simulate", "generic", "NOPE"], "no order 'NOPE'"),
    ],
)
def test_simulate_refuses_what_it_cannot_do(running, args, message):
    service, env = running
    service.client.create_order("SIM-1")
    done = run_command(args, env)
    assert done.returncode == 1
    assert message in done.stderr


def test_simulate_for_an_unconfigured_gateway_says_so(tmp_path):
    env = service_env(tmp_path / "n.db")
    done = run_command(["simulate", "stripe", "X"], env)
    assert done.returncode == 1
    assert "stripe gateway has no secret configured" in done.stderr
