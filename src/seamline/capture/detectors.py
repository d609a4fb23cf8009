"""Free-text secret detectors: credential shapes found whatever key (if any) they sit under. Pure.

The patterns are detect-secrets' (Yelp, 1.5): each plugin class's `denylist`, imported here, not copied, so
an upgrade brings its fixes. Taken (detector name → plugin):

  jwt → JwtTokenDetector · aws-access-key-id, aws-secret-access-key → AWSKeyDetector · github → GitHubTokenDetector
  gitlab → GitLabTokenDetector · slack → SlackDetector · stripe → StripeDetector · private-key → PrivateKeyDetector
  sendgrid → SendGridDetector · openai → OpenAIDetector · pypi → PypiTokenDetector · square → SquareOAuthDetector
  azure-storage-key → AzureStorageKeyDetector · basic-auth-url → BasicAuthDetector · mailchimp → MailchimpDetector
  artifactory → ArtifactoryDetector (its `AKC…` API-key pattern only)

Left out, and why:
  Base64HighEntropyString, HexHighEntropyString: UUIDs, hashes, order and trace IDs, base64 payloads are all
    "high entropy"; they would blank the IDs a record exists to show. KeywordDetector: source-code heuristics
    (`password = …`); the key-name rules (JSON, form, XML, multipart, `name=value` text) do this for records.
  IPPublicDetector: an address is not a credential, and records need it. TwilioKeyDetector: `AC…`/`SK…` are
    account and key SIDs (identifiers that appear in every Twilio URL), not the secret.
  DiscordBotTokenDetector, TelegramBotTokenDetector: no literal anchor, so each costs a full regex pass of
    every text (6 and 17 µs per KiB here, more than all the anchored detectors together), for chat-bot tokens.
  NpmDetector: an `.npmrc` line shape whose leading `//.+` rescans the line for every `//` in a text.
  Cloudant, IbmCloudIam, IbmCosHmac, Softlayer: keyword-anchored like KeywordDetector (IBM's prefix is
    optional, so it fires on any `key = <44 chars>`), and with no literal anchor.
  ArtifactoryDetector's `AP[\\dA-F]…` pattern: it matches quoted upper-case codes (`"APACHE2LICENSE"`).

Added where detect-secrets 1.5 has nothing (shapes as published by the issuers / gitleaks' rules): Google API
keys (`AIza…`), Google OAuth access tokens (`ya29.…`) and client secrets (`GOCSPX-…`), GitHub fine-grained
tokens (`github_pat_…`) and classic ones of 20+ characters, Stripe test-mode secret keys (`sk_test_…`;
detect-secrets only has live ones), and
`Bearer`/`Basic` credentials inside text (`auth-credential`).

Speed: one alternation of all these patterns costs ~160 µs per KiB of text with Python's `re` (an alternation
loses the literal-prefix search each pattern has alone, ~1 µs per KiB). So the set is compiled once per
config into `SecretDetectors`, which runs a detector's pattern only when the text holds one of its literal
anchors (most texts hold none), each found by a regex that starts with that literal. A few detect-secrets
patterns stop short of the real token (Stripe keys are ~100 characters, its pattern takes 24; its JWT pattern
stops before the signature): those get a tail that extends the match over the rest of the token's characters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

REDACTED: Final = "[REDACTED]"
# Shorter texts cannot hold any detected shape (`://a:b@` is the shortest).
_MIN_LEN: Final = 7
# Delimiters some detect-secrets patterns consume around the token (`(?:\s|=|:|"|^)…(?:\s|"|$)`): kept in the output.
_EDGE: Final = " \t\r\n=:\"'"


@dataclass(frozen=True, slots=True)
class Detector:
    """One credential shape: `pattern` runs only when one of `gates` is found in the text (lower-cased when `fold`).

    A gate is a regex that starts with a literal, so `re` finds it as fast as `str.find` (~1 µs per KiB);
    `gates` empty: the pattern itself starts with a literal and its own search is the cheap test.
    `group`: 0 replaces the whole match (edge delimiters kept); n replaces only group n (the secret part).
    """

    name: str
    pattern: re.Pattern[str]
    gates: tuple[re.Pattern[str], ...] = ()
    fold: bool = False
    group: int = 0


_FLAGS: Final = ((re.IGNORECASE, "i"), (re.VERBOSE, "x"), (re.DOTALL, "s"), (re.MULTILINE, "m"))


def _scoped(p: re.Pattern[str]) -> str:
    """A plugin's compiled pattern as source with its flags scoped to it (`(?i:…)`), to be combined."""
    flags = "".join(f for flag, f in _FLAGS if p.flags & flag)
    return f"(?{flags}:{p.pattern})" if flags else f"(?:{p.pattern})"


