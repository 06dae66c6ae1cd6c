/*
 * DNS messages (RFC 1035 §4): the raw answer a backend received, parsed into a struct
 * dns_answer. Both backends hand us the packet (c-ares' abuf, unbound's answer_packet), so
 * one bounded parser serves both. Nothing here trusts the packet: every length is checked,
 * compression pointers must point strictly backwards, names are at most 255 octets.
 */
#ifndef DNS_MSG_H
#define DNS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "dns/resolver.h"

/*
 * Parses pkt, the answer to (qname, qtype), into ans: status (DNS_OK, DNS_NXDOMAIN,
 * DNS_NODATA, DNS_SERVFAIL, DNS_ERROR or DNS_FORMERR), ttl and records. Follows a CNAME
 * chain from qname (at most 8 links) and, if it followed one, puts the name it ended at in
 * ans->cname ("" otherwise). A negative answer's TTL is min(SOA TTL, SOA minimum)
 * (RFC 2308 §5), or neg_ttl when the authority section has no SOA. ans->sec is left alone.
 * Returns 0, or -1 on a malformed packet (ans->status DNS_FORMERR, ans->why says why).
 * Records are allocated: dns_answer_clear frees them.
 */
int dns_msg_parse_answer(const uint8_t *pkt, size_t len, const char *qname, uint16_t qtype,
                         uint32_t neg_ttl, struct dns_answer *ans);

/* Frees the records of ans and sets n to 0. */
void dns_answer_clear(struct dns_answer *ans);
/* Deep copy of src's records into dst (dst's own records are not freed). -1: no memory. */
int dns_answer_copy(struct dns_answer *dst, const struct dns_answer *src);

/*
 * Checks a domain name and writes its canonical form to out: lower case, no trailing dot,
 * labels 1..63 octets of printable ASCII other than '.' and '\\', at most DNS_NAME_MAX.
 * Returns 0 or -1.
 */
int dns_name_normalize(const char *in, char *out, size_t outlen);

#endif
