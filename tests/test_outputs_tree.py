"""The outputs tree of nested ForEach loops has one shape (engine/runtime/outputs.py): the one the
runner gives later tasks while it walks, and the one the service rebuilds from stored task runs."""
from __future__ import annotations

from tests.support import ALICE, make_service

NESTED = """
id: nested
namespace: t.ns
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.ForEach
        values: [1, 2]
        tasks:
          - id: each
            type: io.kestra.plugin.core.debug.Return
            format: "{{ parents[0].taskrun.value }}{{ taskrun.value }}"
  - id: seen
    type: io.kestra.plugin.core.debug.Echo
    format: "{{ outputs.each['a']['2'].value }} {{ outputs.each['b']['1'].value }}"
"""


def test_nested_foreach_outputs_have_one_shape(tmp_path) -> None:
    svc = make_service(tmp_path, {"nested.yaml": NESTED})
    ex = svc.start_execution(ALICE, "t.ns", "nested", {})
    assert ex["state"] == "SUCCESS", ex["error"]
    # what the runner gave the Echo while walking ...
    assert [log["message"] for log in ex["logs"]] == ["a2 b1"]
    # ... is where the service's rebuilt tree has it
    each = ex["outputs"]["each"]
    assert {k: {i: v["value"] for i, v in inner.items()} for k, inner in each.items()} == {
        "a": {"1": "a1", "2": "a2"}, "b": {"1": "b1", "2": "b2"}}
    svc.engine.close()
