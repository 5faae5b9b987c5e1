"""Canonical URLs and paths, and the linear dot-segment check: one function in
`cdnpurge.core.urls` decides what reaches a CDN, for published messages, the CLI and the providers alike."""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import config_from, fastly_config
from hypothesis import given
from hypothesis import strategies as st
from reliability import tally

import cdnpurge.core.urls
from cdnpurge.cli.main import main
from cdnpurge.core.models import Action, Change, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.registry import specs
from cdnpurge.core.translate import translate
from cdnpurge.core.urls import MAX_DECODE_PASSES, UrlError, canonical_path, canonical_url, dot_segment_problem

ALLOWED = "www.example.com"


def published(*, urls: tuple[str, ...] = (), paths: tuple[str, ...] = ()) -> Change:
    return Change(id="pub:1", action=Action.PUBLISHED, source_id="m1", urls=urls, paths=paths)


def routed_targets(change: Change) -> tuple[list[Target], list[str]]:
    translation = translate([change], fastly_config())
    return [item.target for item in translation.routed], [error.message for error in translation.errors]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://u:p@www.example.com/x", "carries user information"),
        ("https://www.example.com@evil.test/x", "carries user information"),
        ("https://evil.test\\@www.example.com/x", "backslash"),
        ("https://www.example.com\\evil/x", "backslash"),
        ("https://www.example.com/a\\..\\b", "backslash"),
        ("https://www.example.com:8443/x", "names port 8443"),
        ("https://www.example.com:99999/x", "invalid port"),
        ("https://www.example.com:x/x", "invalid port"),
        ("https://[www.example.com/x", "can be parsed"),
        ("https://www.example.com/*", "contains '*'"),
        ("https://www.example.com/img/*.png", "contains '*'"),
        ("https://www.example.com/a?q=*", "contains '*'"),
        ("https://[::1]/x", "not a DNS name"),
    ],
)
def test_hostile_published_urls_are_refused_before_the_allow_list(url: str, why: str) -> None:
    # When
    targets, errors = routed_targets(published(urls=(url,)))
    # Then: nothing routed, and the reason names the problem (never the credentials in the userinfo)
    assert targets == []
    (error,) = errors
    assert error.startswith("urls: ") and why in error
    assert "u:p" not in error


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://www.example.com:443/x", "https://www.example.com/x"),
        ("HTTPS://WWW.EXAMPLE.COM./x?b=1#frag", "https://www.example.com/x?b=1"),
        ("http://www.example.com:80", "http://www.example.com/"),
        ("https://www.example.com:/a", "https://www.example.com/a"),
    ],
)
def test_accepted_urls_reach_the_cdn_in_canonical_form(url: str, canonical: str) -> None:
    targets, errors = routed_targets(published(urls=(url,)))
    assert errors == []
    assert targets == [Target(TargetKind.URL, canonical)]


@pytest.mark.parametrize("path", ["/*", "/img/*", "/a\\b", "/%2e%2e/x", "@evil.test/x", "/%25252525252e"])
def test_hostile_published_paths_are_refused(path: str) -> None:
    targets, errors = routed_targets(published(paths=(path,)))
    assert targets == []
    assert len(errors) == 1 and errors[0].startswith("paths: ")


MEDIANOVA = """
providers:
  - {name: medianova, kind: medianova, organization_uuid: 550e8400-e29b-41d4-a716-446655440000,
     resource_uuid: 660f9511-f30c-52e5-b827-557766551111, credentials: {token: {env: T}}}
"""


@pytest.mark.parametrize("path", ["/*", "/img/*"])
def test_a_published_star_never_reaches_medianova_as_a_wildcard(path: str) -> None:
    # Given: a publisher naming `/*`, which Medianova's `file_path` reads as "purge everything"
    config = config_from(MEDIANOVA)
    # When
    translation = translate([published(paths=(path,))], config)
    the_plan = plan(list(translation.routed), specs(config.providers))
    # Then: refused with a reason, nothing planned
    assert the_plan.requests == ()
    assert "wildcard" in translation.errors[0].message


def test_medianova_itself_refuses_a_literal_star_in_a_path() -> None:
    # Given: a path target with `*` that reached the planner some other way than a publish message
    config = config_from(MEDIANOVA)
    routed = [RoutedTarget("c1", Target(TargetKind.PATH, "/*"), None, None)]
    # When
    the_plan = plan(routed, specs(config.providers))
    # Then: a plan error for that change, no request
    assert the_plan.requests == ()
    assert [change for error in the_plan.errors for change in error.change_ids] == ["c1"]


_HOST_CHARS = st.sampled_from(list("abcxyz019-.@:\\[]%*/?#"))


