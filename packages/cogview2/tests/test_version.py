import cogview2


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert cogview2.__version__ == version("cogview2")
