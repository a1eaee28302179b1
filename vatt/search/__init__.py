"""Search your own media with a trained VATT: `Encoder` (Python), `python -m vatt.search` (command line,
local web page). See docs/search.md."""
from vatt.search.encoder import Encoder, similarity

__all__ = ["Encoder", "similarity"]
