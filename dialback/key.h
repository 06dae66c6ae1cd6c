/*
 * Dialback keys (XEP-0185) and the dialback secret.
 *
 * key = HEX(HMAC-SHA256(HEX(SHA256(secret)), receiving ' ' originating ' ' stream_id))
 *
 * XEP-0185 §2: the secret is hashed with SHA-256 and the lower-case hexadecimal form of that
 * hash (64 characters) is the HMAC key; the HMAC input is the three values joined by a single
 * space (U+0020); the key is the lower-case hex of the HMAC. XEP-0185 §3 and XEP-0220 §2.1.1,
 * §2.2.2 give the vectors the unit test checks.
 *
 * The library knows nothing of streams: callers pass plain NUL-terminated strings.
 */
#ifndef DIALBACK_KEY_H
#define DIALBACK_KEY_H

#include <stdbool.h>
#include <stddef.h>

#define DIALBACK_KEY_HEXLEN  64 /* hex digits of an HMAC-SHA256 */
#define DIALBACK_KEY_BUFSIZE 65 /* with the NUL */

/* Longest domain (RFC 7622 §3.2: a domainpart is at most 1023 octets) and stream id we hash. */
#define DIALBACK_KEY_MAX_DOMAIN 1023
#define DIALBACK_KEY_MAX_ID     1023

/* Recommended length of a generated secret: 64 hex digits = 256 bits. */
#define DIALBACK_SECRET_HEXLEN 64

/*
 * Computes the key into out (64 lower-case hex digits and a NUL). Returns 0, or -1 (out set to
 * "") when an input is NULL or empty, too long, or contains a space or a control character
 * (that would make the joined input ambiguous, XEP-0185 §2 note 5), or OpenSSL fails.
 */
int dialback_key_make(const char *secret, const char *receiving, const char *originating,
                      const char *stream_id, char out[DIALBACK_KEY_BUFSIZE]);

/*
 * True when key (keylen bytes, not necessarily NUL-terminated, no surrounding whitespace) is
 * exactly the key dialback_key_make() computes for these inputs. The comparison of the 64
 * digits takes constant time (CRYPTO_memcmp); a key of another length, upper-case digits or
 * any input dialback_key_make() rejects gives false.
 */
bool dialback_key_check(const char *secret, const char *receiving, const char *originating,
                        const char *stream_id, const char *key, size_t keylen);

/*
 * Fills out with outsize - 1 random lower-case hex digits (RAND_bytes) and a NUL, for a
 * secret generated at start-up (XEP-0185 §2 note 3). outsize - 1 must be at least 32
 * (128 bits); DIALBACK_SECRET_HEXLEN + 1 is the recommended size. Returns 0 or -1.
 */
int dialback_secret_generate(char *out, size_t outsize);

#endif
