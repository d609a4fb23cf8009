"""Operations become handoffs: at config load, for every upstream with an `openapi` document.

Each operation is a handoff `<upstream>.<slug>` (names.py) matching its method and path template, with the default
safety of its method (document.default_safety), unless a handoff of the config already has that method and path
(parameter names aside): that handoff is then the operation's, under the config's name; its own `safety` wins if it
sets one, and its contract adds to the document's (contract.py). A config handoff matching any method (`* /path`)
binds no operation: the derived ones, more specific, are matched first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seamline.config.models import Config, Handoff
from seamline.validate.openapi.document import OpenAPIDocument, OpenAPIError, Operation, load_document
from seamline.validate.openapi.names import same_route


@dataclass(frozen=True, slots=True)
class OpenAPISpecs:
    """The documents the config's upstreams name, and which handoff is which operation."""

    documents: dict[str, OpenAPIDocument] = field(default_factory=dict)  # by upstream name
    bindings: dict[str, tuple[str, int]] = field(default_factory=dict)  # handoff → (upstream, operation index)
    derived: frozenset[str] = frozenset()  # handoffs the config did not name

    def operation(self, handoff: str) -> Operation | None:
        b = self.bindings.get(handoff)
        return self.documents[b[0]].operations[b[1]] if b is not None else None


def openapi_specs(config: Config) -> OpenAPISpecs:
    """What `derive_handoffs` found for this config (empty for a config without `openapi` upstreams)."""
    specs = config.openapi_specs
    return specs if isinstance(specs, OpenAPISpecs) else OpenAPISpecs()


def derive_handoffs(cfg: Config, base: Path) -> Config:
    """The config with every operation of its upstreams' documents as a handoff; raises OpenAPIError (upstream named)."""
    if not any(up.openapi for up in cfg.upstreams.values()):
        return cfg
    documents: dict[str, OpenAPIDocument] = {}
    bindings: dict[str, tuple[str, int]] = {}
    handoffs = dict(cfg.handoffs)
    derived: set[str] = set()
    taken = set(cfg.handoffs)
    for name, up in cfg.upstreams.items():
        if not up.openapi:
            continue
        try:
            doc = load_document(base / up.openapi, name, taken)
        except OpenAPIError as e:
            raise OpenAPIError(f"upstreams.{name}.openapi: {e}") from None
        documents[name] = doc
        own = [(hn, h) for hn, h in cfg.handoffs.items() if h.upstream == name and h.method != "*"]
        for i, op in enumerate(doc.operations):
            bound = next((hn for hn, h in own if h.method == op.method and same_route(h.path_template, op.path)), None)
            if bound is None:
                handoffs[op.handoff] = Handoff(upstream=name, match=op.match, safety=op.safety)
                derived.add(op.handoff)
                bindings[op.handoff] = (name, i)
            elif bound not in bindings:
                h = handoffs[bound]
                if "safety" not in h.model_fields_set:
                    handoffs[bound] = h.model_copy(update={"safety": op.safety})
                bindings[bound] = (name, i)
    out = cfg.model_copy(update={"handoffs": handoffs})
    out._openapi = OpenAPISpecs(documents, bindings, frozenset(derived))
    return out
