import localattn


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert localattn.__version__ == version("localattn")
