"""The reviewer's YAML: comments where asked, and exactly the data when parsed back."""

from __future__ import annotations

import yaml

from seamline.learn.yamlout import Comment, dump, strip_comments


def test_dump_round_trips_through_a_yaml_parser_and_keeps_comments():
    data = {
        "handoffs": {
            "crm.create": {
                Comment("learned from 3 calls"): None,
                "match": "POST /v1/contacts",
                "contract": {
                    "status": [201],
                    "response_schema": {
                        "type": "object",
                        "properties": {"yes": {"type": "string", Comment("enum: [a, b]"): None}},
                    },
                    "extract": {Comment("owner_id: response.body.owner_id"): None},  # only comments: still a mapping
                    "assert": {"on": "response.body.status == 'open'"},
                },
                "tags": [{"name": "x: y", "n": 1}, "null", None, True, "012"],
            }
        }
    }
    text = dump(data, header="first\nsecond")
    assert text.startswith("# first\n# second\n")
    assert "# learned from 3 calls" in text and "# enum: [a, b]" in text and "# owner_id: response.body.owner_id" in text
    parsed = yaml.safe_load(text)
    assert parsed == strip_comments(data)
    assert parsed["handoffs"]["crm.create"]["contract"]["extract"] == {}
    assert parsed["handoffs"]["crm.create"]["tags"][1:] == ["null", None, True, "012"]  # quoting kept each type
