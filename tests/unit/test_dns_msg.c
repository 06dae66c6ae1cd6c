/*
 * dns/msg.c: answers parsed right, and broken packets (truncated, compression loops, bad
 * lengths, oversized names) rejected cleanly, never read out of bounds (ASan build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "dns/msg.h"
#include "test_dns_pkt.h"

static int
parse(const struct pkt *p, const char *qname, uint16_t qtype, struct dns_answer *a)
{
    memset(a, 0, sizeof(*a));
    return dns_msg_parse_answer(p->b, p->len, qname, qtype, 60, a);
}

static void
test_srv(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    pkt_start(&p, 0, 3, 0, "_xmpp-server._tcp.example.test", 33);
    pkt_srv(&p, 300, 10, 60, 5269, "xmpp1.example.test");
    pkt_srv(&p, 200, 10, 40, 5269, "XMPP2.Example.Test");
    pkt_srv(&p, 900, 20, 0, 5270, ".");
    assert_int_equal(parse(&p, "_xmpp-server._tcp.example.test", 33, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.ttl, 200); /* the smallest */
    assert_string_equal(a.rr.srv[0].target, "xmpp1.example.test");
    assert_int_equal(a.rr.srv[0].weight, 60);
    assert_string_equal(a.rr.srv[1].target, "xmpp2.example.test"); /* lower case */
    assert_string_equal(a.rr.srv[2].target, ".");
    assert_int_equal(a.rr.srv[2].port, 5270);
    dns_answer_clear(&a);
}

static void
test_addresses_and_bound(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    pkt_start(&p, 0, 40, 0, "many.test", 1);
    for (int i = 0; i < 40; i++)
        pkt_a(&p, 100, 192, 0, 2, (uint8_t)i);
    assert_int_equal(parse(&p, "many.test", 1, &a), 0);
    assert_int_equal(a.n, DNS_MAX_RECORDS); /* bounded */
    assert_int_equal(a.rr.addr[31].addr[3], 31);
    assert_int_equal(a.rr.addr[0].family, AF_INET);
    dns_answer_clear(&a);

    pkt_start(&p, 0, 1, 0, "v6.test", 28);
    pkt_rr(&p, 28, 100, 16);
    for (int i = 0; i < 16; i++)
        pkt_u8(&p, (unsigned int)i);
    assert_int_equal(parse(&p, "v6.test", 28, &a), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.rr.addr[0].family, AF_INET6);
    assert_int_equal(a.rr.addr[0].addr[15], 15);
    dns_answer_clear(&a);
}

