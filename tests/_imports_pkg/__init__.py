"""A package whose module ``heavy`` imports numpy; ``handlers`` imports it relatively."""
