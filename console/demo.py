"""`signoff demo`: a data directory with the sample flows and about forty pending requests.

The requests are started by demo identities (dana, erik, fatima, ...) with realistic, varied
inputs (``random.Random(42)``, so every demo looks the same). Some are started "in the past"
(the seeding clock is moved back), so their due times are minutes away and the countdowns and
warning colours show at once.

Who may decide: the sample flows assign their tasks to groups (finance, security, ...). The
demo writes ``policy.yaml`` into the data dir that puts the local account in every one of those
groups, as an admin everywhere, with four-eyes off, so the person running the demo can approve,
deny and cancel everything.

What the flows call after a decision (payments API, IAM, content API, deploy hook, HR system,
Slack) and signoff's own notifications (Slack, Teams) go to loopback sinks that the demo runs
in its own process (console.demo_sinks): :func:`point_at_sinks` sets the kv values, secrets
and ``notifications.yaml`` of the data directory to them on every start (the port changes).
Until then (seeding) they point at a closed port, so nothing reaches anything real.
"""
from __future__ import annotations

import base64
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from signoff.engine.identity import Identity

if TYPE_CHECKING:
    from signoff.console.demo_sinks import DemoSinks

DEMO_PEOPLE = ("dana", "erik", "fatima", "gustav", "hana", "ivan")
GROUPS = ("finance", "cfo", "security", "platform-oncall", "release-managers", "moderators", "data-stewards")
#: a closed port on this machine, where the seeding points the flows' calls
DEAD_URL = "http://127.0.0.1:9"
NOTIFICATIONS_FILE = "notifications.yaml"
NOTIFICATIONS = """\
# written by `signoff demo`: signoff's own notifications go to the demo's loopback sinks
targets:
  - namespaces: ["*"]
    events: [decided, expired, escalated]
    slack: "{{ secret('DEMO_NOTIFY_SLACK') }}"
  - namespaces: [company.platform, company.platform.*]
    events: [decided]
    teams: "{{ secret('DEMO_NOTIFY_TEAMS') }}"
"""


class _ShiftedClock:
    """The real time minus an offset that the seeder changes between starts."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) - self.offset


def start_sinks(data_dir: Path, user: str) -> tuple[DemoSinks, Path]:
    """Start the demo's loopback sinks and point the data directory at them (the caller
    stops them); returns them and the notifications file to use."""
    from signoff.console.demo_sinks import DemoSinks

    sinks = DemoSinks(data_dir).start()
    try:
        return sinks, point_at_sinks(data_dir, user, sinks.url)
    except BaseException:
        sinks.stop()
        raise


def console_notices(app, sent_file: Path) -> Callable[[str], None]:
    """What flows sent, as console notices (plain text: flow inputs are not markup). Calls
    that arrive together (a bulk approve) share one notice, so they never cover the screen."""
    import threading

    lines: list[str] = []
    lock = threading.Lock()

    def flush() -> None:
        with lock:
            batch = lines[:]
            lines.clear()
        if not batch:
            return
        shown = batch[:3] + ([f"… and {len(batch) - 3} more (all in {sent_file})"] if len(batch) > 3 else [])
        title = "sent by a flow (demo sink)" if len(batch) == 1 else f"{len(batch)} calls by flows (demo sinks)"
        app.notify("\n".join(shown), title=title, timeout=8, markup=False)

    def show(line: str) -> None:
        with lock:
            lines.append(line)
            first = len(lines) == 1
        if first and app.is_running:
            app.call_from_thread(app.set_timer, 0.5, flush)

    return show


def set_secrets(base_url: str) -> None:
    """The webhook secrets the sample flows and the demo's notifications read (base64, as
    `secret()` expects), at ``base_url`` plus each one's path on the sinks. The demo owns
    them: a value already in the environment is replaced."""
    from signoff.console.demo_sinks import SECRET_ENDPOINTS

    for name, path in SECRET_ENDPOINTS.items():
        os.environ[f"SECRET_{name}"] = base64.b64encode(f"{base_url}{path}".encode()).decode()


def set_kv(service, admin: Identity, base_url: str) -> None:
    """The API URLs the sample flows read with kv(), at ``base_url`` plus each one's path."""
    from signoff.console.demo_sinks import KV_ENDPOINTS

    for key, (namespace, path) in KV_ENDPOINTS.items():
        service.kv_set(admin, namespace, key, base_url + path)