static void
test_tlsa(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    pkt_start(&p, 0, 2, 0, "_5269._tcp.x.test", 52);
    pkt_rr(&p, 52, 300, 3 + 32);
    pkt_u8(&p, 3);
    pkt_u8(&p, 1);
    pkt_u8(&p, 1);
    for (int i = 0; i < 32; i++)
        pkt_u8(&p, (unsigned int)(0xa0 + i));
    /* Too long to keep: skipped, not an error. */
    pkt_rr(&p, 52, 300, 3 + DNS_TLSA_DATA_MAX + 1);
    pkt_u8(&p, 3);
    pkt_u8(&p, 0);
    pkt_u8(&p, 0);
    memset(p.b + p.len, 0x55, DNS_TLSA_DATA_MAX + 1);
    p.len += DNS_TLSA_DATA_MAX + 1;
    assert_int_equal(parse(&p, "_5269._tcp.x.test", 52, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.rr.tlsa[0].usage, 3);
    assert_int_equal(a.rr.tlsa[0].selector, 1);
    assert_int_equal(a.rr.tlsa[0].mtype, 1);
    assert_int_equal(a.rr.tlsa[0].len, 32);
    assert_int_equal(a.rr.tlsa[0].data[31], 0xa0 + 31);

    struct dns_answer c;
    assert_int_equal(dns_answer_copy(&c, &a), 0);
    dns_answer_clear(&a);
    assert_int_equal(c.rr.tlsa[0].data[0], 0xa0); /* a deep copy survives the original */
    dns_answer_clear(&c);

    /* TLSA RDATA shorter than its three fixed fields. */
    pkt_start(&p, 0, 1, 0, "_5269._tcp.x.test", 52);
    pkt_rr(&p, 52, 300, 2);
    pkt_u16(&p, 0x0301);
    assert_int_equal(parse(&p, "_5269._tcp.x.test", 52, &a), -1);
    assert_int_equal(a.status, DNS_FORMERR);
}

static void
test_cname_chain(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    pkt_start(&p, 0, 3, 0, "alias.test", 1);
    pkt_rr(&p, 5, 50, (unsigned int)pkt_name_len("real.test"));
    pkt_name(&p, "real.test");
    pkt_rr_named(&p, "other.test", 1, 300, 4); /* not on the chain: ignored */
    pkt_u32(&p, 0x0a000001);
    pkt_rr_named(&p, "real.test", 1, 300, 4);
    pkt_u32(&p, 0xc0000207);
    assert_int_equal(parse(&p, "alias.test", 1, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.rr.addr[0].addr[3], 7);
    assert_int_equal(a.ttl, 50);               /* the chain's minimum */
    assert_string_equal(a.cname, "real.test"); /* the alias is exposed */
    dns_answer_clear(&a);

    /* Two links, the last one in upper case, ending in NODATA: cname is the chain's end. */
    pkt_start(&p, 0, 2, 0, "a1.test", 28);
    pkt_rr(&p, 5, 50, (unsigned int)pkt_name_len("a2.test"));
    pkt_name(&p, "a2.test");
    pkt_rr_named(&p, "a2.test", 5, 50, (unsigned int)pkt_name_len("End.Test"));
    pkt_name(&p, "End.Test");
    assert_int_equal(parse(&p, "a1.test", 28, &a), 0);
    assert_int_equal(a.status, DNS_NODATA);
    assert_string_equal(a.cname, "end.test");

    /* A CNAME owned by another name is not on the chain: no alias. */
    pkt_start(&p, 0, 2, 0, "plain.test", 1);
    pkt_rr_named(&p, "other.test", 5, 50, (unsigned int)pkt_name_len("real.test"));
    pkt_name(&p, "real.test");
    pkt_rr(&p, 1, 300, 4);
    pkt_u32(&p, 0x0a000001);
    assert_int_equal(parse(&p, "plain.test", 1, &a), 0);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.cname, "");
    dns_answer_clear(&a);
}

static void
test_negative(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    /* NXDOMAIN: TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308 §5). */
    pkt_start(&p, 3, 0, 1, "gone.test", 1);
    pkt_soa(&p, 3600, 30);
    assert_int_equal(parse(&p, "gone.test", 1, &a), 0);
    assert_int_equal(a.status, DNS_NXDOMAIN);
    assert_int_equal(a.ttl, 30);
    pkt_start(&p, 3, 0, 1, "gone.test", 1);
    pkt_soa(&p, 10, 30);
    assert_int_equal(parse(&p, "gone.test", 1, &a), 0);
    assert_int_equal(a.ttl, 10);

    /* NODATA: NOERROR, no records of the type, no SOA: the default. */
    pkt_start(&p, 0, 1, 0, "txt.test", 1);
    pkt_rr(&p, 16, 300, 3);
    pkt_u8(&p, 2);
    pkt_u16(&p, 0x6869);
    assert_int_equal(parse(&p, "txt.test", 1, &a), 0);
    assert_int_equal(a.status, DNS_NODATA);
    assert_int_equal(a.ttl, 60);
    assert_int_equal(a.n, 0);

    pkt_start(&p, 2, 0, 0, "broken.test", 1);
    assert_int_equal(parse(&p, "broken.test", 1, &a), 0);
    assert_int_equal(a.status, DNS_SERVFAIL);
    pkt_start(&p, 5, 0, 0, "broken.test", 1);
    assert_int_equal(parse(&p, "broken.test", 1, &a), 0);
    assert_int_equal(a.status, DNS_SERVFAIL);
}

static void
test_truncated(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    pkt_start(&p, 0, 2, 0, "_xmpp-server._tcp.example.test", 33);
    pkt_srv(&p, 300, 10, 60, 5269, "xmpp1.example.test");
    pkt_srv(&p, 300, 10, 40, 5269, "xmpp2.example.test");
    size_t full = p.len;
    for (size_t len = 0; len < full; len++) {
        p.len = len;
        assert_int_equal(parse(&p, "_xmpp-server._tcp.example.test", 33, &a), -1);
        assert_int_equal(a.status, DNS_FORMERR);
        assert_int_equal(a.n, 0);
        assert_null(a.rr.srv);
    }
}

static void
test_compression_attacks(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    /* An answer whose owner name points at itself. */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    size_t self = p.len;
    pkt_ptr(&p, self);
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);

    /* Two pointers pointing at each other: "a" -> ptr B, B: "b" -> ptr A. */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    size_t at_a = p.len;
    pkt_u8(&p, 1);
    pkt_u8(&p, 'a');
    pkt_ptr(&p, at_a + 4);
    pkt_u8(&p, 1);
    pkt_u8(&p, 'b');
    pkt_ptr(&p, at_a);
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);

    /* A forward pointer (legal encoders never write one). */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    pkt_ptr(&p, p.len + 2);
    pkt_name(&p, "x.test");
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);

    /* A pointer past the end. */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    pkt_u16(&p, 0xc000 | 0x3fff);
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);

    /* Extended label type 0x40. */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    pkt_u8(&p, 0x41);
    pkt_u8(&p, 'x');
    pkt_u8(&p, 0);
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);

    /* Names built from pointer chains of legal 60-octet labels, kept in the RDATA of a
     * record the parser skips: 3 runs make a fine name, 5 runs exceed 255 octets. */
    for (int runs = 3; runs <= 5; runs += 2) {
        pkt_start(&p, 0, 2, 0, "_x._tcp.t", 33);
        pkt_rr(&p, 16, 10, (unsigned int)(runs * 63 - 1));
        size_t prev = 0;
        for (int i = 0; i < runs; i++) {
            size_t here = p.len;
            pkt_u8(&p, 60);
            memset(p.b + p.len, 'a' + i, 60);
            p.len += 60;
            if (i == 0)
                pkt_u8(&p, 0);
            else
                pkt_ptr(&p, prev);
            prev = here;
        }
        pkt_rr(&p, 33, 10, 8);
        pkt_u16(&p, 1);
        pkt_u16(&p, 1);
        pkt_u16(&p, 5269);
        pkt_ptr(&p, prev);
        if (runs == 3) {
            assert_int_equal(parse(&p, "_x._tcp.t", 33, &a), 0);
            assert_int_equal(a.n, 1);
            assert_int_equal(strlen(a.rr.srv[0].target), 3 * 61 - 1);
            dns_answer_clear(&a);
        } else {
            assert_int_equal(parse(&p, "_x._tcp.t", 33, &a), -1);
        }
    }
}

