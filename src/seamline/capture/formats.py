"""Key-name redaction for the text body formats other than JSON: multipart forms, XML, sniffed form bodies. Pure.

Each helper redacts the values whose name is a secret by the policy (multipart and form fields by the
query/form rule, XML elements and attributes by the body-key rule) and collects them in the redactor, so
the exchange-wide scrub removes them elsewhere too. Detected credential shapes are handled afterwards by the
redactor's scrub, whatever the format.
"""

from __future__ import annotations

import re
from typing import Final

from seamline.capture.redact import REDACTED, Redactor

# A form body: `name=value` pairs joined by `&`, nothing else (no spaces, no newlines).
_FORM_RE = re.compile(r"[\w.%+*\[\]-]+=[^&\s]*(?:&[\w.%+*\[\]-]+=?[^&\s]*)*")
_XML_OPEN_RE = re.compile(r"<((?:[\w.-]+:)?([\w.-]+))(\s[^<>]*?)?(/?)>")
_XML_ATTR_RE = re.compile(r"""(\s(?:[\w.-]+:)?)([\w.-]+)(\s*=\s*)(["'])(.*?)\4""", re.S)
_CDATA_RE = re.compile(r"^\s*<!\[CDATA\[(.*?)\]\]>\s*$", re.S)
_DISPOSITION_NAME_RE = re.compile(r"""(?im)^content-disposition:[^\r\n]*?\bname\s*=\s*(?:"([^"]*)"|([^\s;]+))""")
_HEADER_END_RE = re.compile(r"\r?\n\r?\n")
_MAX_PARTS: Final = 1000


def looks_like_form(text: str) -> bool:
    """`a=b&c=d` (a body sent without a Content-Type, or as text/plain)."""
    return "=" in text and _FORM_RE.fullmatch(text.strip()) is not None


def looks_like_xml(text: str) -> bool:
    """Starts with `<` and is not HTML (HTML's `<input name=password value=…>` is not an element to redact)."""
    head = text.lstrip()[:15].lower()
    return head.startswith("<") and not head.startswith(("<!doctype html", "<html"))


def multipart_boundary(content_type: str | None) -> str | None:
    """The boundary parameter of a multipart Content-Type."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        k, _, v = param.partition("=")
        if k.strip().lower() == "boundary":
            return v.strip().strip('"') or None
    return None


def redact_multipart(text: str, boundary: str, redactor: Redactor) -> str:
    """Each part whose `Content-Disposition` name is secret gets its content replaced; other parts' text pairs too."""
    delimiter = f"--{boundary}"
    chunks = text.split(delimiter, _MAX_PARTS)
    for i in range(1, len(chunks)):
        chunk = chunks[i]
        end = _HEADER_END_RE.search(chunk)
        if end is None:
            continue
        head, body = chunk[: end.end()], chunk[end.end() :]
        m = _DISPOSITION_NAME_RE.search(head)
        # The content ends at the line break before the next delimiter.
        content, tail = (body[:-2], body[-2:]) if body.endswith("\r\n") else (body, "")
        if m is not None and redactor.policy.param_is_secret(m.group(1) or m.group(2) or ""):
            if content:
                redactor.add_secret(content)
                chunks[i] = f"{head}{REDACTED}{tail}"
        else:
            new = redactor.redact_text_pairs(content)
            if new is not content:
                chunks[i] = f"{head}{new}{tail}"
    return delimiter.join(chunks)


def redact_xml(text: str, redactor: Redactor) -> str:
    """Contents of elements and values of attributes whose (local) name is secret: `<password>…</password>`."""
    rule = redactor.policy.body_key
    if not rule.may_match(text):
        return text
    text = _XML_ATTR_RE.sub(lambda m: _attr(m, redactor), text)
    out: list[str] = []
    pos = 0
    for m in _XML_OPEN_RE.finditer(text):
        if m.start() < pos or m.group(4) or not rule(m.group(2)):
            continue
        close = text.find(f"</{m.group(1)}", m.end())
        if close < 0:
            close = len(text)  # a truncated capture: everything after the opening tag
        inner = text[m.end() : close]
        if not inner.strip() or inner == REDACTED:
            continue
        cdata = _CDATA_RE.match(inner)
        redactor.add_secret(cdata.group(1) if cdata else inner)
        out.append(text[pos : m.end()])
        out.append(REDACTED)
        pos = close
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _attr(m: re.Match[str], redactor: Redactor) -> str:
    value = m.group(5)
    if not value or value == REDACTED or not redactor.policy.body_key(m.group(2)):
        return m.group(0)
    redactor.add_secret(value)
    return f"{m.group(1)}{m.group(2)}{m.group(3)}{m.group(4)}{REDACTED}{m.group(4)}"
