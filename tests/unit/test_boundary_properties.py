"""Fault boundaries, by property: whatever a publisher, a bucket, a CDN or a configuration throws at the
pipeline, the batch is answered, every record is accounted for (acknowledged with its work done, returned,
or failed with a reason), and the good record beside the hostile ones is purged.

Each example is one hostile input in the reliability tally (class "unexpected", or "fate" for twins).
"""

from __future__ import annotations

import json
import string
from typing import Any

import httpx
import yaml
from faultkit import FAULT_CONFIG, ScriptedCdn, accounted, run_scripted
from helpers import FASTLY_TOKEN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge.core.models import Action, Change
from cdnpurge.core.translate import translate
from cdnpurge_local.event_builders import s3_notification, s3_record, sns_envelope, sqs_event

GOOD = "/good.html"
GOOD_PURGE = f"www.example.com{GOOD}"
FAULT_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text a URL parser, a percent-decoder, an HTTP client or a regex may choke on, mixed with anything at all.
TRICKY = st.sampled_from(
    ["[", "]", "%", "%zz", "%00", "..", "/", "\\", "@", ":", "#", "?", "*", "{a}", "\x00", "\ud800", "é", " ", "\u2028"]
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(TRICKY, st.text(string.printable, max_size=5)), max_size=12).map("".join),
    st.integers(1, 80_000).map(lambda n: "k" * n),
)
URLISH = st.one_of(
    HOSTILE_TEXT,
    st.tuples(st.sampled_from(["https://", "http://", "ftp://", "https://[", "//", ""]), HOSTILE_TEXT).map("".join),
    HOSTILE_TEXT.map(lambda tail: f"https://www.example.com/{tail}"),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def good_record() -> dict[str, Any]:
    return sns_envelope({"paths": [GOOD]})


def assert_survived(event: dict[str, Any], cdn: ScriptedCdn, *, good_purged: bool = True) -> None:
    run = run_scripted(event, cdn)  # never raises: that is the first property
    assert accounted(event, run) == []
    if good_purged:
        assert GOOD_PURGE in cdn.purged_paths()
        assert f"m{len(event['Records']) - 1}" not in run.failures.sources


@FAULT_SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "keys": st.lists(HOSTILE_TEXT, max_size=3) | JSONISH,
                "paths": st.lists(HOSTILE_TEXT.map(lambda text: "/" + text), max_size=3) | JSONISH,
                "urls": st.lists(URLISH, max_size=3),
                "hosts": st.lists(HOSTILE_TEXT, max_size=2),
                "soft": JSONISH,
                "id": JSONISH,
            },
        ),
        min_size=1,
        max_size=3,
    )
)
def test_hostile_published_messages_fail_alone(messages: list[dict[str, Any]]) -> None:
    tally.hostile("unexpected", len(messages))
    assert_survived(sqs_event(*(sns_envelope(message) for message in messages), good_record()), ScriptedCdn())


@FAULT_SETTINGS
@given(st.lists(HOSTILE_TEXT, min_size=1, max_size=3))
def test_hostile_s3_keys_fail_alone(keys: list[str]) -> None:
    tally.hostile("unexpected", len(keys))
    records = (s3_notification(s3_record("content", key)) for key in keys)
    assert_survived(sqs_event(*records, good_record()), ScriptedCdn())


ENCODINGS = st.sampled_from(["gzip", "deflate", "br", "zstd", "identity", "gzip, gzip", "x-garbage", "", "compress"])
HEADER_VALUE = st.text(string.printable.strip("\r\n\x0b\x0c"), max_size=20)
RATE_HEADERS = ("retry-after", "fastly-ratelimit-remaining", "fastly-ratelimit-reset")


