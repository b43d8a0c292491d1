"""Search for factorizations: the AlphaTensor agent and flip-graph local search (imports the algebra only)."""
