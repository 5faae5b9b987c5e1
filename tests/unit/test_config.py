from __future__ import annotations

import pytest
from helpers import config_from, fastly_config

from cdnpurge.config import ConfigError, parse_config
from cdnpurge.credentials import CredentialError, EnvCredential, SecretCredential, resolve
from cdnpurge.models import TargetKind
from cdnpurge.providers.registry import specs


def test_valid_config_types_each_provider_by_kind() -> None:
    # Given / When
    config = fastly_config()
    # Then
    (provider,) = config.providers
    assert type(provider).__name__ == "FastlySettings"
    assert provider.credentials == {"token": EnvCredential(env="FASTLY_API_TOKEN")}
    assert config.host_allowed("WWW.example.com") and config.host_allowed("cdn.example.com")
    assert not config.host_allowed("evil.example.net")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("providers: []", "providers: Tuple should have at least 1 item after validation, not 0"),
        ("providers: [{name: x, kind: nope}]", "providers[0].kind: expected one of ['akamai'"),
        ("providers: [{name: x, kind: fastly}]", "providers[0].service_id: Field required"),
        ("providers: [{name: x, kind: fastly, service_id: S1, colour: red}]", "colour: Extra inputs"),
        (
            "providers: [{name: x, kind: fastly, service_id: S1}, {name: x, kind: fastly, service_id: S2}]",
            "providers[1].name: the same name as providers[0]",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1}]\nrules: [{match: 'a/{b}', paths: [nope]}]",
            "rules.0.paths: entry [0] must be a template starting with '/'",
        ),
        (
            "providers: [{name: x, kind: fastly, service_id: S1}]\nrules: [{match: 'a/{b}', keys: ['{c}']}]",
            "capture(s) the match does not define: ['c']",
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
    resolved = resolve(config.providers[0].credentials, owner="providers.x")
    # Then
    assert resolved["token"].get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config) + str(resolved) + repr(resolved)


def test_missing_env_credential_names_the_variable_not_a_value() -> None:
    with pytest.raises(CredentialError, match=r"providers.fastly.credentials.token: environment variable X_TOKEN"):
        resolve({"token": EnvCredential(env="X_TOKEN")}, owner="providers.fastly", environ={})


def test_secret_credential_reads_one_json_field() -> None:
    # Given
    def reader(name: str) -> str:
        assert name == "cdnpurge/fastly"
        return '{"token": "from-secrets-manager"}'

    # When
    resolved = resolve(
        {"token": SecretCredential(secret="cdnpurge/fastly", field="token")}, owner="p", secret_reader=reader
    )
    # Then
    assert resolved["token"].get_secret_value() == "from-secrets-manager"


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
