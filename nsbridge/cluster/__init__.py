"""Multi-host state for overlay networks: the etcd client (etcd.py), the key
layout (layout.py), this host's membership (member.py), the cluster-wide
registry of networks, addresses and endpoints (registry.py), and the per-host
watcher that keeps the kernel in step with the store (watcher.py)."""
