"""The policy file: parsing with file:line:col problems, the permission matrix, group
membership (policy groups and OS groups), and the rules enforced through the real engine."""
from __future__ import annotations

import json
import textwrap

import pytest

from signoff.engine.errors import FlowLoadError, Location, Refused, UsageError
from signoff.engine.identity import Identity
from signoff.engine.policy import (
    ACTIONS,
    PERMISSIONS,
    ROLES,
    Binding,
    FilePolicy,
    SingleUserPolicy,
    load_policy,
    namespace_matches,
)
from tests.support import make_service


def write(tmp_path, text: str, name: str = "policy.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(tmp_path, text: str) -> list[str]:
    """The problems of a policy text as ``line:col: message``."""
    path = write(tmp_path, text)
    with pytest.raises(FlowLoadError) as err:
        load_policy(path)
    for p in err.value.problems:
        assert p.location.file == str(path)
    return [f"{p.location.line}:{p.location.col}: {p.message}" for p in err.value.problems]


def policy(text: str, tmp_path) -> FilePolicy:
    return load_policy(write(tmp_path, text))


ISSUE_EXAMPLE = """
fourEyes: true                 # default true: nobody approves what they started
groups:
  finance: [alice, bob]        # account names
  ops: [unix:wheel]            # members of an OS group
bindings:
  - role: approver             # viewer | requester | approver | admin
    subjects: [group:finance, user:carol]
    namespaces: [company.finance, company.finance.*]
"""


# -- loading ----------------------------------------------------------------------------------
def test_issue_example_loads(tmp_path):
    path = write(tmp_path, ISSUE_EXAMPLE)
    p = load_policy(path)
    assert p.four_eyes is True and p.single_user is False
    assert p.path == str(path)
    assert p.groups == {"finance": ["alice", "bob"], "ops": ["unix:wheel"]}
    assert p.bindings == [Binding("approver", ("group:finance", "user:carol"),
                                  ("company.finance", "company.finance.*"), Location(str(path), 6, 5))]


def test_defaults_and_single_strings(tmp_path):
    p = policy("""
        bindings:
          - role: admin
            subjects: user:root
            namespaces: "*"
        """, tmp_path)
    assert p.four_eyes is True  # the default
    assert p.groups == {}
    assert p.bindings[0].subjects == ("user:root",) and p.bindings[0].namespaces == ("*",)
    p = policy("""
        fourEyes: false
        groups:
          empty:
          users: [user:alice, bob]
        bindings: [{role: viewer, subjects: [group:empty, unix:staff], namespaces: [a]}]
        """, tmp_path)
    assert p.four_eyes is False
    assert p.groups == {"empty": [], "users": ["user:alice", "bob"]}


def test_every_problem_is_reported_with_its_position(tmp_path):
    found = problems(tmp_path, """
        fourEye: yes
        fourEyes: yes
        groups:
          finance: [alice, 42, "unix:", group:x, ops:y]
          bad:name: [a]
          one: alice
        bindings:
          - role: aprover
            subjects: [alice, group:finanse, role:x, "user:"]
            namespaces: [company.*.x, "*", a.b.*, 7]
          - role: viewer
          - roles: admin
            subjects: []
            namespaces: x
          - just a string
        """)
    assert found == [
        "1:1: unknown top-level key `fourEye`, did you mean `fourEyes`?",
        "2:11: `fourEyes` must be `true` or `false`, found `yes`",
        "4:20: a member of group `finance` must be an account name or `unix:GROUP`, found `42`",
        "4:24: `unix:` in group `finance` needs a name after `unix:`, e.g. `unix:wheel`",
        "4:33: groups do not nest: list the members of `x` in group `finance`, or use `unix:GROUP` for an OS group",
        "4:42: invalid member `ops:y` of group `finance`: write an account name or `unix:GROUP`",
        "5:3: invalid group name `bad:name`: a group name cannot be empty or contain `:` or spaces",
        "6:8: group `one` must be a list of members (e.g. `[alice, unix:wheel]`), found `alice`",
        "8:11: unknown role `aprover` (did you mean `approver`?); valid roles: viewer, requester, approver, editor, "
        "admin",
        "9:16: invalid subject `alice`: write `user:alice` for an account, `group:alice` for a policy group "
        "or `unix:alice` for an OS group",
        "9:23: `group:finanse` names no group defined under `groups`, did you mean `group:finance`?",
        "9:38: invalid subject `role:x`: write `user:NAME`, `group:NAME` or `unix:GROUP`",
        "9:46: invalid subject `user:`: the name after `user:` is empty",
        "10:18: invalid namespace pattern `company.*.x`: write `*`, a namespace like `company.team`, "
        "or `company.team.*` for everything below it",
        "10:43: invalid namespace pattern `7`: write `*`, a namespace like `company.team`, "
        "or `company.team.*` for everything below it",
        "11:5: the binding is missing `subjects`; add e.g. `subjects: [user:alice, group:finance]`",
        "11:5: the binding is missing `namespaces`; add e.g. `namespaces: [company.team, company.team.*]` "
        "or `[\"*\"]`",
        "12:5: unknown key `roles` in binding, did you mean `role`?",
        "12:5: the binding is missing `role`; add one of viewer, requester, approver, editor, admin",
        "13:15: `subjects` must be a non-empty list like `[user:alice, group:finance]`, found an empty list",
        "15:5: a binding must be a mapping with `role`, `subjects` and `namespaces`, found `just a string`",
    ]


def test_error_text_is_file_line_col_message(tmp_path):
    path = write(tmp_path, "fourEyes: 1\nbindings: [{role: admin, subjects: [user:a], namespaces: ['*']}]\n")
    with pytest.raises(FlowLoadError) as err:
        load_policy(path)
    assert str(err.value) == f"{path}:1:11: `fourEyes` must be `true` or `false`, found `1`"
    assert err.value.exit_code == 2


@pytest.mark.parametrize("text, expected", [
    ("", ["1:1: the policy file is empty; it needs at least `bindings` (see the README, \"Policy file\")"]),
    ("# just a comment\n",
     ["1:1: the policy file is empty; it needs at least `bindings` (see the README, \"Policy file\")"]),
    ("- role: admin\n", ["1:1: a policy file must be a mapping (`fourEyes`, `groups`, `bindings`), found a list"]),
    ("just text\n",
     ["1:1: a policy file must be a mapping (`fourEyes`, `groups`, `bindings`), found a scalar value"]),
    ("fourEyes: true\n---\nbindings: []\n",
     ["3:1: a policy file must hold exactly one YAML document; remove this second document"]),
    ("groups: {}\n", ["1:1: the policy has no `bindings`, so nobody could do anything; add e.g. "
                      "`bindings: [{role: admin, subjects: [user:NAME], namespaces: [\"*\"]}]`"]),
    ("bindings: []\n", ["1:11: the policy has no `bindings`, so nobody could do anything; add e.g. "
                        "`bindings: [{role: admin, subjects: [user:NAME], namespaces: [\"*\"]}]`"]),
    ("bindings: {role: admin}\n", ["1:11: `bindings` must be a list (`- role: ...`), found a mapping"]),
    ("groups: [a]\nbindings: [{role: admin, subjects: [user:a], namespaces: [a]}]\n",
     ["1:9: `groups` must be a mapping of group name to members (e.g. `finance: [alice, unix:wheel]`), "
      "found a list"]),
    ("colour: blue\nbindings: [{role: admin, subjects: [user:a], namespaces: [a]}]\n",
     ["1:1: unknown top-level key `colour`; a policy file has fourEyes, groups, bindings, signatures"]),
    ("bindings: [{role: boss, subjects: [user:a], namespaces: [a]}]\n",
     ["1:19: unknown role `boss`; valid roles: viewer, requester, approver, editor, admin"]),
    ("bindings: [{role: [admin], subjects: [user:a], namespaces: [a]}]\n",
     ["1:19: unknown role a list; valid roles: viewer, requester, approver, editor, admin"]),
    ("bindings: [{role: admin, subjects: [user:a], namespaces: [a], scope: x}]\n",
     ["1:63: unknown key `scope` in binding; a binding has role, subjects, namespaces, signatures"]),
    ("bindings: [{role: admin, subjects: [user:a], namespaces: {a: 1}}]\n",
     ["1:58: `namespaces` must be a non-empty list like `[company.team, company.team.*]`, found a mapping"]),
    ("bindings: [{role: admin, subjects: [group:ops], namespaces: [a]}]\n",
     ["1:37: `group:ops` names no group defined under `groups`; define it under `groups`"]),
    ("groups: {a: [x], b: [y]}\nbindings: [{role: admin, subjects: [group:zzz], namespaces: [a]}]\n",
     ["2:37: `group:zzz` names no group defined under `groups`; defined groups: a, b"]),
    ("bindings: [{role: admin, subjects: ['unix:', 5], namespaces: [a]}]\n",
     ["1:37: invalid subject `unix:`: the name after `unix:` is empty",
      "1:46: invalid subject `5`: write `user:NAME`, `group:NAME` or `unix:GROUP`"]),
    ("bindings: [{role: admin, subjects: [user:a], namespaces: ['a.', '.a', 'a..b', 'a*', '*.a', 'a.b.*.*', '']}]\n",
     [f"1:{col}: invalid namespace pattern `{pat}`: write `*`, a namespace like `company.team`, "
      "or `company.team.*` for everything below it"
      for col, pat in [(59, "a."), (65, ".a"), (71, "a..b"), (79, "a*"), (85, "*.a"), (92, "a.b.*.*")]]
     + ["1:103: invalid namespace pattern ``: write `*`, a namespace like `company.team`, "
        "or `company.team.*` for everything below it"]),
    ("groups:\n  g: [\"\", \"user:\"]\nbindings: [{role: admin, subjects: [group:g], namespaces: [a]}]\n",
     ["2:7: a member of group `g` is empty", "2:11: `user:` in group `g` needs a name after `user:`"]),
    ("bindings:\n  - role: admin\n    subjects: [user:a]\n    namespaces: [a]\n  - 42\n",
     ["5:5: a binding must be a mapping with `role`, `subjects` and `namespaces`, found `42`"]),
    ("bindings: [", ["2:1: YAML syntax error: did not find expected node content "
                     "(while parsing a flow node started at line 2, col 1)"]),
])
def test_file_problems(tmp_path, text, expected):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(FlowLoadError) as err:
        load_policy(path)
    assert [f"{p.location.line}:{p.location.col}: {p.message}" for p in err.value.problems] == expected


def test_unreadable_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as err:
        load_policy(tmp_path / "nope.yaml")
    assert str(err.value) == f"cannot read policy file {tmp_path / 'nope.yaml'}: No such file or directory"
    assert err.value.exit_code == 2


# -- namespaces, roles, actions ----------------------------------------------------------------
@pytest.mark.parametrize("pattern, namespace, expected", [
    ("*", "a", True), ("*", "company.finance.x", True), ("*", "*", True),
    ("company.finance", "company.finance", True), ("company.finance", "company.finance.x", False),
    ("company.finance", "company", False), ("company.finance", "company.financex", False),
    ("company.finance.*", "company.finance.x", True), ("company.finance.*", "company.finance.x.y", True),
    ("company.finance.*", "company.finance", False), ("company.finance.*", "company.financex", False),
    ("company.finance.*", "*", False), ("company.finance", "*", False),
])
def test_namespace_matching(pattern, namespace, expected):
    assert namespace_matches(pattern, namespace) is expected


def one_role(role: str, namespaces: str) -> FilePolicy:
    return FilePolicy(bindings=[Binding(role, ("user:u",), tuple(namespaces.split()))])


MATRIX = {  # role -> actions allowed (PERMISSIONS written out, so a change to it is noticed)
    "viewer": {"view"},
    "requester": {"view", "start", "cancel_own"},
    "approver": {"view", "decide"},
    "editor": {"view", "edit"},
    "admin": {"view", "start", "cancel_own", "cancel_any", "decide", "edit", "admin"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("patterns, namespace, inside", [
    ("*", "any.where", True), ("*", "*", True),
    ("co.fin", "co.fin", True), ("co.fin", "co.fin.sub", False), ("co.fin", "*", False),
    ("co.fin.*", "co.fin.sub.deep", True), ("co.fin.*", "co.fin", False), ("co.fin.*", "co.other", False),
    ("co.fin co.fin.*", "co.fin", True), ("co.fin co.fin.*", "co.fin.x", True),
])
def test_allows_matrix(role, action, patterns, namespace, inside):
    p = one_role(role, patterns)
    u = Identity("u", ("staff",))
    assert p.allows(u, action, namespace) is (inside and action in MATRIX[role])
    assert p.allows(Identity("someone-else", ("staff",)), action, namespace) is False
    assert p.roles(u, namespace) == ({role} if inside else set())
    assert MATRIX[role] == PERMISSIONS[role]


def test_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError):
        one_role("admin", "*").allows(Identity("u"), "delete", "a")


def test_bindings_add_up(tmp_path):
    p = policy("""
        groups: {finance: [alice]}
        bindings:
          - role: requester
            subjects: [user:alice]
            namespaces: [co.fin]
          - role: approver
            subjects: [group:finance]
            namespaces: [co.fin, co.hr]
          - role: viewer
            subjects: [unix:staff]
            namespaces: ["*"]
        """, tmp_path)
    alice = Identity("alice", ("staff",))
    assert p.roles(alice, "co.fin") == {"requester", "approver", "viewer"}
    assert {a for a in ACTIONS if p.allows(alice, a, "co.fin")} == {"view", "start", "cancel_own", "decide"}
    assert {a for a in ACTIONS if p.allows(alice, a, "co.hr")} == {"view", "decide"}
    assert {a for a in ACTIONS if p.allows(alice, a, "elsewhere")} == {"view"}
    assert p.allows(alice, "view", "*") and not p.allows(alice, "decide", "*")
    assert p.roles(Identity("alice"), "elsewhere") == set()  # not in staff: no viewer binding
    assert p.roles(Identity("mallory", ("nobody",)), "co.fin") == set()


def test_os_groups_through_unix_members_and_subjects(tmp_path):
    p = policy("""
        groups:
          ops: [unix:wheel, erin]
        bindings:
          - role: admin
            subjects: [group:ops]
            namespaces: [infra.*]
          - role: approver
            subjects: [unix:adm]
            namespaces: [infra.db]
        """, tmp_path)
    dave = Identity("dave", ("wheel",))
    assert p.allows(dave, "admin", "infra.net")
    assert p.roles(dave, "infra.db") == {"admin"}
    assert not p.allows(Identity("dave", ("users",)), "view", "infra.net")
    assert p.allows(Identity("erin"), "cancel_any", "infra.x")
    assert p.roles(Identity("zed", ("adm",)), "infra.db") == {"approver"}
    # an account named like an OS group is not a member of it
    assert not p.allows(Identity("wheel"), "view", "infra.net")


def test_in_group_policy_and_os_groups(tmp_path):
    p = policy("""
        groups:
          finance: [alice, user:bob]
          ops: [unix:wheel]
        bindings: [{role: viewer, subjects: [group:finance], namespaces: ["*"]}]
        """, tmp_path)
    alice, bob = Identity("alice", ("staff",)), Identity("bob")
    dave = Identity("dave", ("wheel",))
    assert p.in_group(alice, "finance") and p.in_group(bob, "finance")
    assert not p.in_group(dave, "finance")
    assert p.in_group(dave, "ops")  # policy group with an OS-group member
    assert p.in_group(dave, "wheel") and p.in_group(dave, "unix:wheel")  # the OS group directly
    assert p.in_group(alice, "staff") and p.in_group(alice, "unix:staff")
    assert not p.in_group(alice, "ops") and not p.in_group(alice, "unix:finance")
    assert not p.in_group(alice, "nosuch")


def test_describe(tmp_path):
    p = policy(ISSUE_EXAMPLE + """
  - role: viewer
    subjects: [unix:wheel]
    namespaces: ["*"]
  - role: requester
    subjects: [user:alice]
    namespaces: [company.finance]
""", tmp_path)
    assert p.describe(Identity("alice", ("wheel", "staff"))) == {
        "name": "alice", "groups": ["finance", "ops", "staff", "wheel"],
        "roles": {"*": ["viewer"], "company.finance": ["requester", "approver"],
                  "company.finance.*": ["approver"]},
        "single_user": False, "four_eyes": True}
    assert p.describe(Identity("nobody")) == {"name": "nobody", "groups": [], "roles": {},
                                              "single_user": False, "four_eyes": True}


def test_single_user_policy_unchanged():
    p = SingleUserPolicy()
    me = Identity("me", ("wheel",))
    assert p.single_user and not p.four_eyes
    assert all(p.allows(me, a, ns) for a in ACTIONS for ns in ("a", "*"))
    assert p.roles(me, "x") == set(ROLES)
    assert p.in_group(me, "wheel") and p.in_group(me, "unix:wheel") and not p.in_group(me, "ops")
    assert p.describe(me) == {"name": "me", "groups": ["wheel"], "roles": {"*": list(ROLES)},
                              "single_user": True, "four_eyes": False}


# -- through the real engine -------------------------------------------------------------------
def pause_flow(flow_id: str, namespace: str = "t.ns", extra: str = "") -> str:
    return f"""
id: {flow_id}
namespace: {namespace}
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
{textwrap.indent(textwrap.dedent(extra).strip(), "    ") if extra else ""}
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "done"
"""


FLOWS = {
    "plain.yaml": pause_flow("plain"),
    "selfok.yaml": pause_flow("selfok", extra="allowSelfApproval: true"),
    "finance.yaml": pause_flow("finance", extra="assignment:\n  groups: [finance]"),
    "carol.yaml": pause_flow("carol", extra="assignment:\n  users: [carol]"),
    "wheel.yaml": pause_flow("wheel", extra="assignment:\n  groups: [wheel]"),
    "other.yaml": pause_flow("other", namespace="x.ns"),
}

ENGINE_POLICY = """
groups:
  finance: [alice, bob]
bindings:
  - role: requester
    subjects: [user:rita, user:ralph, user:carol]
    namespaces: [t.ns]
  - role: viewer
    subjects: [user:victor]
    namespaces: ["*"]
  - role: approver
    subjects: [group:finance, user:carol, user:paul, unix:wheel]
    namespaces: [t.ns, t.ns.*]
  - role: approver
    subjects: [user:otto]
    namespaces: [x.ns]
  - role: admin
    subjects: [user:root]
    namespaces: ["*"]
"""

RITA, RALPH, CAROL = Identity("rita"), Identity("ralph"), Identity("carol")
VICTOR, OTTO, ROOT, PAUL = Identity("victor"), Identity("otto"), Identity("root"), Identity("paul")
ALICE, BOB, DAVE = Identity("alice", ("staff",)), Identity("bob"), Identity("dave", ("wheel",))


@pytest.fixture
def svc(tmp_path):
    return make_service(tmp_path, FLOWS, policy=load_policy(write(tmp_path, ENGINE_POLICY)))


def start(svc, who: Identity, flow: str, namespace: str = "t.ns") -> str:
    ex = svc.start_execution(who, namespace, flow, {})
    assert ex["state"] == "PAUSED"
    return ex["requests"][0]["id"]


def denials(svc, actor: str | None = None) -> list[dict]:
    rows = svc.db.query("SELECT * FROM audit WHERE action='policy.denied' ORDER BY seq")
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows if actor is None or r["actor"] == actor]


def test_viewer_cannot_approve_and_the_refusal_is_audited(svc):
    rid = start(svc, RITA, "plain")
    [out] = svc.approve(VICTOR, [rid])
    assert out.outcome == "not_eligible" and out.state == "PENDING"
    assert out.message == "victor may not decide requests in namespace t.ns (no approver or admin role)"
    [row] = denials(svc, "victor")
    assert row["request_id"] == rid and row["namespace"] == "t.ns"
    assert row["data"]["operation"] == "approve"
    assert svc.get_request(VICTOR, rid)["state"] == "PENDING"  # a viewer still sees it


def test_approver_of_another_namespace_is_not_eligible(svc):
    rid = start(svc, RITA, "plain")
    [out] = svc.approve(OTTO, [rid])
    assert out.outcome == "not_eligible"
    assert denials(svc, "otto")


def test_approver_decides(svc):
    rid = start(svc, RITA, "plain")
    [out] = svc.approve(BOB, [rid])
    assert out.outcome == "decided" and out.state == "APPROVED"
    assert svc.get_request(ROOT, rid)["decisions"][0]["by"] == "bob"
    assert denials(svc) == []


def test_four_eyes_by_default(svc):
    rid = start(svc, CAROL, "plain")  # carol is requester and approver of t.ns
    [out] = svc.approve(CAROL, [rid])
    assert out.outcome == "self_approval"
    [row] = denials(svc, "carol")
    assert row["data"]["reason"] == "four-eyes"
    [out] = svc.approve(ALICE, [rid])
    assert out.outcome == "decided"


def test_four_eyes_off_in_the_file(tmp_path):
    text = "fourEyes: false\n" + ENGINE_POLICY
    s = make_service(tmp_path, FLOWS, policy=load_policy(write(tmp_path, text)))
    rid = start(s, CAROL, "plain")
    [out] = s.approve(CAROL, [rid])
    assert out.outcome == "decided"


def test_allow_self_approval_on_the_task(svc):
    rid = start(svc, CAROL, "selfok")
    [out] = svc.approve(CAROL, [rid])
    assert out.outcome == "decided" and out.state == "APPROVED"


def test_requester_starts_viewer_is_refused(svc):
    assert start(svc, RITA, "plain")
    with pytest.raises(Refused) as err:
        svc.start_execution(VICTOR, "t.ns", "plain", {})
    assert str(err.value) == "victor may not start in namespace t.ns (flow t.ns.plain)"
    assert err.value.exit_code == 1
    [row] = denials(svc, "victor")
    assert row["data"] == {"operation": "start", "target": "flow t.ns.plain"}
    with pytest.raises(Refused):  # a requester of t.ns only
        svc.start_execution(RITA, "x.ns", "other", {})


def test_assignment_by_policy_group(svc):
    rid = start(svc, RITA, "finance")
    [out] = svc.approve(PAUL, [rid])  # an approver of t.ns, but not in finance
    assert out.outcome == "not_eligible"
    assert out.message == "paul is not assigned to this request (assigned to group finance)"
    [out] = svc.approve(ALICE, [rid])
    assert out.outcome == "decided" and out.state == "APPROVED"


def test_assignment_by_os_group(svc):
    rid = start(svc, RITA, "wheel")
    [out] = svc.approve(BOB, [rid])
    assert out.outcome == "not_eligible"
    [out] = svc.approve(DAVE, [rid])  # approver through `unix:wheel`, assigned through the OS group
    assert out.outcome == "decided"


def test_assignment_by_user(svc):
    rid = start(svc, RITA, "carol")
    [out] = svc.approve(ALICE, [rid])
    assert out.outcome == "not_eligible"
    assert out.message == "alice is not assigned to this request (assigned to carol)"
    [out] = svc.approve(CAROL, [rid])
    assert out.outcome == "decided"


def test_assignment_written_as_one_string(tmp_path):
    """`groups: finance` / `users: carol` (single strings, accepted by the flow loader) name one
    group / one user; they are not sequences of characters."""
    text = ENGINE_POLICY + "  - role: approver\n    subjects: [user:car, unix:f]\n    namespaces: [t.ns]\n"
    flows = {"fingroup.yaml": pause_flow("fingroup", extra="assignment:\n  groups: finance"),
             "carolstr.yaml": pause_flow("carolstr", extra="assignment:\n  users: carol")}
    s = make_service(tmp_path, flows, policy=load_policy(write(tmp_path, text)))
    rid = start(s, RITA, "fingroup")
    [out] = s.approve(Identity("eve", ("f",)), [rid])  # in OS group `f`, not in finance
    assert out.outcome == "not_eligible"
    [out] = s.approve(ALICE, [rid])
    assert out.outcome == "decided"
    rid = start(s, RITA, "carolstr")
    [out] = s.approve(Identity("car"), [rid])  # "car" is a substring of "carol", not carol
    assert out.outcome == "not_eligible"
    [out] = s.approve(CAROL, [rid])
    assert out.outcome == "decided"


def test_cancel_own_other_and_admin(svc):
    mine = start(svc, RITA, "plain")
    theirs = start(svc, RITA, "plain")
    third = start(svc, RITA, "plain")
    [out] = svc.cancel(RITA, [mine])
    assert out.outcome == "cancelled"
    [out] = svc.cancel(RALPH, [theirs])
    assert out.outcome == "not_eligible"
    assert out.message == f"ralph may not cancel request {theirs}: only the requester (rita) or an admin may"
    assert denials(svc, "ralph")[0]["data"] == {"operation": "cancel"}
    [out] = svc.cancel(BOB, [third])  # an approver may decide, not cancel
    assert out.outcome == "not_eligible"
    [out] = svc.cancel(ROOT, [theirs])
    assert out.outcome == "cancelled"


def test_list_pending_hides_namespaces_the_identity_cannot_view(svc):
    here = start(svc, RITA, "plain")
    there = start(svc, ROOT, "other", namespace="x.ns")
    assert [r["id"] for r in svc.list_pending(RITA)] == [here]
    assert [r["id"] for r in svc.list_pending(OTTO)] == [there]
    assert {r["id"] for r in svc.list_pending(VICTOR)} == {here, there}
    assert {r["id"] for r in svc.list_pending(ROOT)} == {here, there}
    assert svc.list_pending(Identity("stranger")) == []
    with pytest.raises(Refused):
        svc.get_request(RITA, there)
