"""Build the one compiled module, ``mxgateway._speedups``, from ``ext/``.

Everything else lives in pyproject.toml. If the extension cannot be built (no C compiler, or
``MXGATEWAY_NO_EXTENSIONS=1`` at build time) the install still succeeds and the package runs
on its pure-Python twin (``mxgateway._pycodec``).
"""

from __future__ import annotations

import os
import sys
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# One place for the Cython compiler directives. Bounds and wraparound checks are off because
# the codec checks every length against the buffer end itself (and the twin is tested against
# it); cdivision because no division by a Python-visible zero happens on the hot path.
CYTHON_DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}

if sys.platform == "win32":
    EXTRA_COMPILE_ARGS = ["/O2"]
else:
    EXTRA_COMPILE_ARGS = ["-O3", "-fno-strict-aliasing"]


def _extensions_disabled() -> bool:
    return os.environ.get("MXGATEWAY_NO_EXTENSIONS", "") == "1"


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile into a warning: the twin is used instead."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        sys.stderr.write(
            "WARNING: mxgateway._speedups was not built "
            f"({type(exc).__name__}: {exc}); the pure-Python codec will be used.\n"
        )


def _ext_modules() -> list[Extension]:
    if _extensions_disabled():
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        # Only a non-isolated build without Cython gets here; pip's isolated build has it.
        OptionalBuildExt._warn(ImportError("Cython is not installed"))
        return []

    extension = Extension(
        "mxgateway._speedups",
        sources=["ext/_speedups.pyx"],
        # cythonize swaps the sources for the generated C file: listing the Cython sources
        # (the .pyx and the .pxi files it includes) here is what makes an sdist ship them.
        depends=sorted(glob("ext/*.pyx") + glob("ext/*.pxi")),
        extra_compile_args=EXTRA_COMPILE_ARGS,
    )
    return cythonize(
        [extension],
        compiler_directives=CYTHON_DIRECTIVES,
        build_dir="build/cython",
    )


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