@FAULT_SETTINGS
@given(
    status=st.integers(100, 599),
    headers=st.dictionaries(
        st.sampled_from(["content-encoding", "content-type", "content-length", *RATE_HEADERS, "x-any"]),
        HEADER_VALUE,
        max_size=4,
    ),
    encoding=st.none() | ENCODINGS,
    body=st.one_of(
        st.binary(max_size=64),
        JSONISH.map(lambda doc: json.dumps(doc).encode()),
        st.sampled_from([b'{"status": "ok", "id": "x"}', b'{"status": "error"}', b"<html>maintenance</html>", b""]),
    ),
)
def test_any_answer_from_a_cdn_fails_only_its_own_request(
    status: int, headers: dict[str, str], encoding: str | None, body: bytes
) -> None:
    if encoding is not None:
        headers["content-encoding"] = encoding
    headers.pop("content-length", None)  # a wrong length is the transport's business: httpx refuses to build it

    def hostile(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(status, headers=headers, content=body) if "hostile" in request.url.path else None

    tally.hostile("unexpected")
    event = sqs_event(sns_envelope({"paths": ["/hostile.html"]}), good_record())
    # A throttle or a rate-limit header pauses the provider for everyone, the good record included: then it is
    # only returned, never lost (how long a pause may last is tested with the bounded waits).
    pausing = status == 429 or any(name in headers for name in RATE_HEADERS)
    assert_survived(event, ScriptedCdn(hostile), good_purged=not pausing)


CONFIG_FIELDS = (
    "kind",
    "name",
    "service_id",
    "endpoint",
    "hosts",
    "rate_per_second",
    "timeout_seconds",
    "max_targets",
    "prefix_escalation_at",
    "purge_all_over",
    "credentials",
    "soft",
)
RULE_FIELDS = ("match", "paths", "urls", "keys", "prefixes", "providers", "bucket")
CONFIG_VALUE = st.one_of(
    JSONISH,
    st.just(FASTLY_TOKEN),
    st.floats(),
    st.sampled_from(["{a}/{a}.html", "{key*}", "{x", "(", "[", "https://h:0", "http://h:99999", "ftp://h", "1e9"]),
)


@FAULT_SETTINGS
@given(
    provider_changes=st.dictionaries(st.sampled_from(CONFIG_FIELDS), CONFIG_VALUE, max_size=3),
    rule_changes=st.dictionaries(st.sampled_from(RULE_FIELDS), CONFIG_VALUE, max_size=3),
)
def test_a_configuration_is_either_valid_and_safe_or_refused_by_name(
    provider_changes: dict[str, Any], rule_changes: dict[str, Any]
) -> None:
    document = yaml.safe_load(FAULT_CONFIG)
    document["providers"][0].update(provider_changes)
    document["rules"][0].update(rule_changes)
    tally.hostile("unexpected")
    try:
        config = parse_config(yaml.safe_dump(document), require_credentials=True)
    except ConfigError as error:
        assert FASTLY_TOKEN[:12] not in str(error)  # a token pasted anywhere is never quoted back
        return
    # Accepted: then translating any change under it fails, at worst, that change
    change = Change(id="c", action=Action.CREATED, source_id="m0", bucket="b", key="a/a.html")
    translation = translate([change], config)
    assert len(translation.routed) + len(translation.errors) + len(translation.unmatched) >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    twins=st.lists(st.lists(st.sampled_from(["/a", "/b", "/c", "/d"]), min_size=1, max_size=2), min_size=2, max_size=4),
    status=st.sampled_from([200, 400, 500, 503]),
)
def test_records_sharing_a_change_id_share_its_fate(twins: list[list[str]], status: int) -> None:
    # Given: records with one publisher id, the CDN answering `status` to the paths of the first
    failing = set(twins[0])
    tally.hostile("fate", len(twins))

    def answer(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(status) if any(request.url.path.endswith(path) for path in failing) else None

    event = sqs_event(*(sns_envelope({"id": "release-7", "paths": paths}) for paths in twins))
    run = run_scripted(event, ScriptedCdn(answer))
    # Then: nobody is acknowledged with the change unpurged, and they all go or stay together
    assert accounted(event, run) == []
    assert set(run.failures.sources) in (set(), {f"m{i}" for i in range(len(twins))})