def _any(patterns: Iterable[re.Pattern[str]]) -> str:
    return "|".join(_scoped(p) for p in patterns)


def _shapes() -> dict[str, Callable[[], Detector]]:
    """Detector name → its factory (plugins are imported on first use: detect-secrets takes ~250 ms to import)."""
    from detect_secrets.plugins.artifactory import ArtifactoryDetector
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.basic_auth import BasicAuthDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.mailchimp import MailchimpDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.private_key import PrivateKeyDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.square_oauth import SquareOAuthDetector
    from detect_secrets.plugins.stripe import StripeDetector

    aws_id, aws_secret = AWSKeyDetector.denylist
    stripe_live = StripeDetector.denylist[0]
    gitlab_prefixes = ("pat", "dt", "ft", "soat", "rt", "cbt", "imt", "ptt", "agent", "oas")  # gl…-
    # A PEM/OpenSSH/PGP block: the plugin's header through its END line (or the end of a truncated text, or
    # the closing quote of the JSON string it sits in). PuTTY files: through the Private-MAC line.
    pem = "|".join(p.pattern for p in PrivateKeyDetector.denylist if p.pattern.startswith("BEGIN"))
    putty = [p.pattern for p in PrivateKeyDetector.denylist if not p.pattern.startswith("BEGIN")]
    private_key = rf"-*\s*(?:{pem})-*[^\"]*?(?:-----END[A-Z0-9 ]*-----|(?=\")|\Z)"
    private_key += "".join(rf"|(?:{p})[^\"]*?(?:Private-MAC:\s*[0-9a-fA-F]+|(?=\")|\Z)" for p in putty)

    def d(name: str, source: str, gates: tuple[str, ...] = (), *, fold: bool = False, group: int = 0) -> Callable[[], Detector]:
        return lambda: Detector(name, re.compile(source), tuple(re.compile(g) for g in gates), fold, group)

    return {
        "jwt": d("jwt", _any(JwtTokenDetector.denylist) + r"[A-Za-z0-9_.=-]*"),
        "aws-access-key-id": d("aws-access-key-id", _scoped(aws_id), (r"A(?:3T|BIA|CCA|KIA|SIA)",)),
        "aws-secret-access-key": d("aws-secret-access-key", _scoped(aws_secret), ("aws",), fold=True, group=1),
        # Plus the looser `gh?_` + 20 Seamline redacted before (detect-secrets wants exactly 36).
        "github": d(
            "github",
            f"(?:{_any(GitHubTokenDetector.denylist)}|gh[pousr]_[A-Za-z0-9]{{20,}}|github_pat_[A-Za-z0-9_]{{22,}})[A-Za-z0-9_]*",
            (r"gh[pousr]_", "github_pat_"),
        ),
        "gitlab": d("gitlab", _any(GitLabTokenDetector.denylist), (f"gl(?:{'|'.join(gitlab_prefixes)})-", "GR1348941")),
        "slack": d("slack", _any(SlackDetector.denylist), ("xox", r"hooks\.slack\.com"), fold=True),
        "stripe": d(
            "stripe",
            f"(?:{_scoped(stripe_live)}|(?:r|s)k_test_[0-9a-zA-Z]{{24}})[0-9a-zA-Z]*",
            (r"k_(?:live|test)_",),
        ),
        "private-key": d("private-key", private_key, ("PRIVATE KEY", "PuTTY-User-Key-File")),
        "sendgrid": d("sendgrid", _any(SendGridDetector.denylist)),
        "openai": d("openai", _any(OpenAIDetector.denylist)),
        "pypi": d("pypi", _any(PypiTokenDetector.denylist)),
        "square": d("square", _any(SquareOAuthDetector.denylist)),
        "azure-storage-key": d("azure-storage-key", _any(AzureStorageKeyDetector.denylist)),
        "basic-auth-url": d("basic-auth-url", _any(BasicAuthDetector.denylist), group=1),
        "mailchimp": d("mailchimp", _any(MailchimpDetector.denylist), (r"-us\d",)),
        "artifactory": d("artifactory", _scoped(ArtifactoryDetector.denylist[0]), ("AKC",)),
        "google-api-key": d("google-api-key", r"AIza[0-9A-Za-z_-]{35}"),
        "google-oauth": d("google-oauth", r"ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{28}", (r"ya29\.", "GOCSPX-")),
        # A credential after an HTTP auth scheme in free text (`Authorization: Bearer …` in a log line or an
        # error body). It must hold a digit or a base64 character, so `basic information` is left alone.
        "auth-credential": d(
            "auth-credential",
            r"(?i:\b(?:bearer|basic))\s+((?=[A-Za-z._~:-]*[0-9+/=])[A-Za-z0-9._~+/=:-]{8,})",
            ("bearer", "basic"),
            fold=True,
            group=1,
        ),
    }


