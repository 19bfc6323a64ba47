"""Schemathesis hooks for scripts/api-contract.sh (loaded through SCHEMATHESIS_HOOKS).

JSON Schema states each field's limits, and the served document declares them all; it cannot
state two rules of this API, which the document says in prose instead:
  - a `cursor` is opaque: only a `next_cursor` the API gave is one (400 `invalid_cursor`);
  - a simulation's fields must fit together (events at its rate within the maximum event
    age, the fault ratios' sum, the retry distance): 422 `inconsistent_request`.
A schema-valid request refused for one of these two reasons, and for no other, is not a
broken contract. Every other refusal of a schema-valid request still fails the run.
"""

import json

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

# The error code the API answers for each rule, and the operations it may answer it on.
STATED_IN_PROSE = {
    "invalid_cursor": None,  # any paged operation, when the request carried a cursor
    "inconsistent_request": {("POST", "/api/simulations")},
}


def _error_code(response):
    try:
        return json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if not isinstance(failure, RejectedPositiveData):
        return True
    code = _error_code(response)
    if code == "invalid_cursor":
        return "cursor" not in (case.query or {})
    operations = STATED_IN_PROSE.get(code)
    if operations is not None:
        return (case.method.upper(), case.path) not in operations
    return True
