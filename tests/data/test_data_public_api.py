"""The public surface of `vrp.data`: `__all__` lists exactly the public names, all of which exist."""

import types

import vrp.data


def test_all_names_exist_and_are_public() -> None:
    for name in vrp.data.__all__:
        assert hasattr(vrp.data, name), name
        assert not name.startswith("_")
    assert len(set(vrp.data.__all__)) == len(vrp.data.__all__)


def test_every_public_name_is_listed() -> None:
    public = {
        name
        for name, value in vars(vrp.data).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(vrp.data.__all__)
