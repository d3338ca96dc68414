"""mxgw-py: the mxgateway command line (thin commands over the library)."""
