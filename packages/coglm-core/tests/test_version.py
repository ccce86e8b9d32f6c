import coglm_core


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert coglm_core.__version__ == version("coglm-core")
