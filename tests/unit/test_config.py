from __future__ import annotations

import textwrap

import pytest
from helpers import config_from, fastly_config
from reliability import tally

from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge.core.credentials import CredentialError, CredentialRef, Secret, SecretReadError, resolve
from cdnpurge.core.models import TargetKind
from cdnpurge.core.registry import specs


def test_valid_config_types_each_provider_by_kind() -> None:
    # Given / When
    config = fastly_config()
    # Then
    (provider,) = config.providers
    assert type(provider).__name__ == "FastlySettings"
    assert provider.credentials == {"token": CredentialRef(env="FASTLY_API_TOKEN")}
    assert config.host_allowed("WWW.example.com") and config.host_allowed("cdn.example.com")
    assert not config.host_allowed("evil.example.net")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("providers: []", "providers: at least one provider is needed"),
        ("providers: {name: x}", "providers: Expected `array`, got `object`"),
        ("providers: [{name: x, kind: nope}]", "providers[0].kind: must be one of ['akamai'"),
        ("providers: [{name: x, kind: fastly}]", "providers[0].service_id: field required"),
        (
            "providers: [{name: x, kind: fastly, service_id: S1, colour: red}]",
            "providers[0].colour: unknown field (not one this document has)",
        ),
        ("providers: [{name: x, kind: fastly, service_id: S1}]\nversion: 2", "version: must be one of [1]"),
        ("providers: [{name: x, kind: fastly, service_id: S1, purge_by: [tags]}]", "providers[0].purge_by[0]: must be"),
        (
            "providers: [{name: x, kind: fastly, service_id: S1, max_targets: {keys: 1}}]",
            "providers[0].max_targets: a key: must be one of ['url', 'path'",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1, credentials: {token: {env: A, secret: B}}}]",
            "providers[0].credentials.token: a credential is one of {env: VAR}, {secret: NAME} or {value: ...}",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1}, {name: x, kind: fastly, service_id: S2}]",
            "providers[1].name: the same name as providers[0]",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1}]\nrules: [{match: 'a/{b}', paths: [nope]}]",
            "rules[0]: paths[0] must be a template starting with '/' (value not shown)",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1}]\nrules: [{match: 'a/{b}', keys: ['{c}']}]",
            "uses unknown capture(s) ['c']",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1, credentials: {token: {value: s3cr3t}}}]",
            "providers.x.credentials.token: inline secret values are refused",
        ),
        ("- just a list", "expected a mapping at the top level"),
        ("providers: [", "not valid YAML"),
    ],
)
def test_invalid_config_names_the_field(yaml_text: str, expected: str) -> None:
    # When
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml_text)
    # Then
    assert expected in str(raised.value)


def test_inline_secret_allowed_only_when_opted_in_and_never_printed() -> None:
    # Given
    config = config_from(
        """
        allow_inline_secrets: true
        providers: [{name: x, kind: fastly, service_id: S1, credentials: {token: {value: s3cr3t-value}}}]
        """
    )
    # When
    resolved = resolve(config.providers[0].credentials, owner="providers.x", secret_reader=no_secret_store)
    # Then
    assert resolved["token"].get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config) + str(resolved) + repr(resolved)


def test_a_secret_is_masked_compared_by_value_and_read_from_a_string_alone() -> None:
    # Given / When
    secret = Secret("s3cr3t-value")
    # Then: masked wherever it is shown, itself only on asking
    assert (repr(secret), str(secret), f"{secret}") == ("Secret('**********')", "**********", "**********")
    assert secret.get_secret_value() == "s3cr3t-value"
    assert secret == Secret("s3cr3t-value") and secret != Secret("other") and secret != "s3cr3t-value"
    assert len({secret, Secret("s3cr3t-value")}) == 1
    # And: an inline value that is not a string is refused by its type, never quoted
    with pytest.raises(ConfigError) as refused:
        config_from(
            """
            allow_inline_secrets: true
            providers: [{name: x, kind: fastly, service_id: S1, credentials: {token: {value: 123456789}}}]
            """
        )
    assert "providers[0].credentials.token.value: Expected `str`, got `int`" in str(refused.value)
    assert "123456789" not in str(refused.value)


def test_missing_env_credential_names_the_variable_not_a_value() -> None:
    with pytest.raises(CredentialError, match=r"providers.fastly.credentials.token: environment variable X_TOKEN"):
        resolve(
            {"token": CredentialRef(env="X_TOKEN")}, owner="providers.fastly", environ={}, secret_reader=no_secret_store
        )


def no_secret_store(name: str) -> str:
    raise AssertionError(f"no secret was referenced, yet {name} was read")


def test_secret_credential_reads_one_json_field() -> None:
    # Given
    def reader(name: str) -> str:
        assert name == "cdnpurge/fastly"
        return '{"token": "from-secrets-manager"}'

    # When
    resolved = resolve(
        {"token": CredentialRef(secret="cdnpurge/fastly", field="token")}, owner="p", secret_reader=reader
    )
    # Then
    assert resolved["token"].get_secret_value() == "from-secrets-manager"


