"""See and explain the network: `show` (the kernel objects nsbridge made, as
text, JSON, dot or a self-contained HTML page), `why` (can A reach B, and if
not the first cause with the kernel's evidence), `trace` (packets on a bridge
or an interface, hops named by nsbridge's names; the only scapy user).

The per-network parts are one function per driver kind (show.NETWORK_VIEWS,
why's path checks), so that a new driver adds its own without touching the
others. Everything here reads: the store, the kernel (rtnetlink dumps,
iptables-save -c) and real probes; nothing is changed.
"""