static void
test_bad_lengths(void **state)
{
    struct pkt p;
    struct dns_answer a;

    (void)state;
    /* RDLENGTH beyond the packet. */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    pkt_rr(&p, 1, 10, 400);
    pkt_u32(&p, 0x01020304);
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);
    /* An A record of 5 bytes. */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    pkt_rr(&p, 1, 10, 5);
    pkt_u32(&p, 0x01020304);
    pkt_u8(&p, 5);
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);
    /* An SRV whose target runs past its RDATA. */
    pkt_start(&p, 0, 1, 0, "_x._tcp.t", 33);
    pkt_rr(&p, 33, 10, 8);
    pkt_u16(&p, 0);
    pkt_u16(&p, 0);
    pkt_u16(&p, 1);
    pkt_name(&p, "host.test");
    assert_int_equal(parse(&p, "_x._tcp.t", 33, &a), -1);
    /* Not a response. */
    pkt_start(&p, 0, 0, 0, "x.test", 1);
    p.b[2] &= 0x7f;
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);
    /* Two questions. */
    pkt_start(&p, 0, 0, 0, "x.test", 1);
    p.b[5] = 2;
    assert_int_equal(parse(&p, "x.test", 1, &a), -1);
    /* A label with a dot or a control character in it. */
    pkt_start(&p, 0, 1, 0, "_x._tcp.t", 33);
    pkt_rr(&p, 33, 10, 6 + 5);
    pkt_u16(&p, 0);
    pkt_u16(&p, 0);
    pkt_u16(&p, 1);
    pkt_u8(&p, 3);
    pkt_bytes(&p, "a.b", 3);
    pkt_u8(&p, 0);
    assert_int_equal(parse(&p, "_x._tcp.t", 33, &a), -1);
    /* TTL with the top bit set counts as 0 (RFC 2181 §8). */
    pkt_start(&p, 0, 1, 0, "x.test", 1);
    pkt_a(&p, 0x80000000u, 1, 2, 3, 4);
    assert_int_equal(parse(&p, "x.test", 1, &a), 0);
    assert_int_equal(a.ttl, 0);
    dns_answer_clear(&a);
}

