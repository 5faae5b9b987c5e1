"""A webhook source's settings are validated with every problem named, and its mapping turns a payload into
the publish message the purge function decodes (or says in one line why it cannot)."""

from __future__ import annotations

import json

import pytest
from reliability.tally import hostile

from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge.core.webhooks.mapping import MappingError, is_wanted, publish_message

PROVIDERS = "providers: [{name: fastly, kind: fastly, service_id: S, hosts: [www.example.com]}]\n"


def config_with(webhooks: str) -> str:
    return PROVIDERS + "webhooks:\n" + webhooks


def test_every_problem_of_the_webhook_list_is_named() -> None:
    text = config_with(
        """
  - {name: cms, scheme: standard, secret: {secret: s}, map: {keys: "a["}}
  - {name: Bad_Name, scheme: carrier-pigeon, secret: {secret: s}, map: {keys: k}}
  - {name: ok, scheme: github, secret: {secret: s}, map: {when: "x"}}
  - {name: short, scheme: github, secret: {secret: s}, tolerance_seconds: 600, remember_seconds: 900, map: {keys: k}}
"""
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    message = str(caught.value)
    assert "webhooks[0].map: keys is not a JMESPath expression" in message
    assert (
        "webhooks[1].name: must be 1-63 lower-case letters, digits or '-', starting with a letter or digit" in message
    )
    assert (
        "webhooks[1].scheme: must be one of ['standard', 'github', 'sanity', 'contentful', 'ghost', 'token']" in message
    )
    assert "carrier-pigeon" not in message
    assert "webhooks[2].map: the mapping needs at least one of keys, paths, urls, hosts" in message
    assert "webhooks[3]: remember_seconds must be at least twice tolerance_seconds" in message


def test_duplicate_names_and_inline_secrets_are_refused() -> None:
    text = config_with(
        """
  - {name: cms, scheme: token, secret: {value: not-here}, map: {keys: k}}
  - {name: cms, scheme: token, secret: {env: TOKEN}, map: {keys: k}}
"""
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    message = str(caught.value)
    assert "webhooks[1].name: 'cms' is already the name of webhooks[0]" in message
    assert "webhooks.cms.secret: inline secret values are refused" in message
    assert "not-here" not in message


def test_the_mapping_reads_ids_soft_and_lists_and_refuses_what_is_not_a_string() -> None:
    source = parse_config(
        config_with(
            """
  - name: cms
    scheme: token
    secret: {env: TOKEN}
    map: {id: "join(':', [doc.id, to_string(doc.rev)])", keys: "doc.tags", urls: "doc.url", soft: true}
"""
        )
    ).webhooks[0]
    payload = {"doc": {"id": "a", "rev": 3, "tags": ["t1", None, "t2"], "url": "https://www.example.com/a"}}
    message = publish_message(source, payload, delivery_id="ignored: the mapping names the id", body=b"{}")
    assert message == {
        "id": "webhook:cms:a:3",
        "keys": ["t1", "t2"],
        "urls": ["https://www.example.com/a"],
        "soft": True,
    }
    with pytest.raises(MappingError, match=r"^webhooks\.cms\.map\.keys\[0\] is int, not a string"):
        publish_message(source, {"doc": {"id": "a", "rev": 1, "tags": [7]}}, delivery_id=None, body=b"{}")
    with pytest.raises(MappingError, match=r"^webhooks\.cms\.map\.id: In function join\(\)"):
        publish_message(source, {"doc": {"tags": ["t"]}}, delivery_id=None, body=b"{}")


def test_what_the_purge_function_would_refuse_is_refused_here() -> None:
    source = parse_config(
        config_with("  - {name: cms, scheme: token, secret: {env: TOKEN}, map: {paths: paths}}\n")
    ).webhooks[0]
    with pytest.raises(MappingError, match=r"paths\[0\] .* contains control character U\+0000"):
        publish_message(source, {"paths": ["/a\x00b"]}, delivery_id="d", body=b"{}")


def test_a_mapped_message_over_the_purge_functions_body_limit_is_refused_before_it_is_enqueued() -> None:
    # Given: each list within the decoder's count, but together past the purge function's 256 KB body limit
    source = parse_config(
        config_with("  - {name: cms, scheme: token, secret: {env: TOKEN}, map: {paths: paths, keys: keys}}\n")
    ).webhooks[0]
    tried = 0
    for paths, keys in (
        ([f"/article/{n:05d}/" + "p" * 200 for n in range(2000)], []),  # 2,000 paths of 216 bytes: ~450 KB
        ([f"/a/{n}" for n in range(9000)], [f"k{n:04d}-" + "k" * 40 for n in range(9000)]),  # two long lists
    ):
        # When / Then: refused with the size named (400), never a 202 the purge function then dead-letters
        with pytest.raises(MappingError, match=r"the mapped message is \d+ bytes, over the purge queue's 262144"):
            publish_message(source, {"paths": paths, "keys": keys}, delivery_id="d", body=b"{}")
        tried += 1
    hostile("webhooks", tried)


def test_whatever_a_hostile_payload_makes_the_mapping_raise_is_the_payloads_refusal() -> None:
    # Given: expressions that stringify a value the payload controls, and a body nested as deep as json.loads
    # still reads (JMESPath's own errors were handled already; the RecursionError of to_string() was not)
    source = parse_config(
        config_with(
            "  - {name: cms, scheme: token, secret: {env: TOKEN},"
            " map: {keys: 'to_string(doc)', when: 'length(to_string(doc)) > `0`'}}\n"
        )
    ).webhooks[0]
    payload = deepest_json_loads_reads()
    # When / Then: a MappingError (answered 400), not a crash of the request
    with pytest.raises(MappingError, match="cannot be evaluated"):
        if is_wanted(source, payload):
            publish_message(source, payload, delivery_id="d", body=b"{}")
    hostile("webhooks")


def deepest_json_loads_reads() -> dict[str, object]:
    """`{"doc": [[[...]]]}` parsed by json.loads, nested as deep as it still parses here."""
    for depth in range(1000, 0, -5):
        try:
            return dict(json.loads('{"doc": ' + "[" * depth + "]" * depth + "}"))
        except RecursionError:
            continue
    raise AssertionError("json.loads reads no nesting at all")
