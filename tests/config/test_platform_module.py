"""`platform/` is a source root, never a package: the standard library's `platform` must still win."""

import platform
import sys
import uuid
from pathlib import Path


def test_stdlib_platform_module_is_not_shadowed():
    assert platform.system()  # what uuid and Django call on import
    assert Path(platform.__file__).parent == Path(sys.modules["os"].__file__).parent
    assert uuid.uuid4()


def test_platform_folder_has_no_init_file():
    root = Path(__file__).resolve().parents[2]
    assert (root / "platform" / "config").is_dir()
    assert not (root / "platform" / "__init__.py").exists()
