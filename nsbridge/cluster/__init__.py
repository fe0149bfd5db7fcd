"""Multi-host state for overlay networks: the etcd client (etcd.py), the key
layout (layout.py), this host's membership (member.py), the cluster-wide
registry of networks, addresses and endpoints (registry.py), and the per-host
watcher that keeps the kernel in step with the store (watcher.py).

What the overlay driver calls (every etcd call with the thread in the host
namespace, `host.entered()`, so its socket is opened there):
  m = member.membership(store, host.netns)          None: not joined (refuse -d overlay)
  reg = registry.Registry(m.client(), store, m)
  reg.create_network(name, subnet, gateway, ip_range, attachable, options, labels, avoid=host routes)
      -> layout.ClusterNetwork (id, subnet, gateway, vni); Conflict with Docker's texts
  reg.network(ref) / reg.networks() / reg.remove_network(ref) (Forbidden while any host has endpoints)
  reg.allocate_ip(net, endpoint_id, requested=None) -> ip   unique cluster-wide, on this host's lease
  reg.put_endpoint(layout.ClusterEndpoint(...)) / reg.remove_endpoint(net_id, ep_id) / reg.release_ip(net_id, ip)
  reg.endpoints(net_id) -> [ClusterEndpoint]         watcher.desired_peers(...) -> {net_id: {Peer}}
and in kernel/overlay.py: create_network_ns(host.netns, net.id, net.vni, net.gateway, prefixlen,
m.advertise) -> netns name; delete_network_ns(name); sync_peers(path, peers); vxlan_info(path);
BRIDGE (br0, where container veths go: NsLink.add_veth in that namespace); GWBRIDGE_OPTIONS.
Every failure to reach etcd is etcd.ClusterUnavailable, one line: claim in etcd first, then make
kernel objects with an undo that withdraws the claims.
"""
