"""The public surface: explicit, sorted ``__all__`` whose names all exist."""

from __future__ import annotations

import mxgateway


def test_all_is_sorted_and_unique() -> None:
    assert list(mxgateway.__all__) == sorted(set(mxgateway.__all__))


def test_all_names_exist() -> None:
    missing = [name for name in mxgateway.__all__ if not hasattr(mxgateway, name)]
    assert missing == []


def test_no_public_name_left_out_of_all() -> None:
    public = {
        name
        for name in vars(mxgateway)
        if not name.startswith("_") and not isinstance(getattr(mxgateway, name), type(mxgateway))
    }
    assert public <= set(mxgateway.__all__), public - set(mxgateway.__all__)
