/*
 * test/fuzz/fuzz_ciphertext.c
 *		libFuzzer target for src/ciphertext.c: the key-file parser and the at1
 *		ciphertext parser/decoder, with both AES-256-GCM implementations.
 *
 * The first input byte picks what to exercise; the rest is the input:
 *	 0	the key-file parser on arbitrary bytes
 *	 1	CtParse + CtOpen of arbitrary text (both implementations must agree)
 *	 2	seal arbitrary plaintext, open it (both ways), then tamper with it:
 *		any change to the text must make it fail
 *	 3	a valid ciphertext with bytes overwritten at fuzzer-chosen places
 * Crashes, sanitizer reports and broken invariants (abort) are failures.
 *
 * fuzz-sources: src/ciphertext.c
 * fuzz-libs: -lsodium -lcrypto
 * fuzz-max-len: 4096
 * fuzz-seconds: 20
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ciphertext.h"

static CtKeyring ring;
static char valid[256];
static size_t valid_len;
static const uint8_t ctx[] = "fuzz-context";

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); abort(); } } while (0)

static const char keyfile[] =
	"# fuzz key file\n"
	"key 1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
	"key 7 F0E1D2C3B4A5968778695A4B3C2D1E0F00112233445566778899AABBCCDDEEFF\n"
	"current 7\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int			errline;
	const char *errwhat;
	uint8_t		scratch[64];
	CtResult	r;
	uint8_t		nonce[CT_NONCE_BYTES];

	CHECK(sodium_init() >= 0);
	randombytes_buf(nonce, sizeof(nonce));
	CHECK(CtKeyringParse(keyfile, sizeof(keyfile) - 1, &ring, &errline, &errwhat));
	CHECK(ring.nkeys == 2 && ring.keys[ring.current].id == 7);
	r = CtSeal(&ring.keys[ring.current], CT_BACKEND_AUTO, CT_DOMAIN_API_KEY, nonce,
			   ctx, sizeof(ctx) - 1, (const uint8_t *) "sk-fuzz", 7,
			   scratch, sizeof(scratch), valid, sizeof(valid), &valid_len);
	CHECK(r == CT_OK);
	return 0;
}

/* opens text with both implementations; they must agree on everything */
static CtResult
open_both(const char *text, size_t len, char domain, uint8_t **plain, size_t *plain_len)
{
	CtParsed	p;
	CtResult	r;
	CtResult	r2;
	uint8_t    *a;
	uint8_t    *b;
	size_t		alen = 0;
	size_t		blen = 0;

	*plain = NULL;
	*plain_len = 0;
	r = CtParse(text, len, &p);
	if (r != CT_OK)
		return r;
	CHECK(p.sealed_len >= CT_TAG_BYTES && p.body != NULL);
	a = malloc(p.sealed_len);
	b = malloc(p.sealed_len);
	CHECK(a != NULL && b != NULL);
	r = CtOpen(&ring, CT_BACKEND_AUTO, domain, &p, ctx, sizeof(ctx) - 1, a, p.sealed_len, &alen);
	r2 = CtOpen(&ring, CT_BACKEND_OPENSSL, domain, &p, ctx, sizeof(ctx) - 1, b, p.sealed_len, &blen);
	CHECK(r == r2);
	if (r == CT_OK)
	{
		CHECK(alen == blen && alen == p.sealed_len - CT_TAG_BYTES);
		CHECK(alen == 0 || memcmp(a, b, alen) == 0);
		*plain = a;
		*plain_len = alen;
	}
	else
	{
		CHECK(alen == 0 && blen == 0);
		free(a);
	}
	free(b);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		mode;
	uint8_t    *plain = NULL;
	size_t		plain_len = 0;
	CtResult	r;

	if (size < 1)
		return 0;
	mode = data[0] % 4;
	data++;
	size--;

	if (mode == 0)
	{
		CtKeyring	k;
		int			errline;
		const char *errwhat;

		if (CtKeyringParse((const char *) data, size, &k, &errline, &errwhat))
		{
			CHECK(k.nkeys >= 1 && k.nkeys <= CT_MAX_KEYS);
			CHECK(k.current >= 0 && k.current < k.nkeys);
		}
		else
		{
			CHECK(errwhat != NULL && errline >= 0);
			CHECK(k.nkeys == 0);
		}
	}
	else if (mode == 1)
	{
		r = open_both((const char *) data, size, CT_DOMAIN_API_KEY, &plain, &plain_len);
		/* forging a value that authenticates would be a finding */
		CHECK(r != CT_OK || (size == valid_len && memcmp(data, valid, size) == 0));
		free(plain);
	}
	else if (mode == 2)
	{
		size_t		cap = CtEncodedLen(size);
		char	   *out = malloc(cap);
		uint8_t    *scratch = malloc(size + CT_TAG_BYTES);
		size_t		outlen = 0;
		CtBackend	backend = (size > 0 && (data[0] & 1)) ? CT_BACKEND_OPENSSL : CT_BACKEND_AUTO;
		uint8_t		nonce[CT_NONCE_BYTES];

		CHECK(out != NULL && scratch != NULL);
		randombytes_buf(nonce, sizeof(nonce));
		r = CtSeal(&ring.keys[ring.current], backend, CT_DOMAIN_RAW, nonce, ctx, sizeof(ctx) - 1,
				   data, size, scratch, size + CT_TAG_BYTES, out, cap, &outlen);
		if (size > CT_MAX_PLAINTEXT)
			CHECK(r == CT_ERR_TOO_LONG);
		else
		{
			CHECK(r == CT_OK && outlen < cap && out[outlen] == '\0');
			r = open_both(out, outlen, CT_DOMAIN_RAW, &plain, &plain_len);
			CHECK(r == CT_OK && plain_len == size);
			CHECK(size == 0 || memcmp(plain, data, size) == 0);
			free(plain);
			/* the other domain never opens it */
			r = open_both(out, outlen, CT_DOMAIN_API_KEY, &plain, &plain_len);
			CHECK(r == CT_ERR_AUTH);
			/* change one character: it must fail */
			if (size > 0)
			{
				size_t		pos = data[0] % outlen;

				out[pos] = out[pos] == 'A' ? 'B' : 'A';
				r = open_both(out, outlen, CT_DOMAIN_RAW, &plain, &plain_len);
				CHECK(r != CT_OK);
			}
		}
		free(out);
		free(scratch);
	}
	else
	{
		char		text[sizeof(valid)];
		size_t		len = valid_len;
		size_t		i;
		int			changed = 0;

		memcpy(text, valid, valid_len);
		/* pairs of (position, byte); a position past the end truncates */
		for (i = 0; i + 1 < size; i += 2)
		{
			size_t		pos = data[i];

			if (pos >= len)
			{
				if (data[i + 1] < len)
				{
					len = data[i + 1];
					changed = 1;
				}
				continue;
			}
			if (text[pos] != (char) data[i + 1])
			{
				text[pos] = (char) data[i + 1];
				changed = 1;
			}
		}
		r = open_both(text, len, CT_DOMAIN_API_KEY, &plain, &plain_len);
		if (!changed || (len == valid_len && memcmp(text, valid, len) == 0))
			CHECK(r == CT_OK && plain_len == 7 && memcmp(plain, "sk-fuzz", 7) == 0);
		else
			CHECK(r != CT_OK);
		free(plain);
	}
	return 0;
}
