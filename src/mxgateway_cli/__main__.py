"""``python -m mxgateway_cli``: the same as the ``mxgw-py`` console script."""

from mxgateway_cli.main import main

raise SystemExit(main())
