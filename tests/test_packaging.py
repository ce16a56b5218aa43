"""What the installed distribution holds: the license, py.typed and the type stubs, and metadata that says so.

Read from the installed files (importlib.metadata), so that CI's non-editable install checks the wheel
itself.  An editable install's RECORD lists only its import hook: then the package folder is checked.
"""

import importlib.metadata
import pathlib

import pytest
import rnnkit

PACKAGE = pathlib.Path(rnnkit.__file__).resolve().parent
# The stubs the public API needs (tests/test_typing.py checks what they say).
STUBS = ["__init__.pyi", "_core.pyi", "_typing.pyi", "callbacks.pyi", "datasets.pyi", "embedding.pyi",
         "functional.pyi", "layers.pyi", "losses.pyi", "models.pyi", "optim.pyi", "plan.pyi", "reference.pyi",
         "runtime.pyi", "sequences.pyi", "streams.pyi"]


@pytest.fixture(scope="module")
def distribution():
    return importlib.metadata.distribution("rnnkit")


@pytest.fixture(scope="module")
def installed_files(distribution):
    """The package's installed files, relative to rnnkit/ (None for an editable install)."""
    files = [str(f).replace("\\", "/") for f in distribution.files or []]
    package = {f.split("rnnkit/", 1)[1] for f in files if f.startswith("rnnkit/")}
    return package if "__init__.py" in package else None


def test_the_version_is_one(distribution):
    assert distribution.version == rnnkit.__version__


def test_the_license_is_in_the_metadata(distribution):
    metadata = distribution.metadata
    assert metadata["License-Expression"] == "MIT", "License-Expression: MIT (pyproject.toml's license)"
    assert "LICENSE" in (metadata.get_all("License-File") or [])
    license_files = [f for f in distribution.files or [] if f.name == "LICENSE" and ".dist-info" in str(f)]
    assert license_files, "the dist-info lacks LICENSE (pyproject.toml's license-files)"
    text = license_files[0].locate().read_text()
    assert text.startswith("MIT License")
    assert "WITHOUT WARRANTY" in text


@pytest.mark.parametrize("name", ["py.typed", *STUBS])
def test_the_typing_files_are_installed(name, installed_files):
    if installed_files is not None:
        assert name in installed_files, f"the wheel lacks rnnkit/{name}"
    assert (PACKAGE / name).is_file(), f"{PACKAGE / name} is missing"


def test_every_stub_beside_the_modules_is_listed():
    assert sorted(path.name for path in PACKAGE.glob("*.pyi")) == sorted(STUBS)


def test_the_data_files_are_installed(installed_files):
    if installed_files is None:
        pytest.skip("an editable install: its RECORD lists no package files")
    assert any(name.startswith("data/") for name in installed_files), "the wheel lacks rnnkit/data/"
    assert any(name.startswith("_core.") for name in installed_files), "the wheel lacks the compiled _core"


def test_the_wheel_is_a_platform_wheel(distribution):
    """A compiled module: never py3-none-any, and never marked pure."""
    wheel = distribution.read_text("WHEEL") or ""
    assert "Root-Is-Purelib: false" in wheel
    tags = [line.split(": ", 1)[1] for line in wheel.splitlines() if line.startswith("Tag: ")]
    assert tags, wheel
    assert not any(tag.endswith("-none-any") for tag in tags), tags


def test_the_typed_classifier(distribution):
    assert "Typing :: Typed" in (distribution.metadata.get_all("Classifier") or [])
