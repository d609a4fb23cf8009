"""Contracts from a vendor's OpenAPI document (`upstreams.<name>.openapi`).

document.py reads and checks the file and lists its operations; schema.py converts its schemas to JSON Schema
2020-12; names.py names the handoffs; derive.py turns operations into the config's handoffs (at config load);
contract.py evaluates calls against an operation. What the loader found is `openapi_specs(config)`.
"""

from seamline.validate.openapi.derive import OpenAPISpecs, derive_handoffs, openapi_specs
from seamline.validate.openapi.document import OpenAPIDocument, OpenAPIError, Operation, Param, load_document

__all__ = [
    "OpenAPIDocument",
    "OpenAPIError",
    "OpenAPISpecs",
    "Operation",
    "Param",
    "derive_handoffs",
    "load_document",
    "openapi_specs",
]
