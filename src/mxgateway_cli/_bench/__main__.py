"""``python -m mxgateway_cli._bench``: the command on its own (without ``mxgw-py``)."""

from mxgateway_cli._bench.command import main

raise SystemExit(main())
