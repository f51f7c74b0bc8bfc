/*
 * src/jwt.c
 *		HS256 JSON Web Tokens: signing, strict verification, base64url, and
 *		the small JSON scanner they (and PostgREST's request.headers) need.
 *
 * No catalog access and no server calls: everything here works on caller
 * buffers, never allocates and never raises, so it can be fuzzed on its own
 * (test/fuzz).  Inputs are untrusted bytes; every read is bounds-checked.
 */
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include <sodium.h>

#include "jwt.h"

static const char b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * JwtB64Encode
 *		base64url without padding; out must hold JWT_B64_LEN(len) + 1 bytes.
 *		Returns the length written (NUL-terminated).
 */
size_t
JwtB64Encode(const uint8_t *in, size_t len, char *out)
{
	size_t		o = 0;
	size_t		i = 0;

	for (; i + 3 <= len; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1)
	{
		uint32_t	v = (uint32_t) in[i] << 16;

		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
	}
	else if (len - i == 2)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;

		out[o++] = b64url_alphabet[(v >> 18) & 63];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

/* value of each byte in base64url, or -1 */
static const signed char b64url_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
};

static inline int
b64url_value(unsigned char c)
{
	return b64url_values[c];
}

/*
 * JwtB64Decode
 *		Strict base64url: no padding, no whitespace, and the unused low bits of
 *		the last character must be zero (one encoding per value).  Returns
 *		false on any deviation or if the result would not fit in outcap.
 */
bool
JwtB64Decode(const char *in, size_t len, uint8_t *out, size_t outcap,
			 size_t *outlen)
{
	const unsigned char *p = (const unsigned char *) in;
	size_t		full = len / 4;
	size_t		rest = len % 4;
	size_t		o = 0;

	if (rest == 1)
		return false;
	if (full * 3 + (rest ? rest - 1 : 0) > outcap)
		return false;

	/* whole groups of four characters: three bytes each */
	for (size_t g = 0; g < full; g++, p += 4)
	{
		int			v0 = b64url_value(p[0]);
		int			v1 = b64url_value(p[1]);
		int			v2 = b64url_value(p[2]);
		int			v3 = b64url_value(p[3]);
		uint32_t	acc;

		if ((v0 | v1 | v2 | v3) < 0)
			return false;
		acc = (uint32_t) v0 << 18 | (uint32_t) v1 << 12 | (uint32_t) v2 << 6 | (uint32_t) v3;
		out[o++] = (uint8_t) (acc >> 16);
		out[o++] = (uint8_t) (acc >> 8);
		out[o++] = (uint8_t) acc;
	}
	/* two or three characters left: one or two bytes, and the unused low
	 * bits of the last character must be zero (non-canonical otherwise) */
	if (rest > 0)
	{
		int			v0 = b64url_value(p[0]);
		int			v1 = b64url_value(p[1]);
		int			v2 = rest == 3 ? b64url_value(p[2]) : 0;
		uint32_t	acc;

		if ((v0 | v1 | v2) < 0)
			return false;
		acc = (uint32_t) v0 << 18 | (uint32_t) v1 << 12 | (uint32_t) v2 << 6;
		out[o++] = (uint8_t) (acc >> 16);
		if (rest == 3)
		{
			out[o++] = (uint8_t) (acc >> 8);
			if ((acc & 0xff) != 0)
				return false;
		}
		else if ((acc & 0xffff) != 0)
			return false;
	}
	*outlen = o;
	return true;
}

/* ---------------------------------------------------------------------
 * A strict JSON scanner for one flat object.  Nested values are skipped
 * (with a depth limit) but only top-level members are reported.
 * --------------------------------------------------------------------- */

typedef enum
{
	JV_STRING,
	JV_NUMBER,
	JV_OTHER					/* true, false, null, object, array */
} JsonValueKind;

typedef struct JsonCursor
{
	const char *p;
	const char *end;
} JsonCursor;

typedef bool (*JsonMemberFn) (void *arg, const char *key, size_t keylen,
							  bool key_escaped, JsonValueKind kind,
							  const char *val, size_t vallen, bool val_escaped);

#define JSON_MAX_DEPTH 16

