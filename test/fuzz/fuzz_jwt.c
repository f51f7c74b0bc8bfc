/*
 * test/fuzz/fuzz_jwt.c
 *		libFuzzer target for the pure-C token code of src/jwt.c.
 *
 * fuzz-sources: src/jwt.c
 * fuzz-libs: -lsodium -lcrypto
 *
 * One binary, several targets: the first input byte picks which one the
 * rest of the input feeds (libFuzzer learns the selector like any other
 * byte).  Besides "does not crash" (ASan/UBSan watch every read), each
 * target checks properties, and abort()s when one fails:
 *
 *   0  JwtVerifyKey(raw token): a true result has well-formed claims.
 *   1  JwtVerifyKey(header.base64url(payload).HMAC): the payload is signed
 *      here with the right secret, so the claims parser behind the signature
 *      check is reached; the verdict must equal JwtParseClaims' on the same
 *      payload plus the time checks; a flipped signature bit must fail.
 *   2  JwtParseClaims: claims are terminated and in range; re-signing them
 *      with JwtSignKey verifies and gives the same claims back.
 *   3  BearerFromHeaders: a found token points inside the input, is
 *      non-empty and carries no surrounding spaces.
 *   4  JwtB64Decode: decoding is canonical (re-encoding gives the input
 *      back) and encode/decode of arbitrary bytes round-trips.
 *   5  JwtParseUuid: accepts only 8-4-4-4-12 hex and round-trips through
 *      JwtFormatUuid.
 *   6  JwtSignKey then JwtVerifyKey succeeds for claims built from the
 *      input, and fails under another secret's key or once expired.
 *   7  BearerFromHeaders on a headers object built from the input (other
 *      headers, whitespace, scheme case, one or two authorization headers):
 *      finds exactly the token put in, or reports a duplicate.
 *
 * Build (test/fuzz/run does this):
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -I src src/jwt.c \
 *     test/fuzz/fuzz_jwt.c -lsodium
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "jwt.h"

#define NTARGETS 8
#define NOW		 ((int64_t) 1700000000)

static const uint8_t secret[] = "fuzz-secret-0123456789abcdef0123456789";
static const uint8_t other_secret[] = "fuzz-secret-0123456789abcdef012345678X";
#define SECRET_LEN (sizeof(secret) - 1)
/* the HMAC keys of secret and other_secret (LLVMFuzzerInitialize) */
static JwtKey jwt_key;
static JwtKey other_jwt_key;

#define CHECK(cond) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "property failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			abort(); \
		} \
	} while (0)

static void
check_claims_shape(const JwtClaims *c)
{
	CHECK(memchr(c->sub, '\0', sizeof(c->sub)) != NULL);
	CHECK(memchr(c->sid, '\0', sizeof(c->sid)) != NULL);
	CHECK(memchr(c->role, '\0', sizeof(c->role)) != NULL);
	CHECK(memchr(c->jti, '\0', sizeof(c->jti)) != NULL);
	CHECK(c->iat >= 0 && c->exp >= 0);
}

static bool
claims_equal(const JwtClaims *a, const JwtClaims *b)
{
	return strcmp(a->sub, b->sub) == 0 && strcmp(a->sid, b->sid) == 0 &&
		strcmp(a->role, b->role) == 0 && strcmp(a->jti, b->jti) == 0 && a->iat == b->iat && a->exp == b->exp;
}

/* a string JwtSignKey can embed without escaping */
static bool
plain_string(const char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 || *s == '"' || *s == '\\' ||
			(unsigned char) *s >= 0x80)
			return false;
	return true;
}

