from __future__ import annotations

import pytest
from helpers import config_from, fastly_config

from cdnpurge.core.models import Action, Change, Target, TargetKind
from cdnpurge.core.placeholders import compile_match
from cdnpurge.core.translate import translate


def s3_change(key: str, *, bucket: str = "example-site-content", change_id: str = "c1") -> Change:
    return Change(id=change_id, action=Action.CREATED, source_id="m1", bucket=bucket, key=key)


def targets_of(change: Change, yaml_config: str | None = None) -> list[str]:
    config = config_from(yaml_config) if yaml_config else fastly_config()
    translation = translate([change], config)
    assert not translation.errors, translation.errors
    return [str(item.target) for item in translation.routed]


def test_named_capture_fills_paths_and_surrogate_keys() -> None:
    assert targets_of(s3_change("articles/hello-world.html")) == [
        "path:/articles/hello-world",
        "path:/articles/hello-world.html",
        "key:article-hello-world",
    ]


def test_first_matching_rule_wins_and_fallback_purges_the_key_path() -> None:
    # A nested key does not match `articles/{slug}.html` ({slug} is one segment): fallback rule.
    assert targets_of(s3_change("articles/2026/x.html")) == ["path:/articles/2026/x.html"]


def test_index_html_also_purges_its_directory_with_and_without_slash() -> None:
    assert targets_of(s3_change("docs/index.html")) == ["path:/docs/index.html", "path:/docs/", "path:/docs"]
    assert targets_of(s3_change("index.html")) == ["path:/index.html", "path:/"]


def test_index_directories_can_be_switched_off() -> None:
    yaml_config = """
        purge_index_directories: false
        providers: [{name: f, kind: fastly, service_id: S1}]
    """
    assert targets_of(s3_change("docs/index.html"), yaml_config) == ["path:/docs/index.html"]


def test_keys_are_percent_encoded_in_paths_but_not_in_surrogate_keys() -> None:
    yaml_config = """
        providers: [{name: f, kind: fastly, service_id: S1}]
        rules:
          - {match: "{key*}", paths: ["/{key}"], keys: ["obj:{key}"], urls: ["https://www.example.com/{key}"]}
    """
    assert targets_of(s3_change("docs/annual report+2026 é.pdf"), yaml_config) == [
        "path:/docs/annual%20report%2B2026%20%C3%A9.pdf",
        "url:https://www.example.com/docs/annual%20report%2B2026%20%C3%A9.pdf",
        "key:obj:docs/annual report+2026 é.pdf",
    ]


def test_rule_bucket_and_provider_routing() -> None:
    # Given
    config = config_from(
        """
        providers:
          - {name: a, kind: fastly, service_id: S1}
          - {name: b, kind: fastly, service_id: S2}
        rules:
          - {bucket: media, match: "{key*}", keys: ["media"], providers: [b]}
        """
    )
    # When
    other = translate([s3_change("x.png", bucket="other")], config)
    media = translate([s3_change("x.png", bucket="media")], config)
    # Then
    assert other.unmatched == ("c1",) and not other.routed
    assert [(str(r.target), r.providers) for r in media.routed] == [("key:media", frozenset({"b"}))]


@pytest.mark.parametrize("key", ["a/../secret.html", "./x", "a/./b"])
def test_dot_segments_in_keys_are_a_clear_error(key: str) -> None:
    translation = translate([s3_change(key)], fastly_config())
    (error,) = translation.errors
    assert error.source_id == "m1"
    assert "'.' or '..' path segment" in error.message


