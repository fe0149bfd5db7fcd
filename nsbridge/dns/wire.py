"""What the resolver's modules share: the log line, and a reply packed by dnslib."""
from __future__ import annotations

import os
import sys
import time

from dnslib import EDNS0, QTYPE, RR, DNSRecord
from dnslib import PTR as RD_PTR
from dnslib import A as RD_A

from nsbridge.dns.records import Answer

MAX_QUERY = 4096  # larger queries are not DNS queries we serve: dropped


def log(msg: str) -> None:
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"{t} nsbridge-dns[{os.getpid()}] {msg}\n")
    sys.stderr.flush()


def packed(req: DNSRecord, ans: Answer, rcode: int, edns: bool, tc: bool = False) -> bytes:
    """The whole reply to REQ, minus its 2-byte ID."""
    rep = req.reply(ra=1, aa=0)  # Docker's answers are not authoritative either
    rep.header.ad = 0  # reply() copies the query's flags; we validate nothing
    rep.header.rcode = rcode
    rep.header.tc = int(tc)
    q = req.q
    for r in ans.records:
        rdata = RD_A(r) if ans.rtype == QTYPE.A else RD_PTR(r)
        rep.add_answer(RR(q.qname, ans.rtype, rdata=rdata, ttl=ans.ttl))
    if edns:
        rep.add_ar(EDNS0(udp_len=MAX_QUERY))
    return rep.pack()[2:]
