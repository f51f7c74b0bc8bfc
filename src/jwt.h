/*
 * src/jwt.h
 *		HS256 JSON Web Tokens, base64url and a strict flat-JSON scanner.
 *		Pure C with libsodium and OpenSSL's SHA-256: no server calls, so
 *		test/fuzz links it alone.
 */
#ifndef AT_JWT_H
#define AT_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

/*
 * SHA-256 comes from OpenSSL's low-level interface: it uses the CPU's SHA
 * instructions (about 3x libsodium's portable C on these machines: a token
 * check hashes ~600 bytes), and its context is a plain struct, so a key's
 * pad blocks can be hashed once and the state copied per token.  OpenSSL 3
 * marks that interface deprecated in favour of EVP, whose contexts are heap
 * objects with a per-use fetch; the functions remain supported in 3.x.
 */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/sha.h>

#define JWT_SHA256_BYTES	32

#define JWT_MAX_LEN			4096
#define JWT_UUID_STRLEN		36
#define JWT_ROLE_MAX		63
#define JWT_JTI_MAX			43		/* base64url of up to 32 bytes */
#define JWT_ISSUER			"audiotricks"
/* base64url of {"alg":"HS256","typ":"JWT"}: the only header accepted */
#define JWT_HEADER_B64		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

typedef struct JwtClaims
{
	char		sub[JWT_UUID_STRLEN + 1];	/* user id */
	char		sid[JWT_UUID_STRLEN + 1];	/* session id */
	char		role[JWT_ROLE_MAX + 1];
	char		jti[JWT_JTI_MAX + 1];	/* random, stored nowhere; '' = none */
	int64_t		iat;
	int64_t		exp;
} JwtClaims;

/* encoded length of n bytes, without padding or terminator */
#define JWT_B64_LEN(n)		(((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* an HMAC key with its inner and outer pads already hashed */
typedef struct JwtKey
{
	SHA256_CTX	inner;
	SHA256_CTX	outer;
} JwtKey;

extern void JwtKeyInit(JwtKey *key, const uint8_t *secret, size_t secret_len);
extern size_t JwtSignKey(const JwtKey *key, const JwtClaims *claims,
						 char *out, size_t outcap);
extern bool JwtVerifyKey(const JwtKey *key, const char *token, size_t len,
						 int64_t now, JwtClaims *claims);
extern size_t JwtB64Encode(const uint8_t *in, size_t len, char *out);
extern bool JwtB64Decode(const char *in, size_t len, uint8_t *out,
						 size_t outcap, size_t *outlen);
extern bool JwtParseClaims(const char *json, size_t len, JwtClaims *claims);
extern void JwtSha256(const void *in, size_t len, uint8_t out[JWT_SHA256_BYTES]);
extern bool JwtParseUuid(const char *s, size_t len, uint8_t out[16]);
extern void JwtFormatUuid(const uint8_t in[16], char out[JWT_UUID_STRLEN + 1]);
#define JWT_BEARER_BAD		(-1)
#define JWT_BEARER_NONE		0
#define JWT_BEARER_FOUND	1
extern int	BearerFromHeaders(const char *json, size_t len,
							  const char **token, size_t *token_len);

#endif							/* AT_JWT_H */