def test_a_reader_failure_is_named_by_the_reader_and_any_other_by_its_type() -> None:
    # Given: a reader that names its problem, and one that fails in its own way
    def named(name: str) -> str:
        raise SecretReadError("GetSecretValue failed: AccessDeniedException")

    def unnamed(name: str) -> str:
        raise TimeoutError("a message that could hold anything")

    refs = {"token": CredentialRef(secret="cdnpurge/fastly")}
    # When / Then
    with pytest.raises(CredentialError) as raised:
        resolve(refs, owner="p", secret_reader=named)
    assert str(raised.value) == "p.credentials.token: cannot read secret cdnpurge/fastly: GetSecretValue failed: " + (
        "AccessDeniedException"
    )
    with pytest.raises(CredentialError) as raised:
        resolve(refs, owner="p", secret_reader=unnamed)
    assert str(raised.value) == "p.credentials.token: cannot read secret cdnpurge/fastly: TimeoutError"


def test_limit_overrides_may_only_lower_declared_limits() -> None:
    # Given / When
    config = config_from("providers: [{name: x, kind: fastly, service_id: S1, max_targets: {key: 100}}]")
    # Then
    assert specs(config.providers)["x"].capabilities.max_targets[TargetKind.KEY] == 100
    with pytest.raises(ConfigError, match=r"max_targets.key=300: must be between 1 and the provider's limit 256"):
        config_from("providers: [{name: x, kind: fastly, service_id: S1, max_targets: {key: 300}}]")


def test_a_yaml_syntax_error_names_the_place_but_never_quotes_the_line() -> None:
    # Given: a broken line that holds a credential
    text = "providers:\n  - token: tok-0123456789abcdef: [x\n"
    # When
    with pytest.raises(ConfigError) as raised:
        parse_config(text, source="purge.yaml")
    # Then
    message = str(raised.value)
    assert message == "purge.yaml: not valid YAML: mapping values are not allowed here at line 2, column 32"
    assert "tok-0123456789abcdef" not in message


# A token pasted where it does not belong: never quoted back.
PASTED_TOKEN = "pasted-token-not-real-4f9a8b7c6d5e"


def test_every_problem_of_a_configuration_is_reported_in_one_run() -> None:
    # Given: a configuration with a problem in nearly every place validation looks
    text = f"""
        providers:
          - {{name: a, kind: fastly, service_id: S1, endpoint: "ftp://api.example.com", rate_per_second: 1e9}}
          - {{name: b, kind: fastly, service_id: S2, endpoint: "https://api.example.com:99999",
              credentials: {{token: {{value: {PASTED_TOKEN}}}}}}}
          - {{name: b, kind: {PASTED_TOKEN}}}
          - {{name: c, kind: cloudflare, zone_id: 023e105f4ecef8ad9ca31a8372d0c353, timeout_seconds: 0}}
        rules:
          - {{match: "{{a}}/{{a}}.html", paths: ["/{{a}}"], keys: ["{{zzz}}"]}}
          - {{match: "{{key*}}", paths: ["/{{key}}"], providers: [{PASTED_TOKEN}]}}
    """
    # When
    with pytest.raises(ConfigError) as raised:
        parse_config(textwrap.dedent(text), require_credentials=True)
    # Then: each problem is named, in one report
    message = str(raised.value)
    tally.hostile("unexpected", 12)
    for expected in (
        "providers[0].endpoint: must be an http(s) URL",
        "providers[0].rate_per_second: Expected `float` <= 10000.0",
        "providers[0].credentials: fastly needs ['token']",
        "providers[1].endpoint: must be an http(s) URL with a host and a valid port",
        "providers[2].kind: must be one of",
        "providers[3].timeout_seconds: Expected `float` > 0.0",
        "providers[3].credentials: cloudflare needs ['token']",
        "providers[2].name: the same name as providers[1]",
        "providers.b.credentials.token: inline secret values are refused",
        "rules[0]: match captures ['a'] more than once",
        "rules[0]: keys[0] uses unknown capture(s) ['zzz']",
        "rules[1].providers: 1 name(s) not among the 3 providers' names",
    ):
        assert expected in message, f"{expected!r} not in {message}"
    assert PASTED_TOKEN[:12] not in message


def test_credentials_are_required_where_the_service_will_call() -> None:
    text = "providers: [{name: x, kind: fastly, service_id: S1}]"
    assert parse_config(text).providers[0].name == "x"  # planning needs none
    with pytest.raises(ConfigError, match=r"providers\[0\]\.credentials: fastly needs \['token'\]"):
        parse_config(text, require_credentials=True)
    cloudfront = "providers: [{name: cf, kind: cloudfront, distribution_id: E2QWRUHAPOMQZL}]"
    assert parse_config(cloudfront, require_credentials=True).providers[0].name == "cf"  # the function's role
