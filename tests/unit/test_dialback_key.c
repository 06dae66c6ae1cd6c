/*
 * XEP-0185 dialback keys: the published vectors, sensitivity to every input, strict checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dialback/key.h"

struct vector {
    const char *secret, *receiving, *originating, *id, *key;
};

static const struct vector vectors[] = {
    /* XEP-0185 §3 (both the db:result and the db:verify computation). */
    {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
     "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"},
    /* XEP-0220 §2.1.1, Example 1. */
    {"s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
     "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"},
    /* XEP-0220 §2.2.2 (the verify request of Example 5). */
    {"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25",
     "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
};

static void
test_vectors(void **state)
{
    char key[DIALBACK_KEY_BUFSIZE];

    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, v->id, key), 0);
        assert_string_equal(key, v->key);
        assert_true(dialback_key_check(v->secret, v->receiving, v->originating, v->id, v->key,
                                       strlen(v->key)));
    }
}

/* Each input changes the key; swapping receiving and originating does too. */
static void
test_every_field_counts(void **state)
{
    const struct vector *v = &vectors[0];
    char base[DIALBACK_KEY_BUFSIZE], k[DIALBACK_KEY_BUFSIZE];

    assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, v->id, base), 0);

    assert_int_equal(dialback_key_make("s3cr3tf0rd14lb4cK", v->receiving, v->originating, v->id, k),
                     0);
    assert_string_not_equal(k, base);
    assert_int_equal(dialback_key_make(v->secret, "xmpp.example.net", v->originating, v->id, k), 0);
    assert_string_not_equal(k, base);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, "example.net", v->id, k), 0);
    assert_string_not_equal(k, base);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, "D60000229E", k),
                     0);
    assert_string_not_equal(k, base);
    assert_int_equal(dialback_key_make(v->secret, v->originating, v->receiving, v->id, k), 0);
    assert_string_not_equal(k, base);
    /* The separator keeps "a.b c" / "a b.c" apart (XEP-0185 §2 note 5). */
    assert_int_equal(dialback_key_make(v->secret, "example.in", "form.example.org", "X", base), 0);
    assert_int_equal(dialback_key_make(v->secret, "example.info", "rm.example.org", "X", k), 0);
    assert_string_not_equal(k, base);
}

static void
test_rejected_inputs(void **state)
{
    const struct vector *v = &vectors[0];
    char k[DIALBACK_KEY_BUFSIZE];
    char longname[DIALBACK_KEY_MAX_DOMAIN + 2];

    assert_int_equal(dialback_key_make(NULL, v->receiving, v->originating, v->id, k), -1);
    assert_string_equal(k, "");
    assert_int_equal(dialback_key_make("", v->receiving, v->originating, v->id, k), -1);
    assert_int_equal(dialback_key_make(v->secret, NULL, v->originating, v->id, k), -1);
    assert_int_equal(dialback_key_make(v->secret, "", v->originating, v->id, k), -1);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, NULL, v->id, k), -1);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, "", k), -1);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, NULL, k), -1);
    /* A space or a control character would make the joined input ambiguous. */
    assert_int_equal(dialback_key_make(v->secret, "a b", v->originating, v->id, k), -1);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, "D6 0", k), -1);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, "ex\nample", v->id, k), -1);
    assert_int_equal(dialback_key_make(v->secret, v->receiving, v->originating, "D6\x7f", k), -1);

    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0'; /* 1024 octets: one too many */
    assert_int_equal(dialback_key_make(v->secret, longname, v->originating, v->id, k), -1);
    longname[DIALBACK_KEY_MAX_DOMAIN] = '\0'; /* 1023: allowed */
    assert_int_equal(dialback_key_make(v->secret, longname, v->originating, v->id, k), 0);
    assert_int_equal(strlen(k), DIALBACK_KEY_HEXLEN);
}

static void
test_check_rejects(void **state)
{
    const struct vector *v = &vectors[0];
    char bad[DIALBACK_KEY_BUFSIZE + 1];
    size_t len = strlen(v->key);

    /* Upper case is not what we issue. */
    strcpy(bad, v->key);
    bad[0] = '3';
    bad[1] = 'C';
    assert_false(dialback_key_check(v->secret, v->receiving, v->originating, v->id, bad, len));
    /* Last digit wrong. */
    strcpy(bad, v->key);
    bad[len - 1] = '4';
    assert_false(dialback_key_check(v->secret, v->receiving, v->originating, v->id, bad, len));
    /* Short: a prefix of the right key. */
    assert_false(
        dialback_key_check(v->secret, v->receiving, v->originating, v->id, v->key, len - 1));
    assert_false(dialback_key_check(v->secret, v->receiving, v->originating, v->id, v->key, 0));
    assert_false(dialback_key_check(v->secret, v->receiving, v->originating, v->id, NULL, len));
    /* Long: right key with one more digit. */
    strcpy(bad, v->key);
    strcat(bad, "0");
    assert_false(dialback_key_check(v->secret, v->receiving, v->originating, v->id, bad, len + 1));
    /* Right key, other inputs. */
    assert_false(dialback_key_check("other", v->receiving, v->originating, v->id, v->key, len));
    assert_false(dialback_key_check(v->secret, v->originating, v->receiving, v->id, v->key, len));
    assert_false(dialback_key_check(v->secret, v->receiving, v->originating, "", v->key, len));
    assert_false(dialback_key_check("", v->receiving, v->originating, v->id, v->key, len));
}

static void
test_secret_generate(void **state)
{
    char a[DIALBACK_SECRET_HEXLEN + 1], b[DIALBACK_SECRET_HEXLEN + 1], odd[34], small[32];

    assert_int_equal(dialback_secret_generate(a, sizeof(a)), 0);
    assert_int_equal(dialback_secret_generate(b, sizeof(b)), 0);
    assert_int_equal(strlen(a), DIALBACK_SECRET_HEXLEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), DIALBACK_SECRET_HEXLEN);
    assert_string_not_equal(a, b);
    assert_int_equal(dialback_secret_generate(odd, sizeof(odd)), 0);
    assert_int_equal(strlen(odd), 33);
    /* Fewer than 128 bits is refused. */
    assert_int_equal(dialback_secret_generate(small, sizeof(small)), -1);
    assert_string_equal(small, "");
    assert_int_equal(dialback_secret_generate(NULL, 65), -1);
    assert_int_equal(dialback_secret_generate(a, 0), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),         cmocka_unit_test(test_every_field_counts),
        cmocka_unit_test(test_rejected_inputs), cmocka_unit_test(test_check_rejects),
        cmocka_unit_test(test_secret_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
