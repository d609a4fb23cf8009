"""When events are built in the engine process rather than in the proxy."""

from __future__ import annotations

from seamline.record.offload import offload_pays


def test_the_offload_is_used_only_when_the_engine_can_run_beside_the_proxy() -> None:
    assert offload_pays({0, 1}, None)  # an unpinned sidecar on two CPUs
    assert offload_pays({1}, [0])  # proxy pinned, engine pinned elsewhere
    assert not offload_pays({1}, None)  # everything on one CPU: the round trip would only add work
    assert not offload_pays({1}, [1])
    assert offload_pays(None, None)  # not Linux: cannot tell, assume several