def point_at_sinks(data_dir: Path, user: str, base_url: str) -> Path:
    """Point the demo data directory's kv values, secrets and notification targets at the
    sinks listening on ``base_url``; returns the notifications file."""
    from signoff.engine.core import Engine
    from signoff.engine.policy import load_policy
    from signoff.engine.service import ApprovalService

    set_secrets(base_url)
    engine = Engine(data_dir, [], policy=load_policy(data_dir / "policy.yaml"))
    try:
        set_kv(ApprovalService(engine), Identity(user, source="os"), base_url)
    finally:
        engine.close()
    path = data_dir / NOTIFICATIONS_FILE
    path.write_text(NOTIFICATIONS)
    return path


def write_policy(data_dir: Path, user: str) -> Path:
    groups = "\n".join(f"  {g}: [{user}]" for g in GROUPS)
    path = data_dir / "policy.yaml"
    path.write_text(
        "# written by `signoff demo`: you are in every group the sample flows assign to\n"
        "fourEyes: false\n"
        f"groups:\n{groups}\n"
        "bindings:\n"
        "  - role: admin\n"
        f"    subjects: [user:{user}]\n"
        "    namespaces: ['*']\n"
        "  - role: requester\n"
        f"    subjects: [{', '.join('user:' + p for p in DEMO_PEOPLE)}]\n"
        "    namespaces: ['*']\n")
    return path


def _payment(rng: random.Random) -> tuple[str, str, dict]:
    payees = [("Acme Industrial GmbH", "DE89370400440532013000"), ("Globex Logistics Ltd", "GB29NWBK60161331926819"),
              ("Initech Software BV", "NL91ABNA0417164300"), ("Umbrella Facilities SA", "FR1420041010050500013M02606"),
              ("Hooli Cloud Services", "IE29AIBK93115212345678"), ("Stark Components AB", "SE4550000000058398257466")]
    payee, iban = rng.choice(payees)
    amount = rng.choice([rng.randint(120, 9500), rng.randint(10_000, 85_000)])
    return "company.finance", "payment_approval", {
        "amount": round(amount + rng.random(), 2), "currency": rng.choice(["EUR", "EUR", "USD", "GBP"]),
        "payee": payee, "iban": iban, "reference": f"INV-{rng.randint(2026000, 2026999)}"}


def _access(rng: random.Random) -> tuple[str, str, dict]:
    user = rng.choice(["jdoe", "msmith", "a.kovacs", "lchen", "p.novak", "rgarcia"])
    system = rng.choice(["billing-db", "crm", "data-warehouse", "kubernetes-prod", "vpn"])
    return "company.security", "access_request", {
        "user": user, "system": system, "role": rng.choice(["read", "read", "write", "admin"]),
        "justification": f"INC-{rng.randint(1000, 9999)}: investigate "
                         f"{rng.choice(['latency', 'failed jobs', 'a customer ticket', 'billing mismatch'])}"
                         f" on {system}",
        "duration": rng.choice(["PT4H", "P1D", "P3D", "P7D"])}


def _config(rng: random.Random) -> tuple[str, str, dict]:
    service = rng.choice(["checkout", "search-api", "ledger", "notifications", "auth-gateway"])
    key, old, new = rng.choice([("pool.max_connections", "50", "80"), ("cache.ttl_seconds", "300", "120"),
                                ("feature.new_checkout", "false", "true"), ("rate_limit.rps", "200", "350")])
    return "company.platform", "config_change", {
        "service": service, "environment": rng.choice(["production", "production", "staging"]), "key": key,
        "old_value": old, "new_value": new, "ticket": f"CHG-{rng.randint(1000, 9999)}"}


