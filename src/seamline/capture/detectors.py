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
loses the literal-prefix search each pattern has alone), and one literal scan per detector (~20 of them) still
cost ~40 µs per KiB plus ~7 µs per text, most of an event's build. So each detector names its *anchors*:
literals, one of which (ASCII case ignored) every text it matches contains. All anchors of the set go into one
Aho-Corasick automaton (the `aho-corasick` Rust crate, via ahocorasick-rs), compiled once per config into
`SecretDetectors`: one linear pass over the text (~1 µs per KiB) says which detectors can match, and only those
run their pattern (most texts: none). Detectors without anchors (`capture.redact_patterns`) run on every text.
A few detect-secrets patterns stop short of the real token (Stripe keys are ~100 characters, its pattern takes
24; its JWT pattern stops before the signature): those get a tail that extends the match over the rest of the
token's characters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from ahocorasick_rs import BytesAhoCorasick, Implementation

REDACTED: Final = "[REDACTED]"
# Shorter texts cannot hold any detected shape (`://a:b@` is the shortest).
_MIN_LEN: Final = 7
# Delimiters some detect-secrets patterns consume around the token (`(?:\s|=|:|"|^)…(?:\s|"|$)`): kept in the output.
_EDGE: Final = " \t\r\n=:\"'"


@dataclass(frozen=True, slots=True)
class Detector:
    """One credential shape: `pattern` runs only on a text holding one of `anchors` (ASCII case ignored).

    Each anchor is a literal that every match of `pattern` contains (the tests check this on every shape
    of the leak corpus): absent all of them, the pattern cannot match, so it is not run. No anchors: the
    pattern runs on every text.
    `group`: 0 replaces the whole match (edge delimiters kept); n replaces only group n (the secret part).
    `late`: runs after the others (see `SecretDetectors`).
    """

    name: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...] = ()
    group: int = 0
    late: bool = False


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

    def d(name: str, source: str, anchors: Iterable[str], *, group: int = 0, late: bool = False) -> Callable[[], Detector]:
        return lambda: Detector(name, re.compile(source), tuple(anchors), group, late)

    def each(head: str, tails: Iterable[str]) -> list[str]:
        return [head + t for t in tails]

    return {
        "jwt": d("jwt", _any(JwtTokenDetector.denylist) + r"[A-Za-z0-9_.=-]*", ["eyJ"]),
        "aws-access-key-id": d("aws-access-key-id", _scoped(aws_id), ["A3T", "ABIA", "ACCA", "AKIA", "ASIA"]),
        "aws-secret-access-key": d("aws-secret-access-key", _scoped(aws_secret), ["aws"], group=1, late=True),
        # Plus the looser `gh?_` + 20 Seamline redacted before (detect-secrets wants exactly 36).
        "github": d(
            "github",
            f"(?:{_any(GitHubTokenDetector.denylist)}|gh[pousr]_[A-Za-z0-9]{{20,}}|github_pat_[A-Za-z0-9_]{{22,}})[A-Za-z0-9_]*",
            [*each("gh", ("p_", "o_", "u_", "s_", "r_")), "github_pat_"],
        ),
        "gitlab": d("gitlab", _any(GitLabTokenDetector.denylist), [*each("gl", (f"{p}-" for p in gitlab_prefixes)), "GR1348941"]),
        "slack": d("slack", _any(SlackDetector.denylist), ["xox", "hooks.slack.com"], late=True),
        "stripe": d(
            "stripe",
            f"(?:{_scoped(stripe_live)}|(?:r|s)k_test_[0-9a-zA-Z]{{24}})[0-9a-zA-Z]*",
            ["k_live_", "k_test_"],
        ),
        "private-key": d("private-key", private_key, ["PRIVATE KEY", "PuTTY-User-Key-File"]),
        "sendgrid": d("sendgrid", _any(SendGridDetector.denylist), ["SG."]),
        "openai": d("openai", _any(OpenAIDetector.denylist), ["T3BlbkFJ"]),
        "pypi": d("pypi", _any(PypiTokenDetector.denylist), ["pypi-AgE"]),
        "square": d("square", _any(SquareOAuthDetector.denylist), ["sq0csp-"]),
        "azure-storage-key": d("azure-storage-key", _any(AzureStorageKeyDetector.denylist), ["AccountKey="]),
        "basic-auth-url": d("basic-auth-url", _any(BasicAuthDetector.denylist), ["://"], group=1),
        "mailchimp": d("mailchimp", _any(MailchimpDetector.denylist), each("-us", "0123456789")),
        "artifactory": d("artifactory", _scoped(ArtifactoryDetector.denylist[0]), ["AKC"]),
        "google-api-key": d("google-api-key", r"AIza[0-9A-Za-z_-]{35}", ["AIza"]),
        "google-oauth": d("google-oauth", r"ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{28}", ["ya29.", "GOCSPX-"]),
        # A credential after an HTTP auth scheme in free text (`Authorization: Bearer …` in a log line or an
        # error body). It must hold a digit or a base64 character, so `basic information` is left alone.
        "auth-credential": d(
            "auth-credential",
            r"(?i:\b(?:bearer|basic))\s+((?=[A-Za-z._~:-]*[0-9+/=])[A-Za-z0-9._~+/=:-]{8,})",
            ["bearer", "basic"],
            group=1,
            late=True,
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

    __slots__ = ("_always", "_automaton", "_owners", "_steps", "detectors")

    def __init__(self, detectors: Iterable[Detector]) -> None:
        # Run order: as given, `late` ones last. Each detector sees the text as the previous ones left it, so
        # the order is part of the behaviour (`…[REDACTED]Bearer x` has the word boundary `\bbearer` needs, a
        # Stripe key's tail can swallow a glued `xoxb-`); this is the order the detectors have always run in.
        self.detectors = tuple(sorted(detectors, key=lambda d: d.late))
        # Bound methods, looked up once: `redact` runs for every text of every event.
        self._steps = tuple((d.pattern.search, d.pattern.sub, d.group) for d in self.detectors)
        self._always = tuple(i for i, d in enumerate(self.detectors) if not d.anchors)
        anchors: dict[bytes, list[int]] = {}
        for i, d in enumerate(self.detectors):
            for a in d.anchors:
                if not a.isascii():
                    raise ValueError(f"detector {d.name}: anchor {a!r} is not ASCII")  # matched on bytes.lower()
                anchors.setdefault(a.lower().encode(), []).append(i)
        # Pattern index → the detectors it unlocks. Overlapping matches: an anchor inside or across another is found.
        self._owners = tuple(tuple(v) for v in anchors.values())
        self._automaton = BytesAhoCorasick(list(anchors), implementation=Implementation.DFA) if anchors else None

    def candidates(self, text: str) -> list[int]:
        """Indexes (in order) of the detectors that can match `text`: one pass for all anchors."""
        if len(text) < _MIN_LEN:
            return []
        always = self._always
        automaton = self._automaton
        if automaton is None:
            return list(always)
        # bytes.lower() folds ASCII only, as the anchors are; surrogatepass: header values may hold escapes.
        hits = automaton.find_matches_as_indexes(text.encode("utf-8", "surrogatepass").lower(), True)
        if not hits:
            return list(always)
        owners = self._owners
        found = set(always)
        for p, _, _ in hits:
            found.update(owners[p])
        return sorted(found)

    def may_find(self, text: str) -> bool:
        """Cheap necessary condition for `redact` to change `text` (an anchor, or a pattern without anchors)."""
        return bool(self.candidates(text))

    def redact(self, text: str, found: Callable[[str], None] | None = None) -> str:
        """`text` with detected credentials replaced; `found` is called with each credential replaced."""
        steps = self._steps
        for i in self.candidates(text):
            search, sub, group = steps[i]
            if search(text) is not None:
                text = sub(_replacer(group, found), text)
        return text

    def has_secret(self, text: str) -> bool:
        """True when any detector finds something in `text` (tests and fuzzing use it)."""
        return self.redact(text) != text


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
    return Detector(f"pattern-{index}", pattern, (), 1 if pattern.groups else 0, False)


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