def test_published_targets_pass_through_with_hosts_checked() -> None:
    # Given
    change = Change(
        id="pub:1",
        action=Action.PUBLISHED,
        source_id="m2",
        keys=("home",),
        paths=("/news",),
        urls=("https://cdn.example.com/a?b=1",),
        hosts=("WWW.EXAMPLE.COM",),
    )
    # When
    routed = translate([change], fastly_config()).routed
    # Then
    assert [r.target for r in routed] == [
        Target(TargetKind.KEY, "home"),
        Target(TargetKind.PATH, "/news"),
        Target(TargetKind.URL, "https://cdn.example.com/a?b=1"),
        Target(TargetKind.HOST, "www.example.com"),
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("urls", "https://169.254.169.254/latest", "urls: host '169.254.169.254' is not in allowed_hosts"),
        ("urls", "ftp://www.example.com/x", "urls: 'ftp://www.example.com/x' is not an absolute http(s) URL"),
        ("hosts", "evil.example.net", "hosts: 'evil.example.net' is not in allowed_hosts"),
        ("paths", "relative/path", "paths: 'relative/path' must start with '/'"),
    ],
)
def test_published_targets_outside_the_allow_list_fail_only_their_change(field: str, value: str, message: str) -> None:
    # Given
    bad = Change(id="pub:bad", action=Action.PUBLISHED, source_id="bad", **{field: (value,)})  # type: ignore[arg-type]
    good = Change(id="pub:good", action=Action.PUBLISHED, source_id="good", keys=("k",))
    # When
    translation = translate([bad, good], fastly_config())
    # Then
    assert [(e.source_id, e.message) for e in translation.errors] == [("bad", message)]
    assert [r.change_id for r in translation.routed] == ["pub:good"]


def test_match_patterns_compile_to_anchored_regexes() -> None:
    assert compile_match("a/{x}.html").fullmatch("a/b.html")
    assert not compile_match("a/{x}.html").fullmatch("a/b/c.html")
    assert compile_match("a/{x*}.html").fullmatch("a/b/c.html")
    assert not compile_match("a.{x}").fullmatch("ab.c")  # the dot is literal


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("paths", "/a/../admin"),
        ("paths", "/%2e%2e/service/X/purge_all"),
        ("paths", "/./a"),
        ("urls", "https://www.example.com/a/../../service/X/purge_all"),
        ("urls", "https://www.example.com/x/%2E%2E/y"),
    ],
)
def test_published_dot_segments_are_refused_naming_the_target(field: str, value: str) -> None:
    # Given: a publish message whose path would be normalised into another endpoint by an HTTP client
    change = Change(
        id="pub:1",
        action=Action.PUBLISHED,
        source_id="m1",
        paths=(value,) if field == "paths" else (),
        urls=(value,) if field == "urls" else (),
    )
    # When
    translation = translate(
        [change], config_from("providers: [{name: f, kind: fastly, service_id: S, hosts: [www.example.com]}]")
    )
    # Then: nothing routed, and the error names the field, the value and why
    assert translation.routed == ()
    (error,) = translation.errors
    assert error.message.startswith(f"{field}: {value!r} contains a '.' or '..' path segment")


def test_a_published_fragment_is_dropped_so_every_provider_purges_the_same_object() -> None:
    # Given: a publisher naming anchors, which browsers never send and CDNs never see
    change = Change(
        id="pub:1",
        action=Action.PUBLISHED,
        source_id="m1",
        paths=("/news#top", "/#"),
        urls=("https://www.example.com/a?page=2#comments",),
    )
    # When
    translation = translate([change], fastly_config())
    # Then
    assert [str(item.target) for item in translation.routed] == [
        "path:/news",
        "path:/",
        "url:https://www.example.com/a?page=2",
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("docs/annual report+2026.pdf", ["path:/docs/annual%20report%2B2026.pdf"]),
        ("docs/guide/index.html", ["path:/docs/guide/index.html", "path:/docs/guide/", "path:/docs/guide"]),
        ("docs/index.html", ["path:/docs/index.html", "path:/docs/", "path:/docs"]),
    ],
)
def test_a_rule_of_one_template_and_one_capture_fills_as_any_rule(key: str, expected: list[str]) -> None:
    # Such a rule is filled without the general loop (`translate`); encoding and index directories hold the same
    yaml_config = """
        providers: [{name: f, kind: fastly, service_id: S1}]
        rules:
          - {match: "docs/{rest*}", paths: ["/docs/{rest}"]}
    """
    assert targets_of(s3_change(key), yaml_config) == expected


def test_a_one_capture_surrogate_key_is_not_encoded() -> None:
    yaml_config = """
        providers: [{name: f, kind: fastly, service_id: S1}]
        rules:
          - {match: "img/{name}", keys: ["img-{name}"]}
    """
    assert targets_of(s3_change("img/a b+c.jpg"), yaml_config) == ["key:img-a b+c.jpg"]
