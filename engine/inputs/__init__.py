"""Flow input declarations (Kestra's input types) and validation of their values."""
from signoff.engine.inputs.parse import ID_PATTERN, parse_input_specs
from signoff.engine.inputs.spec import INPUT_TYPES, ITEM_TYPES, DependsOn, InputSpec
from signoff.engine.inputs.uploads import MAX_FILE_BYTES, paths_to_uploads
from signoff.engine.inputs.validate import (
    InputError,
    ValidationResult,
    coerce_value,
    nest_values,
    select_choices,
    show_value,
    validate_inputs,
)

__all__ = [
    "ID_PATTERN", "INPUT_TYPES", "MAX_FILE_BYTES", "ITEM_TYPES", "DependsOn", "InputError", "InputSpec",
    "ValidationResult", "coerce_value", "nest_values", "parse_input_specs", "paths_to_uploads", "select_choices",
    "show_value", "validate_inputs",
]
