"""`seamline contracts suggest | diff`: the arguments, and the mistakes that end before anything is read."""

from __future__ import annotations

import io

import pytest

from seamline.cli import build_parser

CFG = """
upstreams:
  billing: {base_url: "https://api.billing.example"}
handoffs:
  billing.charge: {upstream: billing, match: POST /v1/charges}
"""


def run(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out=out, err=err), out.getvalue(), err.getvalue()


def test_suggest_wants_one_handoff_or_one_upstream(capsys):
    for argv in (["contracts", "suggest"], ["contracts", "suggest", "--handoff", "a.b", "--upstream", "a"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 2
    args = build_parser().parse_args(["contracts", "suggest", "--upstream", "billing", "--as", "openapi", "-o", "x.yaml"])
    assert (args.as_, args.output, args.since, args.max_calls) == ("openapi", "x.yaml", "7d", 20_000)


def test_names_the_config_does_not_know_and_a_missing_config_end_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEAMLINE_CONFIG", raising=False)
    (tmp_path / "s.yaml").write_text(CFG)
    code, _, err = run("contracts", "suggest", "--handoff", "billing.refund", "-c", "s.yaml")
    assert code == 2 and "'billing.refund' is not a handoff of the config (known: billing.charge)" in err
    code, _, err = run("contracts", "diff", "--upstream", "crm", "-c", "s.yaml")
    assert code == 2 and "'crm' is not an upstream of the config" in err
    code, _, err = run("contracts", "diff", "--upstream", "billing")
    assert code == 2 and "pass --config" in err
    code, _, err = run("contracts", "suggest", "--upstream", "billing", "-c", "s.yaml", "--since", "yesterday")
    assert code == 2 and "since: 'yesterday'" in err


def test_an_unreachable_admin_api_is_exit_2_with_the_next_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run("contracts", "suggest", "--upstream", "billing", "--admin-url", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the Seamline admin API at http://127.0.0.1:9" in err