def _deploy(rng: random.Random) -> tuple[str, str, dict]:
    service = rng.choice(["checkout", "search-api", "ledger", "auth-gateway"])
    version = f"v{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    return "company.platform", "prod_deploy", {
        "service": service, "version": version, "rollout": rng.choice(["canary", "blue-green", "canary"]),
        "changelog": f"- fix {rng.choice(['timeouts', 'a memory leak', 'retry storms'])}\n- bump dependencies"}


def _moderation(rng: random.Random) -> tuple[str, str, dict]:
    excerpts = ["Buy followers now!!! limited offer, click the link in my bio",
                "This is the worst service ever, you people are all idiots",
                "Check out my new blog post about sourdough starters",
                "Free crypto giveaway, send 1 ETH and get 2 back"]
    return "company.trust", "content_moderation", {
        "content_id": f"{rng.choice(['post', 'comment'])}_{rng.randint(10**7, 10**8)}",
        "author": rng.choice(["sunny_day", "crypto_king", "bread_lover", "angry_bob"]),
        "excerpt": rng.choice(excerpts), "classifier_score": round(rng.uniform(0.55, 0.99), 2)}


def _deletion(rng: random.Random) -> tuple[str, str, dict]:
    return "company.data", "data_deletion", {
        "dataset": rng.choice(["analytics.events_2024", "crm.contacts", "billing.invoices_2019"]),
        "rows": rng.randint(10, 250_000), "reason": rng.choice(["gdpr-erasure", "retention-policy",
                                                                "customer-offboarding"]),
        "filter": rng.choice(["customer_id = 48211", "created_at < '2019-01-01'", "tenant = 'oldco'"])}


MAKERS = [_payment, _payment, _payment, _access, _access, _config, _deploy, _moderation, _moderation, _deletion]


def seed(data_dir: Path, *, user: str, count: int = 40, seed_value: int = 42) -> dict:
    """Start executions until about ``count`` requests are pending; returns a short report."""
    from signoff.console.settings import sample_flows_dir
    from signoff.engine.core import Engine
    from signoff.engine.policy import load_policy
    from signoff.engine.service import ApprovalService

    data_dir.mkdir(parents=True, exist_ok=True)
    policy_path = write_policy(data_dir, user)
    set_secrets(DEAD_URL)
    clock = _ShiftedClock()
    engine = Engine(data_dir, [sample_flows_dir()], clock=clock, policy=load_policy(policy_path))
    service = ApprovalService(engine)
    rng = random.Random(seed_value)
    admin = Identity(user, source="os")
    failed = 0
    try:
        set_kv(service, admin, DEAD_URL)  # until point_at_sinks: nothing reaches anything real
        def pending_count() -> int:
            # a count, not list_pending (which builds every summary: O(n^2) over the loop);
            # the demo policy makes `admin` an admin everywhere, so it sees every request
            row = engine.db.query_one("SELECT count(*) FROM requests WHERE state='PENDING'")
            return int(row[0]) if row is not None else 0

        attempts = 0
        while pending_count() < count and attempts < count * 3:
            attempts += 1
            namespace, flow_id, inputs = rng.choice(MAKERS)(rng)
            # started between 0 and 230 minutes ago: 4 h timeouts are then due in 10 min .. 4 h
            clock.offset = timedelta(minutes=rng.choice([rng.randint(0, 120), rng.randint(150, 225),
                                                         rng.randint(220, 238)]))
            person = Identity(rng.choice(DEMO_PEOPLE), source="demo")
            try:
                service.start_execution(person, namespace, flow_id, inputs)
            except Exception:  # noqa: BLE001 - a demo keeps going
                failed += 1
        clock.offset = timedelta(0)
        pending = pending_count()
    finally:
        engine.close()
    return {"data_dir": str(data_dir), "pending": pending, "failed": failed, "policy": str(policy_path)}