@given(
    userinfo=st.text(_HOST_CHARS, max_size=12),
    port=st.text(_HOST_CHARS, max_size=6),
    path=st.text(st.sampled_from(list("ab/\\.%2eE*@:?#")), max_size=20),
)
def test_whatever_a_url_holds_the_cdn_gets_it_canonical_and_allowed(userinfo: str, port: str, path: str) -> None:
    tally.hostile("canonical")
    # Given: an URL with arbitrary userinfo, port and path around an allowed host
    url = f"https://{userinfo}{'@' if userinfo else ''}{ALLOWED}{':' if port else ''}{port}/{path}"
    # When
    targets, errors = routed_targets(published(urls=(url,)))
    # Then: either refused with a reason, or routed in canonical form for the allowed host only
    assert len(targets) + len(errors) == 1
    for target in targets:
        parts = canonical_url(target.value)
        assert parts.geturl() == target.value  # canonical is a fixed point
        assert parts.hostname == ALLOWED and parts.port is None
        assert "@" not in parts.netloc and "\\" not in target.value and "*" not in target.value
        assert dot_segment_problem(parts.path) is None


@given(st.text(st.sampled_from(list("ab/\\.%2eE*@:?#")), max_size=30))
def test_canonical_paths_are_fixed_points_without_hazards(path: str) -> None:
    tally.hostile("canonical")
    try:
        canonical = canonical_path(path)
    except UrlError:
        return
    assert canonical_path(canonical) == canonical
    assert canonical.startswith("/") and "#" not in canonical and "*" not in canonical and "\\" not in canonical


@pytest.mark.parametrize(
    ("option", "value"),
    [("--path", "@evil.test/x"), ("--path", "/*"), ("--url", "https://u:p@www.example.com/x"), ("--prefix", "/a\\")],
)
def test_cli_targets_are_checked_like_published_ones(tmp_path: Path, option: str, value: str) -> None:
    # Given
    config = tmp_path / "purge.yaml"
    config.write_text(
        "providers:\n  - {name: fastly, kind: fastly, service_id: S1, hosts: [www.example.com],"
        " credentials: {token: {env: T}}}\n"
    )
    out = io.StringIO()
    # When
    code = main(["purge", "-c", str(config), "-p", "fastly", option, value, "--dry-run"], out=out)
    # Then: a usage error, nothing planned
    assert code == 2
    assert "would send" not in out.getvalue()


def _counting_unquote(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Replace the unquote `urls` uses with one counting the characters it is given: the work done."""
    real, work = urllib.parse.unquote, [0]

    def counted(text: str) -> str:
        work[0] += len(text)
        return real(text)

    monkeypatch.setattr(cdnpurge.core.urls, "unquote", counted)
    return lambda: work[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "/a/%" + "25" * n + "2e/x",  # nested encodings: decoding until stable was quadratic
        lambda n: "/a" + "%2e" * n,
        lambda n: "/" + "%25" * n,
        lambda n: "/" + "a/" * n,
    ],
)
def test_the_dot_segment_check_does_linear_work(monkeypatch: pytest.MonkeyPatch, make: Callable[[int], str]) -> None:
    # Given: the same shape at two sizes, one twice the other
    work = _counting_unquote(monkeypatch)
    dot_segment_problem(make(4_000))
    small = work()
    dot_segment_problem(make(8_000))
    large = work() - small
    # Then: twice the input costs at most about twice the work (quadratic would be four times)
    assert large <= 2 * small + 64
    assert large <= MAX_DECODE_PASSES * 2 * len(make(8_000))


def test_deep_encodings_are_refused_not_decoded_forever() -> None:
    assert dot_segment_problem("/a/%" + "25" * 60_000 + "2e/x") is not None
    assert dot_segment_problem("/a/%252e%252e/x") is not None  # double encoding is still caught


_URL_PIECES = st.sampled_from(
    ["a", "B", "0", "-", "_", ".", "/", "%", "%2e", "*", "\\", "@", ":", "?", "#", "~", "é", ".."]
)


@given(
    scheme=st.sampled_from(["http", "https", "HTTPS", "ftp"]),
    host=st.text(st.sampled_from("abcXYZ019.-_@:[]"), min_size=0, max_size=12),
    path=st.lists(_URL_PIECES, max_size=12).map("".join),
    query=st.one_of(st.none(), st.lists(_URL_PIECES, max_size=6).map("".join)),
)
def test_the_plain_url_shortcut_agrees_with_the_parsed_way(
    scheme: str, host: str, path: str, query: str | None
) -> None:
    # Given: any URL, plain (what a storm's targets are) or hostile
    url = f"{scheme}://{host}/{path}" + (f"?{query}" if query is not None else "")

    # When: checked with the shortcut (canonical_url) and the long way (urlsplit)
    def outcome(check: Callable[[str], urllib.parse.SplitResult]) -> object:
        try:
            return check(url)
        except UrlError as problem:
            return str(problem)

    # Then: the same canonical form, or the same refusal
    assert outcome(canonical_url) == outcome(cdnpurge.core.urls.parsed_canonical_url)
    tally.hostile("canonical", 1)
