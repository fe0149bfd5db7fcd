"""Every validation rule, one table row each: the input, whether it is accepted,
and the exact one-line error (with the prefix the CLI prints before it).

No root, no kernel: validate.py, ipam/, the store's lookups and the CLI's
argument errors are pure or use a temporary file.
"""
from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from nsbridge import ports
from nsbridge.engine import validate as v
from nsbridge.errors import Conflict, Forbidden, InvalidArgument, NotFound, NsbridgeError
from nsbridge.ipam import allocator, pools

D = "Error response from daemon: "  # what the CLI prints before a daemon-side error
MTU = "com.docker.network.driver.mtu"
ICC = "com.docker.network.bridge.enable_icc"
MASQ = "com.docker.network.bridge.enable_ip_masquerade"
BRNAME = "com.docker.network.bridge.name"
HOSTIP = "com.docker.network.bridge.host_binding_ipv4"
N64, N65 = "n" * 64, "n" * 65

def _match(filters: list[str]) -> bool:
    from nsbridge.model import IpamConfig, Network
    from nsbridge.render.tables import network_matches

    n = Network(id="a" * 64, name="skynet", driver="bridge", created="", ipam=IpamConfig("10.1.0.0/24", "10.1.0.1"))
    return network_matches(n, filters)


# (id, call, error class or None, the line the CLI prints: prefix + message)
ROWS = [
    # -- network names --------------------------------------------------------------
    ("net-ok", lambda: v.network_name("skynet"), None, None),
    ("net-ok-64", lambda: v.network_name(N64), None, None),
    ("net-ok-chars", lambda: v.network_name("a_b.c-1"), None, None),
    ("net-empty", lambda: v.network_name(""), InvalidArgument, D + "network name must not be empty"),
    ("net-65", lambda: v.network_name(N65), InvalidArgument,
     D + f"invalid network name {'n' * 20}...: longer than 64 characters"),
    ("net-slash", lambda: v.network_name("bad/name"), InvalidArgument,
     D + "invalid network name (bad/name): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"),
    ("net-space", lambda: v.network_name("bad name"), InvalidArgument, None),
    ("net-one-char", lambda: v.network_name("x"), InvalidArgument, None),
    ("net-leading-dash", lambda: v.network_name("-x"), InvalidArgument, None),
    ("net-trailing-newline", lambda: v.network_name("ab\n"), InvalidArgument, None),
    ("net-unicode", lambda: v.network_name("réseau"), InvalidArgument, None),
    ("net-bridge", lambda: v.network_name("bridge"), Forbidden,
     D + "operation is not permitted on predefined bridge network"),
    ("net-host", lambda: v.network_name("host"), Forbidden, D + "operation is not permitted on predefined host network"),
    ("net-none", lambda: v.network_name("none"), Forbidden, D + "operation is not permitted on predefined none network"),
    # -- container names -------------------------------------------------------------
    ("ctr-ok", lambda: v.container_name("web-1.a_b"), None, None),
    ("ctr-ok-slash", lambda: v.container_name("/web"), None, None),
    ("ctr-one-char", lambda: v.container_name("x"), InvalidArgument,
     D + "Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    ("ctr-bang", lambda: v.container_name("bad!name"), InvalidArgument,
     D + "Invalid container name (bad!name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    ("ctr-empty", lambda: v.container_name(""), InvalidArgument, None),
    ("ctr-trailing-newline", lambda: v.container_name("web\n"), InvalidArgument, None),
    ("ctr-65", lambda: v.container_name(N65), InvalidArgument,
     D + f"Invalid container name ({'n' * 20}...): longer than 64 characters"),
    # -- hostnames ---------------------------------------------------------------------
    ("host-ok", lambda: v.hostname("web-1.example"), None, None),
    ("host-ok-64", lambda: v.hostname("h" * 64), None, None),
    ("host-65", lambda: v.hostname("h" * 65), InvalidArgument, D + f"invalid hostname format: {'h' * 65}"),
    ("host-space", lambda: v.hostname("a b"), InvalidArgument, D + "invalid hostname format: a b"),
    ("host-newline", lambda: v.hostname("a\nb"), InvalidArgument, None),
    ("host-underscore", lambda: v.hostname("a_b"), InvalidArgument, None),
    ("host-dash-end", lambda: v.hostname("web-"), InvalidArgument, None),
    # -- network options ---------------------------------------------------------------
    ("opt-ok-all", lambda: v.network_options({MTU: "1400", ICC: "false", MASQ: "1", BRNAME: "br-lab", HOSTIP: "127.0.0.1"}),
     None, None),
    ("opt-unknown", lambda: v.network_options({"foo": "bar"}), InvalidArgument,
     D + f"unknown network option foo (known: {BRNAME}, {ICC}, {MASQ}, {HOSTIP}, {MTU})"),
    ("opt-mtu-text", lambda: v.network_options({MTU: "abc"}), InvalidArgument,
     D + f'failed to parse {MTU} value: abc (strconv.Atoi: parsing "abc": invalid syntax)'),
    ("opt-mtu-underscore", lambda: v.network_options({MTU: "1_500"}), InvalidArgument, None),
    ("opt-mtu-space", lambda: v.network_options({MTU: " 1500"}), InvalidArgument, None),
    ("opt-mtu-empty", lambda: v.network_options({MTU: ""}), InvalidArgument, None),
    ("opt-mtu-67", lambda: v.network_options({MTU: "67"}), InvalidArgument,
     D + f"invalid {MTU} value: 67 (the MTU must be between 68 and 65535)"),
    ("opt-mtu-68", lambda: v.network_options({MTU: "68"}), None, None),
    ("opt-mtu-65535", lambda: v.network_options({MTU: "65535"}), None, None),
    ("opt-mtu-65536", lambda: v.network_options({MTU: "65536"}), InvalidArgument, None),
    ("opt-mtu-negative", lambda: v.network_options({MTU: "-1500"}), InvalidArgument, None),
    ("opt-icc-maybe", lambda: v.network_options({ICC: "maybe"}), InvalidArgument,
     D + f'failed to parse {ICC} value: maybe (strconv.ParseBool: parsing "maybe": invalid syntax)'),
    ("opt-masq-yes", lambda: v.network_options({MASQ: "yes"}), InvalidArgument, None),
    ("opt-brname-slash", lambda: v.network_options({BRNAME: "a/b"}), InvalidArgument,
     D + f"invalid {BRNAME} value: a/b (an interface name of 1-15 characters [a-zA-Z0-9_.-])"),
    ("opt-brname-16", lambda: v.network_options({BRNAME: "b" * 16}), InvalidArgument, None),
    ("opt-brname-newline", lambda: v.network_options({BRNAME: "brx\n"}), InvalidArgument, None),
    ("opt-brname-empty", lambda: v.network_options({BRNAME: ""}), InvalidArgument, None),
    ("opt-hostip-bad", lambda: v.network_options({HOSTIP: "zz"}), InvalidArgument, D + f"invalid {HOSTIP} value: zz"),
    # -- subnets -----------------------------------------------------------------------------
    ("subnet-ok", lambda: pools.parse_subnet("10.10.0.0/24"), None, None),
    ("subnet-ok-30", lambda: pools.parse_subnet("10.50.0.0/30"), None, None),
    ("subnet-not-cidr", lambda: pools.parse_subnet("notacidr"), InvalidArgument,
     D + "Invalid subnet notacidr : invalid CIDR address: notacidr"),
    ("subnet-no-prefix", lambda: pools.parse_subnet("10.0.0.0"), InvalidArgument,
     D + "Invalid subnet 10.0.0.0 : invalid CIDR address: 10.0.0.0"),
    ("subnet-33", lambda: pools.parse_subnet("10.0.0.0/33"), InvalidArgument,
     D + "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"),
    ("subnet-netmask-form", lambda: pools.parse_subnet("10.0.0.0/255.0.0.0"), InvalidArgument, None),
    ("subnet-octet-256", lambda: pools.parse_subnet("10.0.0.256/24"), InvalidArgument, None),
    ("subnet-trailing-newline", lambda: pools.parse_subnet("10.0.0.0/24\n"), InvalidArgument, None),
    ("subnet-ipv6", lambda: pools.parse_subnet("fd00::/64"), InvalidArgument, None),
    ("subnet-host-bits", lambda: pools.parse_subnet("10.20.0.1/24"), InvalidArgument,
     D + "invalid subnet 10.20.0.1/24: host bits are set (did you mean 10.20.0.0/24?)"),
    ("subnet-31", lambda: pools.parse_subnet("10.20.0.0/31"), InvalidArgument,
     D + "invalid subnet 10.20.0.0/31: too small to hold a gateway and one container (use /30 or larger)"),
    ("subnet-32", lambda: pools.parse_subnet("10.20.0.0/32"), InvalidArgument, None),
    ("subnet-loopback", lambda: pools.parse_subnet("127.0.0.0/24"), InvalidArgument,
     D + "invalid subnet 127.0.0.0/24: it overlaps the loopback range 127.0.0.0/8"),
    ("subnet-multicast", lambda: pools.parse_subnet("224.0.0.0/24"), InvalidArgument,
     D + "invalid subnet 224.0.0.0/24: it overlaps the multicast range 224.0.0.0/4"),
    ("subnet-link-local", lambda: pools.parse_subnet("169.254.0.0/16"), InvalidArgument,
     D + "invalid subnet 169.254.0.0/16: it overlaps the link-local range 169.254.0.0/16"),  # Docker accepts it
    ("subnet-link-local-part", lambda: pools.parse_subnet("169.254.10.0/24"), InvalidArgument, None),
    ("subnet-reserved", lambda: pools.parse_subnet("240.0.0.0/24"), InvalidArgument, None),
    ("subnet-zero", lambda: pools.parse_subnet("0.0.0.0/0"), InvalidArgument, None),
    ("subnet-this-net", lambda: pools.parse_subnet("0.1.0.0/16"), InvalidArgument, None),
    # -- IPAM requests (gateway, ip-range) ---------------------------------------------------------
    ("ipam-ok", lambda: v.ipam_request("10.10.0.0/24", "10.10.0.254", "10.10.0.128/25"), None, None),
    ("ipam-none", lambda: v.ipam_request(None, None, None), None, None),
    ("ipam-gw-no-subnet", lambda: v.ipam_request(None, "10.31.0.1", None), InvalidArgument,
     "every ip-range or gateway must have a corresponding subnet"),
    ("ipam-range-no-subnet", lambda: v.ipam_request(None, None, "10.31.0.0/25"), InvalidArgument,
     "every ip-range or gateway must have a corresponding subnet"),
    ("ipam-gw-outside", lambda: v.ipam_request("10.30.0.0/24", "10.31.0.1", None), InvalidArgument,
     "no matching subnet for gateway 10.31.0.1"),
    ("ipam-gw-text", lambda: v.ipam_request("10.30.0.0/24", "abc", None), InvalidArgument, D + "invalid gateway: abc"),
    ("ipam-gw-network", lambda: v.ipam_request("10.30.0.0/24", "10.30.0.0", None), InvalidArgument,
     D + "invalid gateway 10.30.0.0: it is the network or broadcast address of 10.30.0.0/24"),
    ("ipam-gw-broadcast", lambda: v.ipam_request("10.30.0.0/24", "10.30.0.255", None), InvalidArgument, None),
    ("ipam-range-outside", lambda: v.ipam_request("10.40.0.0/24", None, "10.41.0.0/25"), InvalidArgument,
     "no matching subnet for range 10.41.0.0/25"),
    ("ipam-range-bigger", lambda: v.ipam_request("10.60.0.0/24", None, "10.60.0.0/23"), InvalidArgument,
     "no matching subnet for range 10.60.0.0/23"),
    ("ipam-range-host-bits", lambda: v.ipam_request("10.40.0.0/24", None, "10.40.0.1/25"), InvalidArgument,
     D + "invalid ip-range 10.40.0.1/25: not a CIDR without host bits"),
    ("ipam-range-no-prefix", lambda: v.ipam_request("10.40.0.0/24", None, "10.40.0.5"), InvalidArgument, None),
    ("ipam-range-netmask", lambda: v.ipam_request("10.40.0.0/24", None, "10.40.0.0/255.255.255.128"),
     InvalidArgument, None),
    # -- addresses asked for with --ip -------------------------------------------------------------
    ("ip-ok", lambda: allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.9", set()), None, None),
    ("ip-text", lambda: allocator.check_requested("10.10.0.0/24", "10.10.0.1", "notanip", set()), InvalidArgument,
     D + "invalid IPv4 address: notanip"),
    ("ip-outside", lambda: allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.99.0.5", set()),
     InvalidArgument, D + "Invalid address 10.99.0.5: It does not belong to any of this network's subnets"),
    ("ip-taken", lambda: allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.200", {"10.10.0.200"}),
     Conflict, D + "Address already in use"),
    ("ip-gateway", lambda: allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.1", set()),
     Conflict, D + "Address already in use"),
    ("ip-broadcast", lambda: allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.255", set()),
     InvalidArgument, D + "Invalid address 10.10.0.255: it is the network or broadcast address of 10.10.0.0/24"),
    ("parse-ip-ok", lambda: pools.parse_ip("10.1.2.3"), None, None),
    ("parse-ip-leading-zero", lambda: pools.parse_ip("010.1.2.3"), InvalidArgument, D + "invalid IP address: 010.1.2.3"),
    ("parse-ip-space", lambda: pools.parse_ip("10.1.2.3 "), InvalidArgument, None),
    ("parse-ip-v6", lambda: pools.parse_ip("::1"), InvalidArgument, None),
    # -- full subnets and exhausted pools ----------------------------------------------------------
    ("alloc-full", lambda: allocator.allocate("10.50.0.0/30", "10.50.0.1", None, {"10.50.0.2"}, "tiny (abc)"), Conflict,
     D + "no available IPv4 addresses on this network's address pools: tiny (abc)"),
    ("alloc-range-full", lambda: allocator.allocate("10.10.0.0/24", "10.10.0.1", "10.10.0.4/31",
                                                    {"10.10.0.4", "10.10.0.5"}, "lab (x)"), Conflict, None),
    ("alloc-gateway-only", lambda: allocator.allocate("10.10.0.0/24", "10.10.0.1", "10.10.0.1/32", set(), "lab (x)"),
     Conflict, None),
    ("pool-exhausted", lambda: pools.pick_pool([ipaddress.IPv4Network("172.16.0.0/12"),
                                                 ipaddress.IPv4Network("192.168.0.0/16")]), Conflict,
     D + "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"),
    # -- labels and -o ---------------------------------------------------------------------------
    ("label-ok", lambda: v.labels(["course=net101", "flag"]), None, None),
    ("label-empty-key", lambda: v.labels(["=x"]), InvalidArgument, D + "invalid label '=x': expected KEY=VALUE"),
    ("opt-no-equals", lambda: v.key_values([MTU], "option"), InvalidArgument,
     D + f"invalid option '{MTU}': expected KEY=VALUE"),
    ("opt-empty-key", lambda: v.key_values(["=1"], "option"), InvalidArgument, None),
    # -- run/create options ------------------------------------------------------------------------
    ("dns-ok", lambda: v.dns_server("9.9.9.9"), None, None),
    ("dns-ok-v6", lambda: v.dns_server("2001:db8::53"), None, None),
    ("dns-text", lambda: v.dns_server("notanip"), InvalidArgument,
     'invalid argument "notanip" for "--dns" flag: notanip is not an ip address'),
    ("dns-injection", lambda: v.dns_server("1.1.1.1\nnameserver 6.6.6.6"), InvalidArgument, None),
    ("dns-search-ok", lambda: v.dns_search("lab.example"), None, None),
    ("dns-search-dot", lambda: v.dns_search("."), None, None),
    ("dns-search-space", lambda: v.dns_search("a b"), InvalidArgument,
     'invalid argument "a b" for "--dns-search" flag: a b is not a valid domain'),
    ("dns-search-digits", lambda: v.dns_search("123"), InvalidArgument, None),
    ("dns-search-injection", lambda: v.dns_search("x.example\nnameserver 6.6.6.6"), InvalidArgument, None),
    ("dns-search-255", lambda: v.dns_search("a." * 127 + "b"), InvalidArgument, None),
    ("dns-option-ok", lambda: v.dns_option("ndots:2"), None, None),
    ("dns-option-space", lambda: v.dns_option("ndots:2 debug"), InvalidArgument,
     'invalid argument "ndots:2 debug" for "--dns-option" flag: a resolv.conf option is one word without spaces'),
    ("dns-option-newline", lambda: v.dns_option("ndots:2\nnameserver 6.6.6.6"), InvalidArgument, None),
    ("dns-option-empty", lambda: v.dns_option(""), InvalidArgument, None),
    ("add-host-ok", lambda: v.extra_host("db:10.1.2.3"), None, None),
    ("add-host-ok-v6", lambda: v.extra_host("db:::1"), None, None),
    ("add-host-gateway", lambda: v.extra_host("gw:host-gateway"), None, None),
    ("add-host-no-ip", lambda: v.extra_host("foo"), InvalidArgument,
     'invalid argument "foo" for "--add-host" flag: bad format for add-host: "foo"'),
    ("add-host-no-name", lambda: v.extra_host(":10.1.2.3"), InvalidArgument, None),
    ("add-host-bad-ip", lambda: v.extra_host("foo:bar"), InvalidArgument,
     'invalid argument "foo:bar" for "--add-host" flag: invalid IP address in add-host: "bar"'),
    ("add-host-space", lambda: v.extra_host("a b:10.1.2.3"), InvalidArgument, None),
    ("add-host-newline", lambda: v.extra_host("a\n10.9.9.9 evil:10.1.2.3"), InvalidArgument, None),
    ("link-ok", lambda: v.link("web"), None, None),
    ("link-ok-alias", lambda: v.link("web:w"), None, None),
    ("link-empty", lambda: v.link(""), InvalidArgument,
     'invalid argument "" for "--link" flag: empty string specified for links'),
    ("link-three", lambda: v.link("a:b:c"), InvalidArgument,
     'invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c'),
    ("link-alias-space", lambda: v.link("web:a b"), InvalidArgument, None),
    ("env-ok", lambda: v.env_var("A=1"), None, None),
    ("env-ok-from-host", lambda: v.env_var("HOME"), None, None),
    ("env-no-name", lambda: v.env_var("=x"), InvalidArgument,
     'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x'),
    ("env-empty", lambda: v.env_var(""), InvalidArgument, None),
    ("restart-ok", lambda: v.restart_policy("unless-stopped"), None, None),
    ("restart-ok-count", lambda: v.restart_policy("on-failure:3"), None, None),
    ("restart-bogus", lambda: v.restart_policy("bogus"), InvalidArgument, D + "invalid restart policy 'bogus'"),
    ("restart-count-text", lambda: v.restart_policy("on-failure:x"), InvalidArgument,
     "maximum retry count must be an integer"),
    ("restart-count-always", lambda: v.restart_policy("always:3"), InvalidArgument,
     D + "maximum retry count cannot be used with restart policy 'always'"),
    ("restart-negative", lambda: v.restart_policy("on-failure:-1"), InvalidArgument,
     D + "maximum retry count cannot be negative"),
    ("restart-format", lambda: v.restart_policy("on-failure:1:2"), InvalidArgument, "invalid restart policy format"),
    # -- --filter of `network ls` ---------------------------------------------------------------------
    ("filter-ok", lambda: _match(["name=sky", "type=custom", "driver=bridge"]), None, None),
    ("filter-no-equals", lambda: _match(["label"]), InvalidArgument,
     'invalid argument "label" for "-f, --filter" flag: bad format of filter (expected name=value)'),
    ("filter-unknown", lambda: _match(["bogus=1"]), InvalidArgument, D + "Invalid filter 'bogus'"),
    ("filter-type", lambda: _match(["type=weird"]), InvalidArgument, D + "Invalid filter: 'type'='weird'"),
    # -- --aux-address, and several --subnet/--gateway/--ip-range (Docker's CLI, then its daemon) ---------
    ("aux-ok", lambda: v.ipam_request("172.28.0.0/16", None, None, {"my-router": "172.28.1.5"}), None, None),
    ("aux-outside", lambda: v.ipam_request("172.28.0.0/16", None, None, {"r": "10.0.0.5"}), InvalidArgument,
     "no matching subnet for aux-address 10.0.0.5"),
    ("aux-no-subnet", lambda: v.ipam_request(None, None, None, {"r": "10.0.0.5"}), InvalidArgument,
     "no matching subnet for aux-address 10.0.0.5"),
    ("aux-not-ip", lambda: v.ipam_request("172.28.0.0/16", None, None, {"r": "router"}), InvalidArgument,
     'ParseAddr("router"): unable to parse IP'),
    ("aux-ipv6", lambda: v.ipam_request("172.28.0.0/16", None, None, {"r": "fd00::5"}), InvalidArgument,
     D + "invalid aux-address fd00::5: nsbridge networks are IPv4 only"),
    ("aux-empty-skipped", lambda: v.ipam_request(None, None, None, v.aux_addresses(["10.0.0.5"])), None, None),
    ("aux-is-gateway", lambda: allocator.reserve_aux("10.30.0.0/24", "10.30.0.1", {"r": "10.30.0.1"}), Conflict,
     D + "failed to allocate secondary ip address (r:10.30.0.1): Address already in use"),
    ("aux-twice", lambda: allocator.reserve_aux("10.30.0.0/24", "10.30.0.1", {"a": "10.30.0.9", "b": "10.30.0.9"}),
     Conflict, D + "failed to allocate secondary ip address (b:10.30.0.9): Address already in use"),
    ("flags-one", lambda: v.ipam_flags(["10.1.0.0/24"], ["10.1.0.9"], []), None, None),
    ("flags-two-subnets", lambda: v.ipam_flags(["10.1.0.0/24", "10.2.0.0/24"], [], []), Forbidden,
     D + "bridge driver doesn't support multiple subnets"),
    ("flags-overlap", lambda: v.ipam_flags(["10.1.0.0/16", "10.1.2.0/24"], [], []), InvalidArgument,
     "multiple overlapping subnet configuration is not supported"),
    ("flags-count", lambda: v.ipam_flags(["10.1.0.0/24"], ["10.1.0.2", "10.1.0.3"], []), InvalidArgument,
     "every ip-range or gateway must have a corresponding subnet"),
    ("flags-two-gateways", lambda: v.ipam_flags(["10.1.0.0/24", "10.2.0.0/24"], ["10.1.0.2", "10.1.0.3"], []),
     InvalidArgument, "cannot configure multiple gateways (10.1.0.3, 10.1.0.2) for the same subnet (10.1.0.0/24)"),
    ("flags-two-ranges", lambda: v.ipam_flags(["10.1.0.0/24", "10.2.0.0/24"], [], ["10.1.0.0/25", "10.1.0.128/25"]),
     InvalidArgument, "cannot configure multiple ranges (10.1.0.128/25, 10.1.0.0/25) on the same subnet (10.1.0.0/24)"),
    ("flags-range-outside", lambda: v.ipam_flags(["10.1.0.0/24", "10.2.0.0/24"], [], ["10.3.0.0/25"]),
     InvalidArgument, "no matching subnet for range 10.3.0.0/25"),
    # -- --mac-address, --add-host ------------------------------------------------------------------
    ("mac-ok", lambda: v.mac_address("92:d0:c6:0a:29:33"), None, None),
    ("mac-dashes-dots", lambda: [v.mac_address("92-D0-C6-0A-29-33"), v.mac_address("92d0.c60a.2933")], None, None),
    ("mac-short", lambda: v.mac_address("92:d0:c6:0a:29"), InvalidArgument, "92:d0:c6:0a:29 is not a valid mac address"),
    ("mac-eui64", lambda: v.mac_address("02:00:5e:10:00:00:00:01"), InvalidArgument,
     "02:00:5e:10:00:00:00:01 is not a valid mac address"),
    ("mac-mixed-separators", lambda: v.mac_address("92:d0-c6:0a:29:33"), InvalidArgument, None),
    ("mac-multicast", lambda: v.mac_address("01:00:5e:00:00:01"), InvalidArgument,
     D + "invalid MAC address 01:00:5e:00:00:01: a multicast address cannot be an interface's address"),
    ("mac-zero", lambda: v.mac_address("00:00:00:00:00:00"), InvalidArgument, None),
    ("add-host-equals", lambda: v.extra_host("my-hostname=8.8.8.8"), None, None),
    ("add-host-brackets", lambda: v.extra_host("my-hostname=[2001:db8::33]"), None, None),
    ("add-host-colon-in-name", lambda: v.extra_host("a:b=1.2.3.4"), InvalidArgument,
     'invalid argument "a:b=1.2.3.4" for "--add-host" flag: bad format for add-host: "a:b=1.2.3.4"'),
    ("add-host-bad-ip-brackets", lambda: v.extra_host("h=[1.2.3]"), InvalidArgument,
     'invalid argument "h=[1.2.3]" for "--add-host" flag: invalid IP address in add-host: "1.2.3"'),
    # -- the extended --network syntax -------------------------------------------------------------
    ("net-ext-ok", lambda: v.network_mode(["name=my-net1,ip=192.0.2.42", "name=my-net2,alias=db"]), None, None),
    ("net-ext-sysctls", lambda: v.network_attachment(
        'name=n,"driver-opt=com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1,'
        'net.ipv4.conf.IFNAME.forwarding=0",ip=192.0.2.42'), None, None),
    ("net-ext-key", lambda: v.network_attachment("name=n,foo=bar"), InvalidArgument,
     'invalid argument "name=n,foo=bar" for "--network" flag: invalid field key foo'),
    ("net-ext-no-name", lambda: v.network_attachment("ip=10.0.0.2"), InvalidArgument,
     'invalid argument "ip=10.0.0.2" for "--network" flag: network name not specified'),
    ("net-ext-ip6", lambda: v.network_attachment("name=n,ip6=2001:db8::33"), InvalidArgument,
     D + "invalid ip6 2001:db8::33: nsbridge networks are IPv4 only"),
    ("net-ext-sysctl-no-ifname", lambda: v.network_attachment("name=n,sysctl=net.ipv4.conf.eth0.forwarding=0"),
     InvalidArgument, None),
    ("net-ext-sysctl-not-net", lambda: v.endpoint_sysctls("kernel.IFNAME.x=1"), InvalidArgument, None),
    ("net-ext-alias-bridge", lambda: v.network_mode(["name=bridge,alias=x"]), InvalidArgument,
     "network-scoped aliases are only supported for user-defined networks"),
    # -- --network ---------------------------------------------------------------------------------
    ("mode-default", lambda: v.network_mode([]), None, None),
    ("mode-none-and-net", lambda: v.network_mode(["none", "skynet"]), InvalidArgument,
     D + "container cannot be connected to multiple networks with one of the networks in private (none) mode"),
    ("mode-host-and-net", lambda: v.network_mode(["host", "skynet"]), InvalidArgument,
     D + "conflicting options: --network host cannot be combined with other networks"),
    ("mode-container-empty", lambda: v.network_mode(["container:"]), InvalidArgument,
     D + "invalid container format container:<name|id>"),
    ("mode-empty-name", lambda: v.network_mode([""]), NotFound, D + "network  not found"),
    ("mode-ip-one-network", lambda: v.ip_for("10.10.0.9", v.network_mode(["lab"])), None, None),
    ("mode-ip-same-network-twice", lambda: v.ip_for("10.10.0.9", v.network_mode(["lab", "lab"])), None, None),
    ("mode-ip-two-networks", lambda: v.ip_for("10.10.0.9", v.network_mode(["lab", "skynet"])), InvalidArgument,
     "conflicting options: --ip is an address on one network, and 2 were given with --network "
     "(give each its own: --network name=NET,ip=IP)"),  # Docker 25+ gives it to the first
    # -- host addresses of -p ------------------------------------------------------------------------
    ("port-ip-ok", lambda: ports.parse_publish("127.0.0.2:8088:82"), None, None),
    ("port-ip-any", lambda: ports.parse_publish("0.0.0.0:8088:82"), None, None),
    ("port-ip-multicast", lambda: ports.parse_publish("224.0.0.1:8088:82"), ports.PortSpecError,
     "invalid IP address 224.0.0.1: a multicast address is not a host address to publish on"),
    ("port-ip-broadcast", lambda: ports.parse_publish("255.255.255.255:8088:82/udp"), ports.PortSpecError,
     "invalid IP address 255.255.255.255: a reserved address is not a host address to publish on"),
    ("port-ip-this-network", lambda: ports.parse_publish("0.1.2.3:8088:82"), ports.PortSpecError, None),
]


@pytest.mark.parametrize("call,error,line", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_rule(call, error, line):
    if error is None:
        call()
        return
    with pytest.raises(NsbridgeError) as info:
        call()
    e = info.value
    assert isinstance(e, error), f"{type(e).__name__}: {e}"
    shown = f"{e.prefix}{e}"
    if line is not None:
        assert shown == line
    from nsbridge.cli.main import one_line

    assert "\n" not in one_line(shown)  # printed on one line (a newline the user typed is shown escaped)


def test_table_is_big_and_ids_unique():
    assert len({r[0] for r in ROWS}) == len(ROWS) > 100


def spec(**kw) -> SimpleNamespace:
    base = dict(hostname=None, env=[], dns=[], dns_search=[], dns_options=[], add_hosts=[], links=[], restart="no",
                mac_address=None, aliases=[], networks=[])
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("kw,needle", [
    ({}, None),
    ({"hostname": "web", "dns": ["9.9.9.9"], "dns_search": ["lab.example"], "dns_options": ["ndots:2"],
      "add_hosts": ["gw:host-gateway"], "links": ["db:database"], "restart": "always"}, None),
    ({"hostname": "a b"}, "invalid hostname format"),
    ({"env": ["=x"]}, '"-e, --env" flag'),
    ({"dns": ["x"]}, '"--dns" flag'),
    ({"dns_search": ["a b"]}, '"--dns-search" flag'),
    ({"dns_options": ["a b"]}, '"--dns-option" flag'),
    ({"add_hosts": ["x"]}, '"--add-host" flag'),
    ({"links": ["a:b:c"]}, '"--link" flag'),
    ({"restart": "sometimes"}, "invalid restart policy 'sometimes'"),
    ({"mac_address": "zz"}, "zz is not a valid mac address"),
    ({"aliases": ["db"]}, "network-scoped aliases are only supported for user-defined networks"),
    ({"aliases": ["db"], "networks": ["bridge"]}, "network-scoped aliases are only supported for user-defined networks"),
])
def test_run_options_checks_every_option(kw, needle):
    if needle is None:
        v.run_options(spec(**kw))
        return
    with pytest.raises(InvalidArgument, match=needle):
        v.run_options(spec(**kw))


def test_run_options_normalise_as_dockers_cli():
    s = spec(add_hosts=["my-hostname=8.8.8.8", "v6=[2001:db8::33]", "gw=host-gateway", "old:1.2.3.4"],
             mac_address="92-D0-C6-0A-29-33", aliases=["db"], networks=["skynet"])
    v.run_options(s)
    assert s.add_hosts == ["my-hostname:8.8.8.8", "v6:2001:db8::33", "gw:host-gateway", "old:1.2.3.4"]
    assert s.mac_address == "92:d0:c6:0a:29:33"


def test_default_gateway_follows_the_ip_range():
    """libnetwork asks its IPAM for the gateway in the pool's range: the range's
    first address (the subnet's first host when the range starts the subnet)."""
    net = ipaddress.IPv4Network
    assert allocator.default_gateway(net("172.28.0.0/16"), None) == "172.28.0.1"
    assert allocator.default_gateway(net("172.28.0.0/16"), net("172.28.5.0/24")) == "172.28.5.0"
    assert allocator.default_gateway(net("172.20.0.0/16"), net("172.20.240.0/20")) == "172.20.240.0"
    assert allocator.default_gateway(net("10.0.0.0/24"), net("10.0.0.0/25")) == "10.0.0.1"
    # containers then take the range's next addresses
    assert allocator.allocate("172.28.0.0/16", "172.28.5.0", "172.28.5.0/24", set(), "x") == "172.28.5.1"


def test_cli_reported_errors_have_no_daemon_prefix():
    """What Docker's CLI refuses before asking the daemon is printed without its prefix."""
    assert v.CliInvalid("x").prefix == ""
    assert issubclass(v.CliInvalid, InvalidArgument)


# -- lookups by ID prefix (the store) ----------------------------------------------------------------
def test_ambiguous_prefixes_give_dockers_errors(tmp_path):
    from nsbridge.model import Container, IpamConfig, Network
    from nsbridge.state.store import Store

    s = Store(str(tmp_path / "state.db"))
    with s.tx():
        for i, nid in enumerate(("a1" + "0" * 62, "a2" + "0" * 62, "a3" + "0" * 62, "b1" + "0" * 62)):
            s.put_network(Network(id=nid, name=f"n{i}", driver="bridge", created="",
                                  ipam=IpamConfig(f"10.{i}.0.0/24", f"10.{i}.0.1")))
        for i, cid in enumerate(("c1" + "0" * 62, "c2" + "0" * 62, "d1" + "0" * 62)):
            s.put_container(Container(id=cid, name=f"ctr{i}", created=""))
    with pytest.raises(InvalidArgument) as e:
        s.find_network("a")
    assert str(e.value) == "network a is ambiguous (3 matches found based on ID prefix)"  # all of them counted
    with pytest.raises(InvalidArgument) as e:
        s.find_container("c")
    assert str(e.value) == "Multiple IDs found with provided prefix: c"
    assert s.find_network("b").name == "n3" and s.find_container("d").name == "ctr2"
    assert s.find_network("e") is None and s.find_container("e") is None
    assert s.find_network("n0").id.startswith("a1")  # names first
    s.close()


# -- the CLI: usage errors and one-line messages ----------------------------------------------------
def cli_error(argv: list[str]):
    from nsbridge.cli import main as m

    parser = m.build_parser(*m._verb(argv))
    with pytest.raises(m.ArgError) as e:
        m._parse(parser, argv)
    return str(e.value), e.value.prog, e.value.code


@pytest.mark.parametrize("argv,message,prog,code", [
    (["network", "create", "--foo", "x"], "unknown flag: --foo", "nsbridge network create", 125),
    (["network", "create", "--foo=1", "x"], "unknown flag: --foo", "nsbridge network create", 125),
    (["network", "rm", "--forc", "x"], "unknown flag: --forc", "nsbridge network rm", 125),  # no abbreviations
    (["network", "create"], '"nsbridge network create" requires exactly 1 argument.', "nsbridge network create", 1),
    (["network", "create", "a1", "b1"], '"nsbridge network create" requires exactly 1 argument.',
     "nsbridge network create", 1),
    (["network", "connect", "lab"], '"nsbridge network connect" requires exactly 2 arguments.',
     "nsbridge network connect", 1),
    (["network", "rm"], '"nsbridge network rm" requires at least 1 argument.', "nsbridge network rm", 1),
    (["rm"], '"nsbridge rm" requires at least 1 argument.', "nsbridge rm", 1),
    (["stop", "-t", "abc", "web"], "argument -t/--time/--timeout: invalid int value: 'abc'", "nsbridge stop", 1),
    (["ps", "--bogus"], "unknown flag: --bogus", "nsbridge ps", 125),
])
def test_usage_errors_name_the_command(argv, message, prog, code):
    assert cli_error(argv) == (message, prog, code)


@pytest.mark.parametrize("text,shown", [
    ("network ab\nc not found", "network ab\\nc not found"),
    ("tab\there", "tab\\there"),
    ("bell\x07", "bell\\x07"),
    ("plain é text", "plain é text"),
])
def test_messages_are_printed_on_one_line(text, shown):
    from nsbridge.cli.main import one_line

    assert one_line(text) == shown
