"""Imported first by ``mxgateway.sim``: without the extra ``mxgateway[sim]`` the import fails
with an ImportError naming ``pip install "mxgateway[sim]"`` instead of "No module named 'h2'"."""

from mxgateway._extras import require_sim

require_sim()