/* header "." base64url(payload) "." base64url(HMAC-SHA-256(secret, ...)) */
static size_t
sign_raw(const uint8_t *key, size_t keylen, const uint8_t *payload,
		 size_t plen, char *out, size_t outcap)
{
	size_t		hlen = strlen(JWT_HEADER_B64);
	size_t		n;
	uint8_t		mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;

	if (outcap < hlen + 2 + JWT_B64_LEN(plen) + JWT_B64_LEN(sizeof(mac)) + 1)
		return 0;
	memcpy(out, JWT_HEADER_B64, hlen);
	n = hlen;
	out[n++] = '.';
	n += JwtB64Encode(payload, plen, out + n);
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *) out, n);
	crypto_auth_hmacsha256_final(&st, mac);
	out[n++] = '.';
	n += JwtB64Encode(mac, sizeof(mac), out + n);
	return n;
}

static void
target_verify_raw(const uint8_t *d, size_t n)
{
	JwtClaims	c;

	if (JwtVerifyKey(&jwt_key, (const char *) d, n, NOW, &c))
	{
		check_claims_shape(&c);
		CHECK(c.exp > NOW);
		CHECK(n <= JWT_MAX_LEN);
	}
}

static void
target_verify_signed(const uint8_t *d, size_t n)
{
	static char tok[2 * JWT_MAX_LEN];
	size_t		len = sign_raw(secret, SECRET_LEN, d, n, tok, sizeof(tok));
	JwtClaims	viaverify,
				viaparse;
	bool		v,
				p;

	if (len == 0)
		return;
	v = JwtVerifyKey(&jwt_key, tok, len, NOW, &viaverify);
	if (len > JWT_MAX_LEN)
	{
		CHECK(!v);
		return;
	}
	p = JwtParseClaims((const char *) d, n, &viaparse) &&
		viaparse.exp > NOW && viaparse.iat <= viaparse.exp;
	CHECK(v == p);
	if (v)
	{
		check_claims_shape(&viaverify);
		CHECK(claims_equal(&viaverify, &viaparse));
		/* one flipped bit in the signature's first character must fail */
		tok[len - 1] = tok[len - 1] == 'A' ? 'Q' : 'A';
		CHECK(!JwtVerifyKey(&jwt_key, tok, len, NOW, &viaverify));
		/* and the right payload under another secret must fail too */
		len = sign_raw(other_secret, SECRET_LEN, d, n, tok, sizeof(tok));
		CHECK(!JwtVerifyKey(&jwt_key, tok, len, NOW, &viaverify));
	}
}

static void
target_parse_claims(const uint8_t *d, size_t n)
{
	JwtClaims	c,
				back;
	char		tok[JWT_MAX_LEN];
	size_t		len;

	if (!JwtParseClaims((const char *) d, n, &c))
		return;
	check_claims_shape(&c);
	if (!plain_string(c.sub) || !plain_string(c.sid) || !plain_string(c.role) ||
		!plain_string(c.jti))
		return;
	len = JwtSignKey(&jwt_key, &c, tok, sizeof(tok));
	CHECK(len > 0);
	CHECK(strlen(tok) == len);
	if (c.exp > c.iat)
	{
		CHECK(JwtVerifyKey(&jwt_key, tok, len, c.iat, &back));
		CHECK(claims_equal(&c, &back));
	}
}

static void
target_bearer(const uint8_t *d, size_t n)
{
	const char *tok = NULL;
	size_t		len = 0;
	int			r = BearerFromHeaders((const char *) d, n, &tok, &len);

	CHECK(r == JWT_BEARER_BAD || r == JWT_BEARER_NONE || r == JWT_BEARER_FOUND);
	if (r == JWT_BEARER_FOUND)
	{
		CHECK(tok >= (const char *) d && tok + len <= (const char *) d + n);
		CHECK(len > 0);
		CHECK(tok[0] != ' ' && tok[len - 1] != ' ');
	}
}

