/*
 * src/ciphertext.h
 *		Master-key ring, key-file parser and the self-describing AES-256-GCM
 *		ciphertext format of at_encrypt_key and the stored API keys.
 *		Pure C with libsodium and OpenSSL's libcrypto: no server calls, so
 *		test/fuzz links it alone.
 *
 * Text format (every piece is JSON-, CSV- and URL-safe):
 *
 *		at1.<key id>.<fingerprint>.<nonce>.<ciphertext and tag>
 *
 * "at1" is the format version; the key id is decimal (1-65535, no leading
 * zeros); the fingerprint (8 bytes), the nonce (12 bytes) and the
 * ciphertext with its 16-byte GCM tag are unpadded base64url.  The
 * associated data is
 *
 *		"at1" | domain (1 byte) | key id (2 bytes, big-endian) |
 *		fingerprint (8 bytes) | context
 *
 * so the version, the key, the domain (raw at_encrypt_key or a stored API
 * key) and the caller's context are all authenticated.
 */
#ifndef AT_CIPHERTEXT_H
#define AT_CIPHERTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_VERSION			"at1"
#define CT_KEY_BYTES		32
#define CT_NONCE_BYTES		12
#define CT_TAG_BYTES		16
#define CT_FP_BYTES			8
#define CT_KEY_ID_MAX		65535
#define CT_MAX_KEYS			64
#define CT_MAX_PLAINTEXT	(1024 * 1024)	/* bytes */
#define CT_MAX_CONTEXT		1024	/* bytes of caller context */
#define CT_KEYFILE_MAX		(64 * 1024) /* bytes */
#define CT_PREFIX_MAX		32		/* "at1.65535.<11 chars>." and NUL */

/* domains: what a ciphertext may be decrypted as */
#define CT_DOMAIN_RAW		'R'		/* at_encrypt_key / at_decrypt_key */
#define CT_DOMAIN_API_KEY	'K'		/* at_set_api_key / at_get_api_key */

/* AES-256-GCM implementations */
typedef enum CtBackend
{
	CT_BACKEND_AUTO = 0,		/* libsodium when the CPU has AES-NI, else
								 * OpenSSL */
	CT_BACKEND_LIBSODIUM,
	CT_BACKEND_OPENSSL
} CtBackend;

typedef struct CtKey
{
	uint16_t	id;
	uint8_t		key[CT_KEY_BYTES];
	uint8_t		fp[CT_FP_BYTES];
} CtKey;

typedef struct CtKeyring
{
	int			nkeys;
	int			current;		/* index into keys */
	CtKey		keys[CT_MAX_KEYS];
} CtKeyring;

/* what went wrong; never carries key or plaintext bytes */
typedef enum CtResult
{
	CT_OK = 0,
	CT_ERR_MALFORMED,			/* not an at1 ciphertext, truncated, bad
								 * encoding */
	CT_ERR_UNKNOWN_KEY,			/* key id not in the ring */
	CT_ERR_KEY_MISMATCH,		/* key id known, fingerprint differs */
	CT_ERR_AUTH,				/* tag check failed: wrong context or altered */
	CT_ERR_TOO_LONG,			/* plaintext over CT_MAX_PLAINTEXT */
	CT_ERR_CONTEXT_TOO_LONG,	/* context over CT_MAX_CONTEXT */
	CT_ERR_BACKEND,				/* requested AES implementation unusable */
	CT_ERR_INTERNAL				/* a library call failed */
} CtResult;

/* a parsed, not yet authenticated ciphertext; pointers into the input */
typedef struct CtParsed
{
	uint16_t	key_id;
	uint8_t		fp[CT_FP_BYTES];
	uint8_t		nonce[CT_NONCE_BYTES];
	const char *body;			/* base64url of ciphertext and tag */
	size_t		body_len;
	size_t		sealed_len;		/* decoded length of body */
} CtParsed;

extern bool CtLibsodiumAvailable(void);
extern CtBackend CtResolveBackend(CtBackend requested);

extern bool CtKeyringParse(const char *buf, size_t len, CtKeyring *ring,
						   int *errline, const char **errwhat);
extern const CtKey *CtKeyringFind(const CtKeyring *ring, uint16_t id);
extern void CtKeyringWipe(CtKeyring *ring);

extern size_t CtEncodedLen(size_t plaintext_len);
extern CtResult CtSeal(const CtKey *key, CtBackend backend, char domain,
					   const uint8_t nonce[CT_NONCE_BYTES],
					   const uint8_t *context, size_t context_len,
					   const uint8_t *plaintext, size_t plaintext_len,
					   uint8_t *scratch, size_t scratchcap,
					   char *out, size_t outcap, size_t *outlen);
extern CtResult CtParse(const char *in, size_t len, CtParsed *parsed);
extern CtResult CtOpen(const CtKeyring *ring, CtBackend backend, char domain,
					   const CtParsed *parsed,
					   const uint8_t *context, size_t context_len,
					   uint8_t *out, size_t outcap, size_t *outlen);
extern size_t CtKeyPrefix(const CtKey *key, char *out, size_t outcap);

#endif							/* AT_CIPHERTEXT_H */
