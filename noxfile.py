"""Task runner for the monorepo: one test session per package, lint, and an isolated-install check.

    nox                      # everything in the default run
    nox -s tests-localattn   # one package
    nox -s lint isolated
    nox -s tests_gpu         # `gpu`-marked tests (needs CUDA)
    nox -s gpu-dry-run       # bench/gpu_all.sh --dry-run: the GPU script's steps on CPU
    nox -s tests_slow        # `slow`-marked tests

Set COGVIEW2_TORCH=cpu to pin the CPU build of torch that lies on this kind of machine
(`ci/torch-cpu.txt`); otherwise pip resolves the packages' `torch>=2.5` range as it would for you.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys
import tempfile

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False

ROOT = pathlib.Path(__file__).resolve().parent
PACKAGES: dict[str, str] = {  # distribution name -> import name
    "icetk": "icetk",
    "localattn": "localattn",
    "cluster-sampling": "cluster_sampling",
    "coglm-core": "coglm_core",
    "cogview2": "cogview2",
}
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def _constraints() -> list[str]:
    """pip arguments that pin torch when COGVIEW2_TORCH asks for it."""
    choice = os.environ.get("COGVIEW2_TORCH", "")
    if not choice:
        return []
    path = ROOT / "ci" / f"torch-{choice}.txt"
    if not path.is_file():
        raise ValueError(f"COGVIEW2_TORCH={choice!r}: no constraints file {path}")
    return ["-c", str(path)]


def local_deps(dist: str) -> list[str]:
    """Sibling distributions that `dist` declares in its pyproject.toml, in install order."""
    pyproject = nox.project.load_toml(ROOT / "packages" / dist / "pyproject.toml")
    names = [
        re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0]
        for req in pyproject["project"]["dependencies"]
    ]
    return [name for name in PACKAGES if name in names]


def _install(session: nox.Session, *args: str) -> None:
    session.install(*_constraints(), *args)


def _make_tests(dist: str) -> None:
    @nox.session(name=f"tests-{dist}", python=PYTHON)
    def tests(session: nox.Session) -> None:
        """Run this package's CPU tests with only it and its declared siblings installed (not editable)."""
        siblings = [str(ROOT / "packages" / d) for d in local_deps(dist)]
        # localattn's Triton kernels are tested on CPU under TRITON_INTERPRET=1; cogview2's
        # web page is tested in a browser.
        extras = {"localattn": "test,triton", "cogview2": "test,web"}.get(dist, "test")
        _install(session, *siblings, f"{ROOT / 'packages' / dist}[{extras}]")
        if dist == "cogview2":
            # eval-coco's Inception (cogview2[coco]) without torchvision, which torch-fidelity
            # declares but this code never imports: PyPI's torchvision is a CUDA build that
            # fails to import beside the CPU torch of COGVIEW2_TORCH=cpu (docs/scaling.md).
            _install(session, "--no-deps", "torch-fidelity>=0.3,<0.5")
        session.run(
            "pytest",
            str(ROOT / "packages" / dist / "tests"),
            "-m",
            "not gpu and not slow",
            *session.posargs,
        )


for _dist in PACKAGES:
    _make_tests(_dist)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree; no import circles."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", str(ROOT))
    session.run("ruff", "format", "--check", str(ROOT))
    session.run("python", str(ROOT / "ci" / "import_cycles.py"))


@nox.session(python=PYTHON)
def isolated(session: nox.Session) -> None:
    """Build every wheel, install each alone into a fresh venv, and import it.

    A leaf that imported a sibling, or a package that forgot to declare a dependency or ship a
    file, fails here. cogview2 gets only the sibling wheels it declares.
    """
    session.install("build>=1.0")
    dist_dir = pathlib.Path(session.create_tmp()) / "wheels"
    shutil.rmtree(dist_dir, ignore_errors=True)
    for dist in PACKAGES:
        session.run(
            "python",
            "-m",
            "build",
            "--wheel",
            "--outdir",
            str(dist_dir),
            str(ROOT / "packages" / dist),
            silent=True,
        )
    for dist, module in PACKAGES.items():
        with tempfile.TemporaryDirectory(prefix=f"isolated-{dist}-") as tmp:
            venv = pathlib.Path(tmp) / "venv"
            session.run(sys.executable, "-m", "venv", str(venv), external=True)
            python = str(venv / "bin" / "python")
            wheel = next(dist_dir.glob(f"{dist.replace('-', '_')}-*.whl"))
            # --find-links lets cogview2 take its siblings from our wheels; the range pins keep
            # PyPI's unrelated 0.0.x `icetk` out.
            session.run(
                python,
                "-m",
                "pip",
                "install",
                "-q",
                *_constraints(),
                "--find-links",
                str(dist_dir),
                str(wheel),
                external=True,
            )
            declared = set(local_deps(dist))
            others = [m for d, m in PACKAGES.items() if d != dist and d not in declared]
            script = (
                f"import importlib.util, sys, {module}; "
                f"print('{dist}', {module}.__version__); "
                f"leaked = [m for m in {others!r} if m in sys.modules]; "
                f"assert not leaked, f'{module} imported {{leaked}}'"
            )
            session.run(python, "-c", script, external=True)


@nox.session(name="gpu-dry-run", python=PYTHON)
def gpu_dry_run(session: nox.Session) -> None:
    """bench/gpu_all.sh --dry-run: every GPU test and benchmark step on CPU with tiny shapes."""
    _install(
        session,
        *(str(ROOT / "packages" / d) for d in PACKAGES),
        f"{ROOT / 'packages' / 'localattn'}[triton,test]",
        f"{ROOT / 'packages' / 'cogview2'}[test]",
    )
    out = pathlib.Path(session.create_tmp()) / "gpu-dry-run"
    session.run("python", str(ROOT / "bench" / "gpu_all.py"), "--dry-run", "--out", str(out))


@nox.session(python=PYTHON, default=False)
def tests_gpu(session: nox.Session) -> None:
    """`gpu`-marked tests of every package (needs CUDA and triton)."""
    _install(
        session,
        *(str(ROOT / "packages" / d) for d in PACKAGES),
        f"{ROOT / 'packages' / 'localattn'}[triton,test]",
    )
    session.run(
        "pytest",
        *(str(ROOT / "packages" / d / "tests") for d in PACKAGES),
        "-m",
        "gpu",
        *session.posargs,
    )


@nox.session(python=PYTHON, default=False)
def tests_slow(session: nox.Session) -> None:
    """`slow`-marked tests of every package."""
    _install(session, *(f"{ROOT / 'packages' / d}[test]" for d in PACKAGES))
    session.run(
        "pytest",
        *(str(ROOT / "packages" / d / "tests") for d in PACKAGES),
        "-m",
        "slow",
        *session.posargs,
    )