static void
target_b64(const uint8_t *d, size_t n)
{
	static uint8_t out[JWT_MAX_LEN];
	static char enc[2 * JWT_MAX_LEN];
	size_t		outlen = 0;

	if (n > JWT_MAX_LEN)
		n = JWT_MAX_LEN;
	if (JwtB64Decode((const char *) d, n, out, sizeof(out), &outlen))
	{
		CHECK(outlen <= sizeof(out));
		CHECK(JwtB64Encode(out, outlen, enc) == n);
		CHECK(memcmp(enc, d, n) == 0);
	}
	/* any bytes encode and decode back, also into an exact-size buffer */
	CHECK(JwtB64Encode(d, n, enc) == JWT_B64_LEN(n));
	CHECK(JwtB64Decode(enc, JWT_B64_LEN(n), out, n, &outlen));
	CHECK(outlen == n && memcmp(out, d, n) == 0);
	/* one byte too small a buffer is refused, never overrun */
	if (n > 0)
		CHECK(!JwtB64Decode(enc, JWT_B64_LEN(n), out, n - 1, &outlen));
}

static void
target_uuid(const uint8_t *d, size_t n)
{
	uint8_t		u[16],
				u2[16];
	char		text[JWT_UUID_STRLEN + 1];

	if (JwtParseUuid((const char *) d, n, u))
	{
		CHECK(n == JWT_UUID_STRLEN);
		JwtFormatUuid(u, text);
		for (size_t i = 0; i < n; i++)
			CHECK(tolower((unsigned char) d[i]) == text[i]);
	}
	if (n >= 16)
	{
		JwtFormatUuid(d, text);
		CHECK(JwtParseUuid(text, JWT_UUID_STRLEN, u2));
		CHECK(memcmp(u2, d, 16) == 0);
	}
}

