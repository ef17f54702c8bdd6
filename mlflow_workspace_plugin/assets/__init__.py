"""The workspace's versioned assets: data, environments, components (one storage rule: store.py)."""