# The names are fixed here (and checked against `_shapes()` by the tests) so config validation needs no import.
DETECTOR_NAMES: Final = (
    "jwt",
    "aws-access-key-id",
    "aws-secret-access-key",
    "github",
    "gitlab",
    "slack",
    "stripe",
    "private-key",
    "sendgrid",
    "openai",
    "pypi",
    "square",
    "azure-storage-key",
    "basic-auth-url",
    "mailchimp",
    "artifactory",
    "google-api-key",
    "google-oauth",
    "auth-credential",
)


class SecretDetectors:
    """A compiled set of detectors; `redact(text, found)` replaces every detected credential by `[REDACTED]`."""

    __slots__ = ("_folded", "_plain", "detectors")

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.detectors = tuple(detectors)
        # Bound methods, looked up once: this loop runs for every text of every event (~20 steps, no match).
        self._plain = tuple(_step(d) for d in self.detectors if not d.fold)
        self._folded = tuple(_step(d) for d in self.detectors if d.fold)

    def redact(self, text: str, found: Callable[[str], None] | None = None) -> str:
        """`text` with detected credentials replaced; `found` is called with each credential replaced."""
        if len(text) < _MIN_LEN:
            return text
        for gates, search, sub, group in self._plain:
            if gates:
                for gate in gates:
                    if gate(text) is not None:
                        break
                else:
                    continue
            elif search(text) is None:
                continue
            text = sub(_replacer(group, found), text)
        if self._folded:
            low = text.lower()
            for gates, _, sub, group in self._folded:
                for gate in gates:
                    if gate(low) is not None:
                        text = sub(_replacer(group, found), text)
                        break
        return text

    def has_secret(self, text: str) -> bool:
        """True when any detector finds something in `text` (tests and fuzzing use it)."""
        return self.redact(text) != text


_Search = Callable[[str], "re.Match[str] | None"]
_Step = tuple[tuple[_Search, ...], _Search, Callable[[Callable[[re.Match[str]], str], str], str], int]


def _step(d: Detector) -> _Step:
    return tuple(g.search for g in d.gates), d.pattern.search, d.pattern.sub, d.group


def _replacer(group: int, found: Callable[[str], None] | None) -> Callable[[re.Match[str]], str]:
    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        if group:
            secret = m.group(group)
            if not secret or secret == REDACTED:
                return whole
            if found is not None:
                found(secret)
            start, end = m.start(group) - m.start(), m.end(group) - m.start()
            return whole[:start] + REDACTED + whole[end:]
        core = whole.strip(_EDGE)
        if not core or core == REDACTED:
            return whole
        if found is not None:
            found(core)
        lead = whole[: len(whole) - len(whole.lstrip(_EDGE))]
        trail = whole[len(whole.rstrip(_EDGE)) :]
        return f"{lead}{REDACTED}{trail}"

    return sub


def user_detector(index: int, source: str) -> Detector:
    """A `capture.redact_patterns` entry: its first group is the secret when it has one, else the whole match."""
    pattern = re.compile(source)
    return Detector(f"pattern-{index}", pattern, (), False, 1 if pattern.groups else 0)


@functools.lru_cache(maxsize=32)
def compile_detectors(names: tuple[str, ...], patterns: tuple[str, ...] = ()) -> SecretDetectors:
    """The detectors named (in `DETECTOR_NAMES` order) plus user patterns, compiled once and shared."""
    unknown = sorted(set(names) - set(DETECTOR_NAMES))
    if unknown:
        raise ValueError(f"unknown secret detector(s) {', '.join(unknown)}; known: {', '.join(DETECTOR_NAMES)}")
    shapes = _shapes() if names else {}
    chosen = [shapes[n]() for n in DETECTOR_NAMES if n in names]
    chosen.extend(user_detector(i, p) for i, p in enumerate(patterns))
    return SecretDetectors(chosen)
