"""The only package that touches the kernel: netlink, namespaces, iptables, /proc/sys."""
