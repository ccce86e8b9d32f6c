import icetk


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert icetk.__version__ == version("icetk")
