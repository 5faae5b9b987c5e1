"""Config errors never quote a value that may be a secret: a token pasted into the wrong
field is named by its field and what was expected, never shown."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge.runtime.redaction import FRAGMENT_CHARS

# Not a real credential: shaped like one (letters, digits, dashes), only ever parsed locally.
TOKEN = "cfgtest-token-not-real-4f9a1c2e7b"
TEMPLATE = textwrap.dedent(
    """
    providers:
      - name: "{name}"
        kind: "{kind}"
        service_id: "{service_id}"
        endpoint: "{endpoint}"
        hosts: ["{host}"]
        timeout_seconds: 5
        credentials: {{token: {{env: "{env}"}}}}
    rules:
      - match: "{match}"
        paths: ["{path}"]
        keys: ["{key}"]
        providers: ["{rule_provider}"]
        bucket: "{bucket}"
    allowed_hosts: ["{allowed}"]
    """
)
FIELDS = {
    "name": "fastly",
    "kind": "fastly",
    "service_id": "S1",
    "endpoint": "https://api.fastly.com",
    "host": "www.example.com",
    "env": "FASTLY_TOKEN",
    "match": "{key*}",
    "path": "/{key}",
    "key": "k-{key}",
    "rule_provider": "fastly",
    "bucket": "site",
    "allowed": "cdn.example.com",
}


def fragments(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT_CHARS] for i in range(len(secret) - FRAGMENT_CHARS + 1)}


@given(field=st.sampled_from(sorted(FIELDS)), shape=st.sampled_from(["{t}", "{t}/x", "/{t}", "x {t} y", "{t}{{"]))
def test_a_token_pasted_into_any_field_is_never_quoted(field: str, shape: str) -> None:
    tally.hostile("secrets")
    # Given: a valid config with the token pasted into one field
    config = TEMPLATE.format(**{**FIELDS, field: shape.format(t=TOKEN)})
    # When
    try:
        parse_config(config)
    except ConfigError as error:
        message = str(error)
    else:
        return  # accepted: nothing was printed
    # Then: the message names the field, and holds no piece of the token
    assert not [piece for piece in fragments(TOKEN) if piece in message], message


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("kind", "providers[0].kind"),
        ("rule_provider", "rules[0].providers"),
        ("path", "rules[0]: paths[0] must be a template starting with '/'"),
    ],
)
def test_the_error_names_the_field_and_what_is_expected(field: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(TEMPLATE.format(**{**FIELDS, field: TOKEN}))
    assert named in str(raised.value)
    assert TOKEN not in str(raised.value)
