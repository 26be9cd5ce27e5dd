"""Declaration of one input (flow ``inputs``, Pause ``onResume``, Approval ``inputs``)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from signoff.engine.errors import Location

INPUT_TYPES = (
    "STRING", "INT", "FLOAT", "BOOLEAN", "BOOL", "SELECT", "MULTISELECT", "DATE", "DATETIME",
    "TIME", "DURATION", "JSON", "YAML", "URI", "EMAIL", "SECRET", "FILE", "ARRAY",
)


@dataclass
class DependsOn:
    inputs: list[str] = field(default_factory=list)
    condition: str | bool | None = None  # a template (or a constant); the input is shown/validated only when true


@dataclass
class InputSpec:
    id: str  # may be dotted ("nested.more.int"); values are then nested maps
    type: str  # one of INPUT_TYPES, after aliases (ENUM -> SELECT) are resolved
    display_name: str | None = None
    description: str | None = None
    required: bool = True
    defaults: Any = None  # may be a template string, rendered at validation time
    depends_on: DependsOn | None = None
    validator: str | None = None  # regex, STRING/SECRET
    min: Any = None  # INT, FLOAT, DURATION
    max: Any = None
    after: Any = None  # DATE, DATETIME, TIME
    before: Any = None
    values: list[Any] | str | None = None  # SELECT, MULTISELECT (may be a template string)
    allow_custom_value: bool = False
    item_type: str | None = None  # ARRAY
    location: Location | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.description or self.id

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, frozen into approval requests and sent over the API."""
        return {
            "id": self.id, "type": self.type, "displayName": self.display_name,
            "description": self.description, "required": self.required, "defaults": self.defaults,
            "dependsOn": None if self.depends_on is None else {
                "inputs": self.depends_on.inputs, "condition": self.depends_on.condition},
            "validator": self.validator, "min": self.min, "max": self.max,
            "after": self.after, "before": self.before, "values": self.values,
            "allowCustomValue": self.allow_custom_value, "itemType": self.item_type,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        dep = d.get("dependsOn")
        return cls(
            id=d["id"], type=d["type"], display_name=d.get("displayName"),
            description=d.get("description"), required=d.get("required", True),
            defaults=d.get("defaults"),
            depends_on=None if not dep else DependsOn(dep.get("inputs") or [], dep.get("condition")),
            validator=d.get("validator"), min=d.get("min"), max=d.get("max"),
            after=d.get("after"), before=d.get("before"), values=d.get("values"),
            allow_custom_value=bool(d.get("allowCustomValue")), item_type=d.get("itemType"),
        )


def mask(specs: Iterable[InputSpec | Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the value of every SECRET input replaced by ``***`` (for the audit and
    what approvers see). ``specs``: InputSpecs, or their :meth:`InputSpec.to_dict` form (the
    form frozen into an approval request)."""
    if not values:
        return {}
    secret = {s.id if isinstance(s, InputSpec) else s["id"] for s in specs
              if (s.type if isinstance(s, InputSpec) else s.get("type")) == "SECRET"}
    return {k: ("***" if k in secret else v) for k, v in values.items()}


# --- additions (inputs parsing/validation) -------------------------------------------------

# Older Kestra spellings, resolved when a declaration is parsed.
TYPE_ALIASES = {"ENUM": "SELECT"}

# Types an ARRAY's ``itemType`` may name.
ITEM_TYPES = (
    "STRING", "INT", "FLOAT", "BOOLEAN", "BOOL", "DATE", "DATETIME", "TIME", "DURATION",
    "JSON", "YAML", "URI", "EMAIL",
)

# Properties every input may carry (YAML spelling), and those only some types accept.
COMMON_PROPERTIES = ("id", "type", "displayName", "description", "required", "defaults", "dependsOn")
TYPE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "STRING": ("validator",), "SECRET": ("validator",),
    "INT": ("min", "max"), "FLOAT": ("min", "max"), "DURATION": ("min", "max"),
    "DATE": ("after", "before"), "DATETIME": ("after", "before"), "TIME": ("after", "before"),
    "SELECT": ("values", "allowCustomValue"), "MULTISELECT": ("values", "allowCustomValue"),
    "ARRAY": ("itemType",),
}


def allowed_properties(type_: str) -> tuple[str, ...]:
    """YAML properties an input of ``type_`` (after aliases) may carry."""
    return COMMON_PROPERTIES + TYPE_PROPERTIES.get(type_, ())
