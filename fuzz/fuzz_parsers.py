"""Coverage-guided fuzzing (atheris) of the parsers and redaction; not part of the test suite.

    python -m venv /tmp/fuzz-venv && /tmp/fuzz-venv/bin/pip install atheris      # atheris 3.0 has cp311 wheels
    PYTHONPATH=src:$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])') \
        /tmp/fuzz-venv/bin/python fuzz/fuzz_parsers.py <target> [libFuzzer flags, e.g. -runs=200000 -max_len=4096]

Targets: `redact` (a body of any content type through render_body, plus URL, headers and error text; a planted
JWT and AWS key ID must not survive), `tracecontext` (traceparent/tracestate/baggage/run ID), `routing`
(reverse-mode targets), `config` (YAML through load_config). A crash, a hang (libFuzzer's -timeout) or a
surviving secret stops the run and leaves the input in ./crash-*; re-run the target with that file to replay it.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import atheris

with atheris.instrument_imports():
    from seamline.capture.bodies import render_body
    from seamline.capture.error_text import MAX_ERROR_TEXT, safe_error_text
    from seamline.capture.redact import RedactionPolicy
    from seamline.config.loader import ConfigError, load_config
    from seamline.config.models import Capture, Config
    from seamline.errors import ProxyError
    from seamline.ids import is_valid_run_id
    from seamline.proxy.inbound import baggage_member
    from seamline.proxy.routing import Router
    from seamline.proxy.tracecontext import incoming_context, parse_traceparent, parse_tracestate

POLICY = RedactionPolicy.from_config(Capture())
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2lnbmF0dXJlLW9mLXRoZS1mdXp6ZXI"
AWS = "AKIAFUZZFUZZFUZZFUZZ"
CTYPES = [None, "application/json", "text/plain", "application/xml", "multipart/form-data; boundary=b",
          "application/x-www-form-urlencoded", "text/html", "application/problem+json"]  # fmt: skip
ROUTER = Router(
    Config(
        upstreams={"crm": {"base_url": "https://crm.example/api"}},
        handoffs={"crm.get": {"upstream": "crm", "match": "GET /contacts/{id}"}},
    )
)
CONFIG_DIR = Path(tempfile.mkdtemp(prefix="seamline-fuzz-"))


def redact(fdp: atheris.FuzzedDataProvider) -> None:
    ctype = CTYPES[fdp.ConsumeIntInRange(0, len(CTYPES) - 1)]
    head = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 2048))
    tail = fdp.ConsumeUnicodeNoSurrogates(2048)
    body = f"{head} {JWT} {AWS} {tail}".encode()
    r = POLICY.redactor()
    out = render_body(body, content_type=ctype, content_encoding=None, truncated=False, total_bytes=len(body), redactor=r).text
    if not out.startswith("[binary"):
        assert JWT not in out and AWS not in out, (ctype, out[:500])
    url = r.redact_url(f"https://api.example.com/{quote(head[:200])}?q={quote(tail[:200], safe='')}&t={JWT}")
    assert JWT not in url, url
    r.redact_headers([(head[:40], tail[:200]), ("x-debug", f"{head[:100]} {AWS}")])
    err = safe_error_text(f"{head} {AWS} {tail}", POLICY)
    assert len(err) <= MAX_ERROR_TEXT and AWS not in err, err


def tracecontext(fdp: atheris.FuzzedDataProvider) -> None:
    values = [fdp.ConsumeUnicodeNoSurrogates(300) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    parse_traceparent(values)
    parse_tracestate(values)
    incoming_context(values[:1], values[1:])
    baggage_member(values, "run_id")
    is_valid_run_id(values[0] if values else "")


def routing(fdp: atheris.FuzzedDataProvider) -> None:
    method = fdp.ConsumeUnicodeNoSurrogates(8) or "GET"
    try:
        t = ROUTER.resolve_reverse(method, fdp.ConsumeUnicodeNoSurrogates(1024))
    except ProxyError:
        return
    assert t.url.host == "crm.example", t.url


def config(fdp: atheris.FuzzedDataProvider) -> None:
    path = CONFIG_DIR / "seamline.yaml"
    path.write_bytes(fdp.ConsumeBytes(4096))
    with contextlib.suppress(ConfigError):
        load_config(path)


TARGETS = {"redact": redact, "tracecontext": tracecontext, "routing": routing, "config": config}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz_parsers.py {{{'|'.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, lambda data: target(atheris.FuzzedDataProvider(data)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
