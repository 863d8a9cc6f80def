"""Guards the contracts: descriptor-derived hypothesis strategies, released
baselines and the compatibility checks built on them."""
