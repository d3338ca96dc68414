"""Build the one compiled module, ``mxgateway._speedups``, from ``ext/``.

Everything else lives in pyproject.toml. The sources are ``ext/_speedups.pyx`` and the
``.pxi`` files it includes; Cython turns them into ``ext/_speedups.c``, which the sdist ships,
so a C compiler alone builds the extension from an sdist (no Cython needed there).

If the extension cannot be built (no C compiler, neither Cython nor the generated C) the
install still succeeds, prints a warning, and the package runs on its pure-Python twin
(``mxgateway._pycodec``), which warns once at import. ``MXGATEWAY_NO_EXTENSIONS=1`` at build
time skips the build on purpose; ``MXGATEWAY_REQUIRE_EXTENSIONS=1`` makes a failed build fail
the install (wheel builds set it, so no wheel ever ships without the codec).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

# One place for how the extension is compiled.
#
# Cython directives: bounds and wraparound checks are off because the codec checks every
# length against the buffer end itself (and the twin is tested against it); cdivision because
# no division by a Python-visible zero happens on the hot path.
CYTHON_DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}

# C flags. -g0 after Python's own CFLAGS (which carry -g) and a stripped link keep the module
# small: 5.4 MB with debug information and symbols, 0.8 MB without, the same code. MSVC adds
# no debug information unless asked (/Zi), so Windows needs nothing.
if sys.platform == "win32":
    EXTRA_COMPILE_ARGS = ["/O2"]
    EXTRA_LINK_ARGS: list[str] = []
elif sys.platform == "darwin":
    # Apple's ld ignores -s; -x drops the local symbols, -dead_strip unused code.
    EXTRA_COMPILE_ARGS = ["-O3", "-fno-strict-aliasing", "-g0"]
    EXTRA_LINK_ARGS = ["-Wl,-x", "-Wl,-dead_strip"]
else:
    EXTRA_COMPILE_ARGS = ["-O3", "-fno-strict-aliasing", "-g0"]
    EXTRA_LINK_ARGS = ["-Wl,-s"]

HERE = Path(__file__).resolve().parent
PYX = "ext/_speedups.pyx"
GENERATED_C = "ext/_speedups.c"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") == "1"


def _warn(what: str) -> None:
    # pip hides a successful build's output (pip -v shows it); the import-time warning is what
    # every user sees. This one is for build logs.
    bar = "*" * 78
    sys.stderr.write(
        f"\n{bar}\nWARNING: mxgateway._speedups was not built: {what}.\n"
        "mxgateway will run on its pure-Python codec, on which event decoding is about 100x\n"
        "slower, and will say so when imported. Install a C compiler and reinstall, or install\n"
        "a wheel for this platform. MXGATEWAY_REQUIRE_EXTENSIONS=1 makes this an error.\n"
        f"{bar}\n\n"
    )


def _fail_or_warn(what: str) -> None:
    if _flag("MXGATEWAY_REQUIRE_EXTENSIONS"):
        raise SystemExit(
            f"mxgateway._speedups was not built: {what} (MXGATEWAY_REQUIRE_EXTENSIONS=1)"
        )
    _warn(what)


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile into a warning: the twin is used instead."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _fail_or_warn(f"{type(exc).__name__}: {exc}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _fail_or_warn(f"{type(exc).__name__}: {exc}")


class CythonizingSdist(sdist):
    """sdist that regenerates ``ext/_speedups.c`` from the Cython sources first, so the
    archive carries C that matches them (MANIFEST.in includes it)."""

    def run(self) -> None:
        from Cython.Build import cythonize  # an sdist is always made with Cython at hand

        cythonize([_extension(PYX)], compiler_directives=CYTHON_DIRECTIVES, force=True)
        super().run()


def _extension(source: str) -> Extension:
    return Extension(
        "mxgateway._speedups",
        sources=[source],
        extra_compile_args=EXTRA_COMPILE_ARGS,
        extra_link_args=EXTRA_LINK_ARGS,
    )


def _ext_modules() -> list[Extension]:
    if _flag("MXGATEWAY_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        # An sdist carries the generated C: a compiler is enough. A git checkout without
        # Cython (pip's isolated build always has it) has nothing to compile.
        if (HERE / GENERATED_C).exists():
            return [_extension(GENERATED_C)]
        _fail_or_warn(f"Cython is not installed and {GENERATED_C} is missing")
        return []
    # The C lands beside the .pyx (ignored by git, shipped in the sdist); cythonize only
    # regenerates it when the .pyx or a .pxi it includes is newer.
    return cythonize([_extension(PYX)], compiler_directives=CYTHON_DIRECTIVES)


setup(
    ext_modules=_ext_modules(),
    cmdclass={"build_ext": OptionalBuildExt, "sdist": CythonizingSdist},
)
