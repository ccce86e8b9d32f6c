import cluster_sampling


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert cluster_sampling.__version__ == version("cluster-sampling")