static void
target_roundtrip(const uint8_t *d, size_t n)
{
	static const char role_chars[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
	JwtClaims	c,
				back;
	char		tok[JWT_MAX_LEN];
	size_t		len;
	uint64_t	a = 0,
				b = 0;
	size_t		rl;

	if (n < 32 + 16 + 1)
		return;
	memset(&c, 0, sizeof(c));
	JwtFormatUuid(d, c.sub);
	JwtFormatUuid(d + 16, c.sid);
	memcpy(&a, d + 32, 8);
	memcpy(&b, d + 40, 8);
	c.iat = (int64_t) (a % 100000000000000000ULL);
	c.exp = c.iat + 1 + (int64_t) (b % 1000000000ULL);
	rl = d[48] % (JWT_ROLE_MAX + 1);
	for (size_t i = 0; i < rl; i++)
		c.role[i] = role_chars[(49 + i < n ? d[49 + i] : i) % (sizeof(role_chars) - 1)];
	c.role[rl] = '\0';
	/* a jti of 0 to JWT_JTI_MAX characters from the bytes after the role */
	{
		size_t		jl = (49 + rl < n ? d[49 + rl] : 0) % (JWT_JTI_MAX + 1);

		for (size_t i = 0; i < jl; i++)
			c.jti[i] = role_chars[(50 + rl + i < n ? d[50 + rl + i] : i) % (sizeof(role_chars) - 1)];
		c.jti[jl] = '\0';
	}

	len = JwtSignKey(&jwt_key, &c, tok, sizeof(tok));
	CHECK(len > 0);
	CHECK(JwtVerifyKey(&jwt_key, tok, len, c.iat, &back));
	CHECK(claims_equal(&c, &back));
	CHECK(!JwtVerifyKey(&other_jwt_key, tok, len, c.iat, &back));
	CHECK(!JwtVerifyKey(&jwt_key, tok, len, c.exp, &back));
	CHECK(!JwtVerifyKey(&jwt_key, tok, len - 1, c.iat, &back));
}

/* appends to a bounded buffer; returns false when it is full */
typedef struct Buf
{
	char		data[8192];
	size_t		len;
} Buf;

static bool
put(Buf *b, const char *s, size_t n)
{
	if (b->len + n > sizeof(b->data))
		return false;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return true;
}

static void
target_bearer_structured(const uint8_t *d, size_t n)
{
	static const char ws[] = " \t\n\r";
	static const char tokchars[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
	static Buf	b;
	char		tok[512];
	size_t		toklen = 0;
	size_t		i = 0;
	int			nheaders,
				at,
				dup;
	const char *found;
	size_t		found_len;
	int			r;

#define NEXT() (i < n ? d[i++] : 0)
	if (n < 4)
		return;
	nheaders = NEXT() % 6;
	at = NEXT() % (nheaders + 1);
	dup = NEXT() % 8 == 0;
	toklen = 1 + NEXT() % 200;
	for (size_t k = 0; k < toklen; k++)
		tok[k] = tokchars[NEXT() % (sizeof(tokchars) - 1)];

	b.len = 0;
	put(&b, "{", 1);
	for (int h = 0; h <= nheaders; h++)
	{
		char		name[16];
		char		val[64];
		size_t		nl,
					vl;
		uint8_t		w = NEXT();

		if (h > 0)
			put(&b, ",", 1);
		if (w & 1)
			put(&b, &ws[w >> 6], 1);
		if (h == at || (dup && h == nheaders && at != nheaders))
		{
			uint8_t		form = NEXT();

			put(&b, "\"authorization\"", 15);
			put(&b, (form & 1) ? " : " : ":", (form & 1) ? 3 : 1);
			put(&b, "\"", 1);
			put(&b, (form & 2) ? "bearer" : (form & 4) ? "BEARER" : "Bearer", 6);
			put(&b, "    ", 1 + (form >> 6));	/* one to four spaces */
			put(&b, tok, toklen);
			if (form & 8)
				put(&b, "  ", 1 + ((form >> 4) & 1));	/* trailing spaces */
			put(&b, "\"", 1);
		}
		else
		{
			/* "x-..." never equals "authorization"; values need no escaping */
			nl = 1 + NEXT() % 10;
			name[0] = 'x';
			name[1] = '-';
			for (size_t k = 0; k < nl; k++)
				name[2 + k] = 'a' + NEXT() % 26;
			vl = NEXT() % 60;
			for (size_t k = 0; k < vl; k++)
			{
				uint8_t		c = NEXT();

				val[k] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? 'v' : (char) c;
			}
			put(&b, "\"", 1);
			put(&b, name, nl + 2);
			put(&b, "\":\"", 3);
			put(&b, val, vl);
			put(&b, "\"", 1);
		}
		if (w & 2)
			put(&b, &ws[(w >> 4) & 3], 1);
	}
	put(&b, "}", 1);
#undef NEXT

	r = BearerFromHeaders(b.data, b.len, &found, &found_len);
	if (dup && at != nheaders)
		CHECK(r == JWT_BEARER_BAD);
	else
	{
		CHECK(r == JWT_BEARER_FOUND);
		CHECK(found_len == toklen && memcmp(found, tok, toklen) == 0);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		abort();
	JwtKeyInit(&jwt_key, secret, SECRET_LEN);
	JwtKeyInit(&other_jwt_key, other_secret, SECRET_LEN);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *copy;

	if (size == 0)
		return 0;
	/* an exact-size heap copy, so ASan sees any read past the end */
	copy = malloc(size - 1 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	switch (data[0] % NTARGETS)
	{
		case 0:
			target_verify_raw(copy, size - 1);
			break;
		case 1:
			target_verify_signed(copy, size - 1);
			break;
		case 2:
			target_parse_claims(copy, size - 1);
			break;
		case 3:
			target_bearer(copy, size - 1);
			break;
		case 4:
			target_b64(copy, size - 1);
			break;
		case 5:
			target_uuid(copy, size - 1);
			break;
		case 6:
			target_roundtrip(copy, size - 1);
			break;
		case 7:
			target_bearer_structured(copy, size - 1);
			break;
	}
	free(copy);
	return 0;
}
