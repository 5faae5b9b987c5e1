"""The registry finds each adapter by its kind: one line in `KINDS` per provider, checked at import."""

from __future__ import annotations

import pytest

from cdnpurge.providers.registry import KINDS, REGISTRY, adapter_of


def test_every_kind_maps_to_the_adapter_of_that_kind_in_order() -> None:
    assert list(REGISTRY) == list(KINDS)
    assert all(adapter.kind == kind for kind, adapter in REGISTRY.items())


def test_a_module_without_an_adapter_of_its_kind_is_a_clear_error() -> None:
    # `base` is a module of the package but holds no adapter
    with pytest.raises(TypeError, match=r"cdnpurge.providers.base.ADAPTER must be the adapter class of kind 'base'"):
        adapter_of("base")