static void
json_ws(JsonCursor *c)
{
	while (c->p < c->end &&
		   (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* at the opening quote; leaves the cursor after the closing quote */
static bool
json_string(JsonCursor *c, const char **s, size_t *n, bool *escaped)
{
	const char *start;

	if (c->p >= c->end || *c->p != '"')
		return false;
	c->p++;
	start = c->p;
	*escaped = false;
	while (c->p < c->end)
	{
		unsigned char ch = (unsigned char) *c->p;

		if (ch == '"')
		{
			*s = start;
			*n = (size_t) (c->p - start);
			c->p++;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch == '\\')
		{
			*escaped = true;
			c->p++;
			if (c->p >= c->end)
				return false;
			switch (*c->p)
			{
				case '"':
				case '\\':
				case '/':
				case 'b':
				case 'f':
				case 'n':
				case 'r':
				case 't':
					c->p++;
					break;
				case 'u':
					c->p++;
					for (int i = 0; i < 4; i++, c->p++)
						if (c->p >= c->end || !((*c->p >= '0' && *c->p <= '9') ||
												(*c->p >= 'a' && *c->p <= 'f') ||
												(*c->p >= 'A' && *c->p <= 'F')))
							return false;
					break;
				default:
					return false;
			}
			continue;
		}
		c->p++;
	}
	return false;
}

static bool
json_number(JsonCursor *c)
{
	const char *start = c->p;

	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return false;
	if (*c->p == '0')
		c->p++;
	else if (*c->p >= '1' && *c->p <= '9')
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	else
		return false;
	if (c->p < c->end && *c->p == '.')
	{
		c->p++;
		if (c->p >= c->end || !(*c->p >= '0' && *c->p <= '9'))
			return false;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E'))
	{
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (c->p >= c->end || !(*c->p >= '0' && *c->p <= '9'))
			return false;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	return c->p > start;
}

static bool
json_literal(JsonCursor *c, const char *lit)
{
	size_t		n = strlen(lit);

	if ((size_t) (c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool json_skip_value(JsonCursor *c, int depth);

static bool
json_skip_container(JsonCursor *c, int depth, char close)
{
	const char *s;
	size_t		n;
	bool		esc;

	if (depth > JSON_MAX_DEPTH)
		return false;
	c->p++;						/* the opening bracket */
	json_ws(c);
	if (c->p < c->end && *c->p == close)
	{
		c->p++;
		return true;
	}
	for (;;)
	{
		if (close == '}')
		{
			if (!json_string(c, &s, &n, &esc))
				return false;
			json_ws(c);
			if (c->p >= c->end || *c->p != ':')
				return false;
			c->p++;
		}
		if (!json_skip_value(c, depth + 1))
			return false;
		json_ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == ',')
		{
			c->p++;
			json_ws(c);
			continue;
		}
		if (*c->p == close)
		{
			c->p++;
			return true;
		}
		return false;
	}
}

static bool
json_skip_value(JsonCursor *c, int depth)
{
	const char *s;
	size_t		n;
	bool		esc;

	json_ws(c);
	if (c->p >= c->end)
		return false;
	switch (*c->p)
	{
		case '"':
			return json_string(c, &s, &n, &esc);
		case '{':
			return json_skip_container(c, depth, '}');
		case '[':
			return json_skip_container(c, depth, ']');
		case 't':
			return json_literal(c, "true");
		case 'f':
			return json_literal(c, "false");
		case 'n':
			return json_literal(c, "null");
		default:
			return json_number(c);
	}
}

/*
 * json_walk_object
 *		Calls fn for each top-level member of the object that is the whole
 *		input.  Returns false if the input is not exactly one valid JSON
 *		object or if fn returns false.
 */
static bool
json_walk_object(const char *json, size_t len, JsonMemberFn fn, void *arg)
{
	JsonCursor	c = {json, json + len};

	json_ws(&c);
	if (c.p >= c.end || *c.p != '{')
		return false;
	c.p++;
	json_ws(&c);
	if (c.p < c.end && *c.p == '}')
		c.p++;
	else
	{
		for (;;)
		{
			const char *key,
					   *val;
			size_t		keylen,
						vallen;
			bool		key_esc,
						val_esc = false;
			JsonValueKind kind;

			if (!json_string(&c, &key, &keylen, &key_esc))
				return false;
			json_ws(&c);
			if (c.p >= c.end || *c.p != ':')
				return false;
			c.p++;
			json_ws(&c);
			if (c.p >= c.end)
				return false;
			if (*c.p == '"')
			{
				kind = JV_STRING;
				if (!json_string(&c, &val, &vallen, &val_esc))
					return false;
			}
			else
			{
				val = c.p;
				kind = (*c.p == '-' || (*c.p >= '0' && *c.p <= '9')) ? JV_NUMBER : JV_OTHER;
				if (!json_skip_value(&c, 1))
					return false;
				vallen = (size_t) (c.p - val);
			}
			if (!fn(arg, key, keylen, key_esc, kind, val, vallen, val_esc))
				return false;
			json_ws(&c);
			if (c.p >= c.end)
				return false;
			if (*c.p == ',')
			{
				c.p++;
				json_ws(&c);
				continue;
			}
			if (*c.p == '}')
			{
				c.p++;
				break;
			}
			return false;
		}
	}
	json_ws(&c);
	return c.p == c.end;
}

static bool
key_is(const char *key, size_t keylen, bool escaped, const char *name)
{
	return !escaped && keylen == strlen(name) && memcmp(key, name, keylen) == 0;
}

/* ---------------------------------------------------------------------
 * Claims
 * --------------------------------------------------------------------- */

#define CLAIM_SUB	0x01
#define CLAIM_SID	0x02
#define CLAIM_ROLE	0x04
#define CLAIM_IAT	0x08
#define CLAIM_EXP	0x10
#define CLAIM_ISS	0x20
#define CLAIM_JTI	0x40
#define CLAIMS_REQUIRED (CLAIM_SUB | CLAIM_SID | CLAIM_IAT | CLAIM_EXP | CLAIM_ISS)

typedef struct ClaimsState
{
	JwtClaims  *claims;
	int			seen;
} ClaimsState;

static bool
claim_int(const char *val, size_t len, int64_t *out)
{
	int64_t		v = 0;

	/* non-negative integers only: no sign, fraction or exponent */
	if (len == 0 || len > 18)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (val[i] < '0' || val[i] > '9')
			return false;
		v = v * 10 + (val[i] - '0');
	}
	*out = v;
	return true;
}

static bool
claim_str(const char *val, size_t len, bool escaped, char *out, size_t cap)
{
	if (escaped || len >= cap)
		return false;
	memcpy(out, val, len);
	out[len] = '\0';
	return true;
}

static bool
claims_member(void *arg, const char *key, size_t keylen, bool key_esc,
			  JsonValueKind kind, const char *val, size_t vallen, bool val_esc)
{
	ClaimsState *st = arg;
	int			bit;
	bool		ok;

	if (key_is(key, keylen, key_esc, "sub"))
		bit = CLAIM_SUB;
	else if (key_is(key, keylen, key_esc, "sid"))
		bit = CLAIM_SID;
	else if (key_is(key, keylen, key_esc, "role"))
		bit = CLAIM_ROLE;
	else if (key_is(key, keylen, key_esc, "iat"))
		bit = CLAIM_IAT;
	else if (key_is(key, keylen, key_esc, "exp"))
		bit = CLAIM_EXP;
	else if (key_is(key, keylen, key_esc, "iss"))
		bit = CLAIM_ISS;
	else if (key_is(key, keylen, key_esc, "jti"))
		bit = CLAIM_JTI;
	else
		return true;			/* other claims are allowed and ignored */

	if (st->seen & bit)
		return false;			/* duplicate claim: refuse, never guess */
	st->seen |= bit;

	switch (bit)
	{
		case CLAIM_SUB:
			ok = kind == JV_STRING &&
				claim_str(val, vallen, val_esc, st->claims->sub, sizeof(st->claims->sub));
			break;
		case CLAIM_SID:
			ok = kind == JV_STRING &&
				claim_str(val, vallen, val_esc, st->claims->sid, sizeof(st->claims->sid));
			break;
		case CLAIM_ROLE:
			ok = kind == JV_STRING &&
				claim_str(val, vallen, val_esc, st->claims->role, sizeof(st->claims->role));
			break;
		case CLAIM_IAT:
			ok = kind == JV_NUMBER && claim_int(val, vallen, &st->claims->iat);
			break;
		case CLAIM_EXP:
			ok = kind == JV_NUMBER && claim_int(val, vallen, &st->claims->exp);
			break;
		case CLAIM_JTI:
			ok = kind == JV_STRING &&
				claim_str(val, vallen, val_esc, st->claims->jti, sizeof(st->claims->jti));
			break;
		case CLAIM_ISS:
			ok = kind == JV_STRING && !val_esc &&
				vallen == strlen(JWT_ISSUER) && memcmp(val, JWT_ISSUER, vallen) == 0;
			break;
		default:
			ok = false;
	}
	return ok;
}

/*
 * JwtParseClaims
 *		Parses a claims object.  Requires sub, sid, iat, exp and iss (which
 *		must be "audiotricks"); role is optional.  Returns false otherwise.
 */
bool
JwtParseClaims(const char *json, size_t len, JwtClaims *claims)
{
	ClaimsState st = {claims, 0};

	memset(claims, 0, sizeof(*claims));
	if (!json_walk_object(json, len, claims_member, &st))
		return false;
	return (st.seen & CLAIMS_REQUIRED) == CLAIMS_REQUIRED;
}

/*
 * JwtSha256
 *		SHA-256 of in.
 */
void
JwtSha256(const void *in, size_t len, uint8_t out[JWT_SHA256_BYTES])
{
	SHA256_CTX	c;

	SHA256_Init(&c);
	SHA256_Update(&c, in, len);
	SHA256_Final(out, &c);
	sodium_memzero(&c, sizeof(c));
}

/*
 * JwtKeyInit
 *		Prepares an HMAC-SHA-256 key (RFC 2104): the inner and outer pad
 *		blocks are hashed once here instead of on every token.  Wipe the key
 *		with sodium_memzero when done.
 */
void
JwtKeyInit(JwtKey *key, const uint8_t *secret, size_t secret_len)
{
	uint8_t		block[SHA256_CBLOCK];
	uint8_t		pad[SHA256_CBLOCK];

	memset(block, 0, sizeof(block));
	if (secret_len > sizeof(block))
		JwtSha256(secret, secret_len, block);
	else if (secret_len > 0)
		memcpy(block, secret, secret_len);

	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x36;
	SHA256_Init(&key->inner);
	SHA256_Update(&key->inner, pad, sizeof(pad));
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x5c;
	SHA256_Init(&key->outer);
	SHA256_Update(&key->outer, pad, sizeof(pad));
	sodium_memzero(block, sizeof(block));
	sodium_memzero(pad, sizeof(pad));
}

static void
hs256(const JwtKey *key, const char *msg, size_t len,
	  uint8_t mac[JWT_SHA256_BYTES])
{
	SHA256_CTX	c = key->inner;
	uint8_t		ih[JWT_SHA256_BYTES];

	SHA256_Update(&c, msg, len);
	SHA256_Final(ih, &c);
	c = key->outer;
	SHA256_Update(&c, ih, sizeof(ih));
	SHA256_Final(mac, &c);
	sodium_memzero(&c, sizeof(c));
	sodium_memzero(ih, sizeof(ih));
}

/*
 * JwtSignKey
 *		Writes header.payload.signature into out (NUL-terminated).  Returns
 *		its length, or 0 if outcap is too small.  claims->role and jti must
 *		be plain (no characters that need JSON escaping); each is omitted
 *		when empty.
 */
size_t
JwtSignKey(const JwtKey *key, const JwtClaims *claims, char *out, size_t outcap)
{
	char		payload[512];
	int			plen;
	size_t		n;
	uint8_t		mac[JWT_SHA256_BYTES];

	/*
	 * sub, sid, then role and jti when set, iat, exp, iss.  jti makes the
	 * token (and so its SHA-256 in sessions) unpredictable from the
	 * session's columns: with the secret alone nobody rebuilds a live token.
	 */
	plen = snprintf(payload, sizeof(payload),
					"{\"sub\":\"%s\",\"sid\":\"%s\"%s%s%s%s%s%s,\"iat\":%lld,\"exp\":%lld,\"iss\":\"%s\"}",
					claims->sub, claims->sid,
					claims->role[0] ? ",\"role\":\"" : "", claims->role, claims->role[0] ? "\"" : "",
					claims->jti[0] ? ",\"jti\":\"" : "", claims->jti, claims->jti[0] ? "\"" : "",
					(long long) claims->iat, (long long) claims->exp, JWT_ISSUER);
	if (plen < 0 || (size_t) plen >= sizeof(payload))
		return 0;

	n = strlen(JWT_HEADER_B64);
	if (outcap < n + 1 + JWT_B64_LEN((size_t) plen) + 1 + JWT_B64_LEN(sizeof(mac)) + 1)
		return 0;
	memcpy(out, JWT_HEADER_B64, n);
	out[n++] = '.';
	n += JwtB64Encode((const uint8_t *) payload, (size_t) plen, out + n);
	hs256(key, out, n, mac);
	out[n++] = '.';
	n += JwtB64Encode(mac, sizeof(mac), out + n);
	sodium_memzero(mac, sizeof(mac));
	return n;
}

/*
 * JwtVerifyKey
 *		True when token is exactly header.payload.signature with this
 *		extension's header, a valid HS256 signature under key (compared in
 *		constant time), the required claims, and exp > now.  Rejects tokens
 *		longer than JWT_MAX_LEN before reading them.
 */
bool
JwtVerifyKey(const JwtKey *key, const char *token, size_t len, int64_t now,
			 JwtClaims *claims)
{
	size_t		hlen = strlen(JWT_HEADER_B64);
	const char *payload;
	const char *sig;
	const char *dot;
	size_t		payload_len;
	size_t		sig_len;
	uint8_t		mac[JWT_SHA256_BYTES];
	uint8_t		given[JWT_SHA256_BYTES + 3];
	size_t		given_len;
	uint8_t		json[JWT_MAX_LEN];
	size_t		json_len;
	bool		ok;

	if (token == NULL || len == 0 || len > JWT_MAX_LEN)
		return false;
	/* the header must be byte-for-byte ours: no alg negotiation at all */
	if (len <= hlen + 1 || memcmp(token, JWT_HEADER_B64, hlen) != 0 || token[hlen] != '.')
		return false;
	payload = token + hlen + 1;
	dot = memchr(payload, '.', len - hlen - 1);
	if (dot == NULL)
		return false;
	payload_len = (size_t) (dot - payload);
	sig = dot + 1;
	sig_len = len - (size_t) (sig - token);
	if (sig_len != JWT_B64_LEN(sizeof(mac)) || memchr(sig, '.', sig_len) != NULL)
		return false;
	if (!JwtB64Decode(sig, sig_len, given, sizeof(given), &given_len) ||
		given_len != sizeof(mac))
		return false;

	hs256(key, token, (size_t) (dot - token), mac);
	ok = crypto_verify_32(mac, given) == 0;
	sodium_memzero(mac, sizeof(mac));
	if (!ok)
		return false;

	if (!JwtB64Decode(payload, payload_len, json, sizeof(json), &json_len))
		return false;
	if (!JwtParseClaims((const char *) json, json_len, claims))
		return false;
	return claims->exp > now && claims->iat <= claims->exp;
}

/* value of each byte as a hex digit, or -1 */
static const signed char hex_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
};

/*
 * JwtParseUuid
 *		Parses the canonical 8-4-4-4-12 form.  Returns false otherwise.
 */
bool
JwtParseUuid(const char *s, size_t len, uint8_t out[16])
{
	/* where each of the 16 bytes' two digits start in 8-4-4-4-12 */
	static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
	const unsigned char *u = (const unsigned char *) s;
	int			bad = 0;

	if (len != JWT_UUID_STRLEN || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-')
		return false;
	for (int i = 0; i < 16; i++)
	{
		int			hi = hex_values[u[at[i]]];
		int			lo = hex_values[u[at[i] + 1]];

		bad |= hi | lo;
		out[i] = (uint8_t) ((hi & 0x0f) << 4 | (lo & 0x0f));
	}
	return bad >= 0;
}

/*
 * JwtFormatUuid
 *		Canonical lower-case text form of a UUID.
 */
void
JwtFormatUuid(const uint8_t in[16], char out[JWT_UUID_STRLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	int			o = 0;

	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[in[i] >> 4];
		out[o++] = hex[in[i] & 15];
	}
	out[o] = '\0';
}

typedef struct BearerState
{
	const char *token;
	size_t		token_len;
	int			found;
} BearerState;

static bool
bearer_member(void *arg, const char *key, size_t keylen, bool key_esc,
			  JsonValueKind kind, const char *val, size_t vallen, bool val_esc)
{
	BearerState *st = arg;

	if (!key_is(key, keylen, key_esc, "authorization"))
		return true;
	st->found++;
	if (kind != JV_STRING || val_esc)
		return true;			/* not a token we could have issued */
	/* scheme is case-insensitive; then one or more spaces */
	if (vallen < 7 || strncasecmp(val, "bearer", 6) != 0 || val[6] != ' ')
		return true;
	val += 7;
	vallen -= 7;
	while (vallen > 0 && *val == ' ')
	{
		val++;
		vallen--;
	}
	while (vallen > 0 && val[vallen - 1] == ' ')
		vallen--;
	st->token = val;
	st->token_len = vallen;
	return true;
}

/*
 * BearerFromHeaders
 *		Finds "authorization": "Bearer <token>" in PostgREST's request.headers
 *		JSON (lower-cased header names).  Returns JWT_BEARER_NONE when there
 *		is no authorization header, JWT_BEARER_FOUND with *token pointing into
 *		json, or JWT_BEARER_BAD when the JSON is malformed, the header appears
 *		more than once, or it is not a non-empty Bearer credential.
 */
int
BearerFromHeaders(const char *json, size_t len, const char **token,
				  size_t *token_len)
{
	BearerState st = {NULL, 0, 0};

	if (!json_walk_object(json, len, bearer_member, &st))
		return JWT_BEARER_BAD;
	if (st.found == 0)
		return JWT_BEARER_NONE;
	if (st.found != 1 || st.token == NULL || st.token_len == 0)
		return JWT_BEARER_BAD;
	*token = st.token;
	*token_len = st.token_len;
	return JWT_BEARER_FOUND;
}
