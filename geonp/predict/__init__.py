"""The prediction engine: targets and context selection (``context``), the network call (``network``),
post-processing, joint draws, streaming updates and conservation."""
