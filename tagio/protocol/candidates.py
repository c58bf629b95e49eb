"""Which announced candidate addresses a partner may be sent packets to: the guard against steering.

Theory of operation. A rendezvous hands each side the other's candidates: addresses the partner
announced itself (its interfaces' addresses with its listener port) and addresses the relay
observed for it (the source of its TCP registration, its UDP reflexive address). Both sides then
dial and punch them, so an announced list is a request to send packets somewhere. Taken as it
comes, a viewer could list a victim's address and make a host dial and punch it for it: a
scanner, or a packet amplifier (issue 10 item 8). So a candidate is used only when the partner
could own it:

    kind of address            used when
    unusable                   never: unspecified, multicast, broadcast, reserved, port 0
    an IP the relay observed   always (the partner was seen there; any port of it)
    loopback                   never otherwise (a partner on this machine is observed on loopback)
    site (private, link-local, only when both sides were observed at one IP (behind one NAT, on one
      shared, documentation)   LAN) or one IPv6 /64, or the partner was found on our own LAN
    public                     never otherwise (it would be somebody else's address)

and at most MAX_CANDIDATES announced ones, in the partner's order. The relay applies this before it
forwards candidates (tagio.relay.logic), and both clients apply it again to what they receive
(tagio.net.candidates), so a relay of an older version cannot widen it. A malicious relay still
names the addresses it claims to have observed: the per-candidate and per-request budgets of
tagio.net.punch and tagio.net.connect bound what it can make a client send.

Pure functions over (ip, port) tuples. An IPv4-mapped IPv6 address (what a dual-stack relay
observes for an IPv4 client) counts, and is returned, as the IPv4 address it carries.
"""

import ipaddress

MAX_CANDIDATES = 4         # announced candidates used per partner: interfaces worth trying are few
SITE_PREFIX_V6 = 64        # IPv6 hosts on one link share their /64

UNUSABLE, LOOPBACK, SITE, PUBLIC = "unusable", "loopback", "site", "public"
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")   # "this host on this network": never a destination


def parse_ip(text):
    """The ipaddress object for `text` (IPv4-mapped IPv6 as IPv4), or None when it is no IP."""
    try:
        ip = ipaddress.ip_address(str(text).split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def kind_of(ip) -> str:
    """UNUSABLE, LOOPBACK, SITE or PUBLIC for an ipaddress object (or None: UNUSABLE)."""
    if ip is None or ip.is_unspecified or ip.is_multicast:
        return UNUSABLE
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_reserved or (ip.version == 4 and ip in _THIS_NETWORK):   # 240/4 holds the broadcast address
        return UNUSABLE
    return PUBLIC if ip.is_global else SITE


def normal(address):
    """(ip text, port) with the IP normalised (IPv4-mapped -> IPv4), or None when it is unusable."""
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return None
    ip = parse_ip(host)
    if not isinstance(port, int) or not 0 < port < 65536 or kind_of(ip) == UNUSABLE:
        return None
    return (str(ip), port)


def normal_ip(text):
    """The normalised IP text of an observed address, or None (none, or unusable)."""
    ip = parse_ip(text) if text else None
    return None if kind_of(ip) == UNUSABLE else str(ip)


def same_site(ip_a, ip_b) -> bool:
    """Were both sides observed at one site: one IPv4 address (one NAT, one LAN, one machine), or
    one IPv6 /64 (one link: IPv6 hosts have addresses of their own, no NAT shares one)?"""
    a, b = normal_ip(ip_a), normal_ip(ip_b)
    if a is None or b is None:
        return False
    if ":" in a and ":" in b:
        return ipaddress.ip_network(f"{a}/{SITE_PREFIX_V6}", strict=False) == \
            ipaddress.ip_network(f"{b}/{SITE_PREFIX_V6}", strict=False)
    return a == b


def plausible(candidates, observed_ips, *, same_site=False, limit=MAX_CANDIDATES) -> list:
    """The announced `candidates` a partner observed at `observed_ips` could own (see the table
    above): normalised, without duplicates, in their order, at most `limit` of them."""
    observed = {ip for ip in (normal_ip(text) for text in observed_ips) if ip is not None}
    kept = []
    for candidate in candidates:
        address = normal(candidate)
        if address is None or address in kept:
            continue
        if address[0] in observed or (same_site and kind_of(parse_ip(address[0])) == SITE):
            kept.append(address)
        if len(kept) >= limit:
            break
    return kept
