"""Packaging: `mypy --strict` is clean on the package and these tests; the package
installs into a fresh virtual environment from its directory and from a wheel built with
`pip wheel`, offline (every wheel pip needs, the flit_core build backend and httpx with
its dependencies, comes from a local wheelhouse filled once from PyPI)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbaudit

SDK = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(sys.prefix) / "dbaudit-sdk-wheelhouse"
NEEDED = ["flit_core>=3.11,<5", "httpx>=0.27,<1"]


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Filled once per virtual environment (the only step that reaches PyPI)."""
    stamp = WHEELHOUSE / ".complete"
    if not stamp.exists():
        WHEELHOUSE.mkdir(exist_ok=True)
        run(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "-d", WHEELHOUSE,
            *NEEDED)
        stamp.touch()
    return WHEELHOUSE


def fresh_venv(path: Path) -> Path:
    """A new virtual environment without pip (pip is driven from outside with --python)."""
    run(sys.executable, "-m", "venv", "--without-pip", path)
    return path / "bin" / "python"


def pip_install(python: Path, wheelhouse: Path, target: str, cwd: Path) -> None:
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check",
        "--no-index", "--find-links", wheelhouse, target, cwd=cwd)


CHECK = """
import importlib.metadata, pathlib, httpx, dbaudit
assert importlib.metadata.version("dbaudit") == dbaudit.__version__, importlib.metadata.version("dbaudit")
assert [r.replace(" ", "") for r in importlib.metadata.requires("dbaudit")] == ["httpx>=0.27,<1"], importlib.metadata.requires("dbaudit")
package = pathlib.Path(dbaudit.__file__).parent
assert "site-packages" in str(package), package
assert (package / "py.typed").exists()
seen = []
def answer(request):
    seen.append(request.headers["user-agent"])
    return httpx.Response(200, json={"databases": []}, headers={"X-Request-Id": "r1"})
with dbaudit.Client(api_key="k", base_url="http://api.test", transport=httpx.MockTransport(answer)) as client:
    assert client.databases.list().request_id == "r1"
assert seen == ["dbaudit-python/" + dbaudit.__version__]
print("ok")
"""


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_mypy_strict_is_clean() -> None:
    out = run(sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(Path(sys.prefix) / "mypy-cache-sdk"),
              "src", "tests", cwd=SDK)
    assert "Success: no issues found" in out


def test_installs_from_the_directory(wheelhouse: Path, scratch: Path) -> None:
    python = fresh_venv(scratch / "venv")
    pip_install(python, wheelhouse, "./sdks/python", cwd=SDK.parents[1])
    assert run(python, "-c", CHECK, cwd=scratch).strip() == "ok"


def test_installs_from_a_built_wheel(wheelhouse: Path, scratch: Path) -> None:
    dist = scratch / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-index",
        "--find-links", wheelhouse, "-w", dist, SDK)
    (wheel,) = dist.glob("dbaudit-*.whl")
    assert wheel.name == f"dbaudit-{dbaudit.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "dbaudit/py.typed" in names and "dbaudit/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)
    python = fresh_venv(scratch / "venv")
    pip_install(python, wheelhouse, str(wheel), cwd=scratch)
    assert run(python, "-c", CHECK, cwd=scratch).strip() == "ok"