/* Mutations of a valid packet: whatever comes back, nothing is read out of bounds. */
static void
test_mutations(void **state)
{
    struct pkt base, p;
    struct dns_answer a;
    uint64_t rng = 12345;

    (void)state;
    pkt_start(&base, 3, 2, 1, "_xmpp-server._tcp.example.test", 33);
    pkt_srv(&base, 300, 10, 60, 5269, "xmpp1.example.test");
    pkt_srv(&base, 300, 10, 40, 5269, "xmpp2.example.test");
    pkt_soa(&base, 300, 30);
    base.b[3] = 0x80; /* NOERROR again: the SRV records parse */
    for (int i = 0; i < 20000; i++) {
        p = base;
        int flips = 1 + (int)(rng % 4);
        for (int f = 0; f < flips; f++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            p.b[(rng >> 33) % p.len] = (uint8_t)(rng >> 20);
        }
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        if (rng % 3 == 0)
            p.len = (size_t)((rng >> 33) % p.len);
        int r = parse(&p, "_xmpp-server._tcp.example.test", 33, &a);
        assert_true(r == 0 || r == -1);
        assert_true(a.n <= DNS_MAX_RECORDS);
        dns_answer_clear(&a);
    }
}

static void
test_name_normalize(void **state)
{
    char out[DNS_NAME_MAX + 1];
    char longname[300];

    (void)state;
    assert_int_equal(dns_name_normalize("Example.ORG.", out, sizeof(out)), 0);
    assert_string_equal(out, "example.org");
    assert_int_equal(dns_name_normalize("_xmpp-server._tcp.a", out, sizeof(out)), 0);
    assert_int_equal(dns_name_normalize("", out, sizeof(out)), -1);
    assert_int_equal(dns_name_normalize(".", out, sizeof(out)), -1);
    assert_int_equal(dns_name_normalize("a..b", out, sizeof(out)), -1);
    assert_int_equal(dns_name_normalize(".a", out, sizeof(out)), -1);
    assert_int_equal(dns_name_normalize("a b", out, sizeof(out)), -1);
    assert_int_equal(dns_name_normalize("a\\.b", out, sizeof(out)), -1);
    memset(longname, 'a', 64);
    longname[64] = '\0';
    assert_int_equal(dns_name_normalize(longname, out, sizeof(out)), -1); /* label > 63 */
    for (int i = 0; i < 300; i++)
        longname[i] = (i % 2) ? '.' : 'a';
    longname[255] = '\0';
    assert_int_equal(dns_name_normalize(longname, out, sizeof(out)), -1); /* > 253 */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv),
        cmocka_unit_test(test_addresses_and_bound),
        cmocka_unit_test(test_tlsa),
        cmocka_unit_test(test_cname_chain),
        cmocka_unit_test(test_negative),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_compression_attacks),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_name_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
