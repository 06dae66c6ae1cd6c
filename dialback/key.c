/*
 * Dialback keys: XEP-0185 with OpenSSL 3 (EVP_MAC "HMAC" over SHA-256).
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "dialback/key.h"

#define SHA256_LEN 32

static const char hexdigits[] = "0123456789abcdef";

static void
hex_encode(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

/*
 * One of the three joined values: non-empty, bounded, and free of the separator and of
 * control characters. Domains never hold a space; a stream id with one could make two
 * different triples hash alike, so refuse rather than guess.
 */
static bool
field_ok(const char *s, size_t max)
{
    size_t len;

    if (s == NULL)
        return false;
    len = strnlen(s, max + 1);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* XEP-0185 §2 note 2 and 4: the HMAC key is the hex form of SHA256(secret). */
static int
hashed_secret(const char *secret, char hex[2 * SHA256_LEN + 1])
{
    unsigned char md[SHA256_LEN];
    unsigned int mdlen = 0;
    int rc = -1;

    if (EVP_Digest(secret, strlen(secret), md, &mdlen, EVP_sha256(), NULL) == 1 &&
        mdlen == SHA256_LEN) {
        hex_encode(md, SHA256_LEN, hex);
        rc = 0;
    }
    OPENSSL_cleanse(md, sizeof(md));
    return rc;
}

static int
hmac_sha256(const char *key, const char *parts[], size_t nparts, unsigned char out[SHA256_LEN])
{
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t outlen = 0;
    int rc = -1;

    if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        return -1;
    if ((ctx = EVP_MAC_CTX_new(mac)) == NULL)
        goto done;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params) != 1)
        goto done;
    for (size_t i = 0; i < nparts; i++)
        if (EVP_MAC_update(ctx, (const unsigned char *)parts[i], strlen(parts[i])) != 1)
            goto done;
    if (EVP_MAC_final(ctx, out, &outlen, SHA256_LEN) != 1 || outlen != SHA256_LEN)
        goto done;
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int
dialback_key_make(const char *secret, const char *receiving, const char *originating,
                  const char *stream_id, char out[DIALBACK_KEY_BUFSIZE])
{
    char hkey[2 * SHA256_LEN + 1];
    unsigned char md[SHA256_LEN];
    const char *parts[5];
    int rc = -1;

    out[0] = '\0';
    if (secret == NULL || secret[0] == '\0')
        return -1;
    if (!field_ok(receiving, DIALBACK_KEY_MAX_DOMAIN) ||
        !field_ok(originating, DIALBACK_KEY_MAX_DOMAIN) ||
        !field_ok(stream_id, DIALBACK_KEY_MAX_ID))
        return -1;
    if (hashed_secret(secret, hkey) == -1)
        goto done;

    /* XEP-0185 §2: { Receiving Server, ' ', Originating Server, ' ', Stream ID } */
    parts[0] = receiving;
    parts[1] = " ";
    parts[2] = originating;
    parts[3] = " ";
    parts[4] = stream_id;
    if (hmac_sha256(hkey, parts, 5, md) == -1)
        goto done;
    hex_encode(md, SHA256_LEN, out);
    rc = 0;
done:
    OPENSSL_cleanse(hkey, sizeof(hkey));
    OPENSSL_cleanse(md, sizeof(md));
    return rc;
}

bool
dialback_key_check(const char *secret, const char *receiving, const char *originating,
                   const char *stream_id, const char *key, size_t keylen)
{
    char expected[DIALBACK_KEY_BUFSIZE];
    bool ok;

    /* The length is no secret: every key we issue has 64 digits. */
    if (key == NULL || keylen != DIALBACK_KEY_HEXLEN)
        return false;
    if (dialback_key_make(secret, receiving, originating, stream_id, expected) == -1)
        return false;
    ok = CRYPTO_memcmp(expected, key, DIALBACK_KEY_HEXLEN) == 0;
    OPENSSL_cleanse(expected, sizeof(expected));
    return ok;
}

int
dialback_secret_generate(char *out, size_t outsize)
{
    unsigned char buf[256];
    size_t ndigits, nbytes;

    if (out == NULL || outsize == 0)
        return -1;
    out[0] = '\0';
    ndigits = outsize - 1;
    if (ndigits < 32 || ndigits > 2 * sizeof(buf))
        return -1;
    nbytes = (ndigits + 1) / 2;
    if (RAND_bytes(buf, (int)nbytes) != 1)
        return -1;
    for (size_t i = 0; i < ndigits; i++)
        out[i] = hexdigits[(i % 2 == 0) ? buf[i / 2] >> 4 : buf[i / 2] & 0x0f];
    out[ndigits] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}
