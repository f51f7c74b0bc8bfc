/*
 * src/ciphertext.c
 *		Master-key ring, key-file parser and the at1 AES-256-GCM ciphertext
 *		format (see ciphertext.h), with two interchangeable implementations
 *		of AES-256-GCM: libsodium (needs AES-NI and PCLMUL) and OpenSSL's EVP.
 *		Both produce and accept exactly the same bytes.
 *
 * Pure C: no server calls, no allocation except OpenSSL's own cipher
 * context, so the fuzz target in test/fuzz links this file alone.  Nothing
 * here ever copies key or plaintext bytes into an error; buffers that held
 * secrets are wiped before returning.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <openssl/evp.h>

#include "ciphertext.h"

#define FP_B64_LEN		11		/* base64url of 8 bytes, unpadded */
#define NONCE_B64_LEN	16		/* base64url of 12 bytes */
#define AD_FIXED_LEN	(3 + 1 + 2 + CT_FP_BYTES)

static const char fp_label[] = "audiotricks master key fingerprint v1";

/*
 * CtLibsodiumAvailable
 *		True when libsodium's AES-256-GCM can run on this CPU.
 */
bool
CtLibsodiumAvailable(void)
{
	return crypto_aead_aes256gcm_is_available() != 0;
}

/*
 * CtResolveBackend
 *		The implementation a request for "requested" uses: auto picks
 *		libsodium when the CPU supports it, else OpenSSL.
 */
CtBackend
CtResolveBackend(CtBackend requested)
{
	if (requested == CT_BACKEND_AUTO)
		return CtLibsodiumAvailable() ? CT_BACKEND_LIBSODIUM : CT_BACKEND_OPENSSL;
	return requested;
}

/* ---------------------------------------------------------------------
 * Key file
 * --------------------------------------------------------------------- */

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* strict decimal key id: 1-65535, no sign, no leading zero */
static bool
parse_key_id(const char *s, size_t len, uint16_t *id)
{
	uint32_t	v = 0;
	size_t		i;

	if (len == 0 || len > 5 || s[0] == '0')
		return false;
	for (i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t) (s[i] - '0');
	}
	if (v < 1 || v > CT_KEY_ID_MAX)
		return false;
	*id = (uint16_t) v;
	return true;
}

static void
key_fingerprint(const uint8_t key[CT_KEY_BYTES], uint8_t fp[CT_FP_BYTES])
{
	uint8_t		h[crypto_generichash_BYTES_MIN];

	/* a keyed hash: reveals nothing about the key, identifies it */
	crypto_generichash(h, sizeof(h), (const uint8_t *) fp_label,
					   sizeof(fp_label) - 1, key, CT_KEY_BYTES);
	memcpy(fp, h, CT_FP_BYTES);
	sodium_memzero(h, sizeof(h));
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* splits a line into at most 4 whitespace-separated tokens */
static int
split_tokens(const char *line, size_t len, const char **tok, size_t *toklen)
{
	int			n = 0;
	size_t		i = 0;

	while (i < len)
	{
		size_t		start;

		while (i < len && is_space(line[i]))
			i++;
		if (i >= len)
			break;
		if (n == 4)
			return -1;
		start = i;
		while (i < len && !is_space(line[i]))
			i++;
		tok[n] = line + start;
		toklen[n] = i - start;
		n++;
	}
	return n;
}

/*
 * CtKeyringParse
 *		Parses a key file into ring.  The format, one statement a line:
 *
 *			# comment (also blank lines)
 *			key <id> <64 hex digits>
 *			current <id>
 *
 *		Ids are 1-65535; at most CT_MAX_KEYS keys; exactly one "current"
 *		line naming one of the keys.  On failure returns false with the
 *		1-based line number (0: the file as a whole) and a static description
 *		of the rule broken (never any of the file's bytes), and leaves ring
 *		wiped.
 */
bool
CtKeyringParse(const char *buf, size_t len, CtKeyring *ring,
			   int *errline, const char **errwhat)
{
	size_t		pos = 0;
	int			lineno = 0;
	int			current_id = -1;
	int			current_line = 0;
	int			i;

	memset(ring, 0, sizeof(*ring));
	ring->current = -1;
	*errline = 0;
	*errwhat = NULL;

	if (buf == NULL || len == 0)
	{
		*errwhat = "the file is empty";
		return false;
	}
	if (len > CT_KEYFILE_MAX)
	{
		*errwhat = "the file is larger than 64 kB";
		return false;
	}

	while (pos < len)
	{
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t		linelen = nl ? (size_t) (nl - line) : len - pos;
		const char *tok[4];
		size_t		toklen[4];
		int			ntok;
		size_t		j;

		pos += linelen + (nl ? 1 : 0);
		lineno++;

		for (j = 0; j < linelen; j++)
		{
			unsigned char c = (unsigned char) line[j];

			if (c == '\0' || c >= 0x80 || (c < 0x20 && c != '\t' && c != '\r'))
			{
				*errline = lineno;
				*errwhat = "the line contains a control or non-ASCII character";
				goto fail;
			}
		}
		for (j = 0; j < linelen && is_space(line[j]); j++)
			;
		if (j == linelen || line[j] == '#')
			continue;			/* blank line or comment */
		ntok = split_tokens(line, linelen, tok, toklen);
		if (ntok < 0)
		{
			*errline = lineno;
			*errwhat = "too many words on the line";
			goto fail;
		}

		if (toklen[0] == 3 && memcmp(tok[0], "key", 3) == 0)
		{
			CtKey	   *k;
			uint16_t	id;

			if (ntok != 3)
			{
				*errline = lineno;
				*errwhat = "expected \"key <id> <64 hex digits>\"";
				goto fail;
			}
			if (!parse_key_id(tok[1], toklen[1], &id))
			{
				*errline = lineno;
				*errwhat = "a key id must be an integer from 1 to 65535 without leading zeros";
				goto fail;
			}
			if (CtKeyringFind(ring, id) != NULL)
			{
				*errline = lineno;
				*errwhat = "the key id appears more than once";
				goto fail;
			}
			if (ring->nkeys >= CT_MAX_KEYS)
			{
				*errline = lineno;
				*errwhat = "more than 64 keys";
				goto fail;
			}
			if (toklen[2] != CT_KEY_BYTES * 2)
			{
				*errline = lineno;
				*errwhat = "a key must be exactly 64 hex digits (32 bytes)";
				goto fail;
			}
			k = &ring->keys[ring->nkeys];
			k->id = id;
			for (j = 0; j < CT_KEY_BYTES; j++)
			{
				int			hi = hex_value(tok[2][2 * j]);
				int			lo = hex_value(tok[2][2 * j + 1]);

				if (hi < 0 || lo < 0)
				{
					*errline = lineno;
					*errwhat = "a key must be exactly 64 hex digits (32 bytes)";
					goto fail;
				}
				k->key[j] = (uint8_t) (hi << 4 | lo);
			}
			key_fingerprint(k->key, k->fp);
			ring->nkeys++;
		}
		else if (toklen[0] == 7 && memcmp(tok[0], "current", 7) == 0)
		{
			uint16_t	id;

			if (ntok != 2)
			{
				*errline = lineno;
				*errwhat = "expected \"current <id>\"";
				goto fail;
			}
			if (current_id >= 0)
			{
				*errline = lineno;
				*errwhat = "\"current\" appears more than once";
				goto fail;
			}
			if (!parse_key_id(tok[1], toklen[1], &id))
			{
				*errline = lineno;
				*errwhat = "a key id must be an integer from 1 to 65535 without leading zeros";
				goto fail;
			}
			current_id = id;
			current_line = lineno;
		}
		else
		{
			*errline = lineno;
			*errwhat = "expected \"key <id> <hex>\", \"current <id>\" or a # comment";
			goto fail;
		}
	}

	if (ring->nkeys == 0)
	{
		*errwhat = "the file holds no key";
		goto fail;
	}
	if (current_id < 0)
	{
		*errwhat = "the file has no \"current <id>\" line";
		goto fail;
	}
	for (i = 0; i < ring->nkeys; i++)
		if (ring->keys[i].id == current_id)
			ring->current = i;
	if (ring->current < 0)
	{
		*errline = current_line;
		*errwhat = "the current key id is not one of the keys";
		goto fail;
	}
	return true;

fail:
	CtKeyringWipe(ring);
	return false;
}

/*
 * CtKeyringFind
 *		The key with this id, or NULL.
 */
const CtKey *
CtKeyringFind(const CtKeyring *ring, uint16_t id)
{
	int			i;

	for (i = 0; i < ring->nkeys; i++)
		if (ring->keys[i].id == id)
			return &ring->keys[i];
	return NULL;
}

/*
 * CtKeyringWipe
 *		Zeroes every byte of ring, leaving it empty.
 */
void
CtKeyringWipe(CtKeyring *ring)
{
	sodium_memzero(ring, sizeof(*ring));
	ring->current = -1;
}

/* ---------------------------------------------------------------------
 * AES-256-GCM
 * --------------------------------------------------------------------- */

static size_t
build_ad(uint8_t *ad, char domain, const CtKey *key,
		 const uint8_t *context, size_t context_len)
{
	memcpy(ad, CT_VERSION, 3);
	ad[3] = (uint8_t) domain;
	ad[4] = (uint8_t) (key->id >> 8);
	ad[5] = (uint8_t) (key->id & 0xff);
	memcpy(ad + 6, key->fp, CT_FP_BYTES);
	if (context_len > 0)
		memcpy(ad + AD_FIXED_LEN, context, context_len);
	return AD_FIXED_LEN + context_len;
}

static bool
openssl_gcm(bool encrypt, const uint8_t *key, const uint8_t *nonce,
			const uint8_t *ad, size_t ad_len,
			const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int			outl = 0;
	int			finl = 0;
	bool		ok;

	if (ctx == NULL)
		return false;
	ok = (encrypt ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)
		  : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CT_NONCE_BYTES, NULL) == 1 &&
		(encrypt ? EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce)
		 : EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce)) == 1;
	if (ok && ad_len > 0)
		ok = (encrypt ? EVP_EncryptUpdate(ctx, NULL, &outl, ad, (int) ad_len)
			  : EVP_DecryptUpdate(ctx, NULL, &outl, ad, (int) ad_len)) == 1;
	outl = 0;
	if (ok && len > 0)
		ok = (encrypt ? EVP_EncryptUpdate(ctx, out, &outl, in, (int) len)
			  : EVP_DecryptUpdate(ctx, out, &outl, in, (int) len)) == 1;
	if (ok && !encrypt)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CT_TAG_BYTES, tag) == 1;
	if (ok)
		ok = (encrypt ? EVP_EncryptFinal_ex(ctx, out + outl, &finl)
			  : EVP_DecryptFinal_ex(ctx, out + outl, &finl)) == 1;
	if (ok && encrypt)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CT_TAG_BYTES, tag) == 1;
	if (ok && (size_t) outl + (size_t) finl != len)
		ok = false;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/*
 * CtEncodedLen
 *		Bytes CtSeal writes for a plaintext of this length, with the NUL.
 */
size_t
CtEncodedLen(size_t plaintext_len)
{
	return 3 + 1 + 5 + 1 + FP_B64_LEN + 1 + NONCE_B64_LEN + 1 +
		sodium_base64_ENCODED_LEN(plaintext_len + CT_TAG_BYTES,
								  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/*
 * CtKeyPrefix
 *		Writes "at1.<id>.<fingerprint>." for key into out (with a NUL) and
 *		returns its length: every value sealed under key starts with it.
 *		Returns 0 if outcap is too small.
 */
size_t
CtKeyPrefix(const CtKey *key, char *out, size_t outcap)
{
	char		fp[FP_B64_LEN + 1];
	int			n;

	sodium_bin2base64(fp, sizeof(fp), key->fp, CT_FP_BYTES,
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	n = snprintf(out, outcap, "%s.%u.%s.", CT_VERSION, (unsigned) key->id, fp);
	if (n < 0 || (size_t) n >= outcap)
		return 0;
	return (size_t) n;
}

/*
 * CtSeal
 *		Encrypts plaintext under key with nonce, which the caller must take
 *		fresh from a CSPRNG for every call (never reuse one with a key), and
 *		writes the at1 text (NUL-terminated) to out, which needs CtEncodedLen
 *		bytes; scratch needs plaintext_len + CT_TAG_BYTES bytes and is wiped.
 */
CtResult
CtSeal(const CtKey *key, CtBackend backend, char domain,
	   const uint8_t nonce[CT_NONCE_BYTES],
	   const uint8_t *context, size_t context_len,
	   const uint8_t *plaintext, size_t plaintext_len,
	   uint8_t *scratch, size_t scratchcap,
	   char *out, size_t outcap, size_t *outlen)
{
	uint8_t		ad[AD_FIXED_LEN + CT_MAX_CONTEXT];
	size_t		ad_len;
	size_t		sealed_len = plaintext_len + CT_TAG_BYTES;
	size_t		prefix_len;
	size_t		b64cap;
	bool		ok;

	*outlen = 0;
	if (plaintext_len > CT_MAX_PLAINTEXT)
		return CT_ERR_TOO_LONG;
	if (context_len > CT_MAX_CONTEXT)
		return CT_ERR_CONTEXT_TOO_LONG;
	if (scratchcap < sealed_len || outcap < CtEncodedLen(plaintext_len))
		return CT_ERR_INTERNAL;
	backend = CtResolveBackend(backend);
	if (backend == CT_BACKEND_LIBSODIUM && !CtLibsodiumAvailable())
		return CT_ERR_BACKEND;

	ad_len = build_ad(ad, domain, key, context, context_len);

	if (backend == CT_BACKEND_LIBSODIUM)
	{
		unsigned long long maclen = 0;

		ok = crypto_aead_aes256gcm_encrypt_detached(scratch,
													scratch + plaintext_len,
													&maclen,
													plaintext, plaintext_len,
													ad, ad_len, NULL,
													nonce, key->key) == 0 &&
			maclen == CT_TAG_BYTES;
	}
	else
		ok = openssl_gcm(true, key->key, nonce, ad, ad_len,
						 plaintext, plaintext_len,
						 scratch, scratch + plaintext_len);
	if (!ok)
	{
		sodium_memzero(scratch, sealed_len);
		return CT_ERR_INTERNAL;
	}

	prefix_len = CtKeyPrefix(key, out, outcap);
	if (prefix_len == 0)
		return CT_ERR_INTERNAL;
	sodium_bin2base64(out + prefix_len, outcap - prefix_len, nonce, CT_NONCE_BYTES,
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	prefix_len += NONCE_B64_LEN;
	out[prefix_len++] = '.';
	b64cap = outcap - prefix_len;
	sodium_bin2base64(out + prefix_len, b64cap, scratch, sealed_len,
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	*outlen = prefix_len + strlen(out + prefix_len);
	sodium_memzero(scratch, sealed_len);
	return CT_OK;
}

/*
 * Only the 64 base64url characters.  libsodium 1.0.18's decoder maps bytes
 * >= 0x80 to digits (found by test/fuzz/fuzz_ciphertext.c), which would let
 * several texts stand for one ciphertext: check the alphabet ourselves.
 */
static bool
b64url_alphabet(const char *in, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		c = in[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool
b64_exact(const char *in, size_t len, uint8_t *out, size_t want)
{
	size_t		got = 0;

	if (!b64url_alphabet(in, len))
		return false;
	if (sodium_base642bin(out, want, in, len, NULL, &got, NULL,
						  sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return false;
	return got == want;
}

/*
 * CtParse
 *		Splits an at1 text into its pieces and checks their encodings and
 *		lengths; does not touch any key.  CT_ERR_MALFORMED on anything else.
 *		parsed->body points into in.
 */
CtResult
CtParse(const char *in, size_t len, CtParsed *parsed)
{
	const char *part[5];
	size_t		plen[5];
	size_t		start = 0;
	size_t		i;
	int			n = 0;
	size_t		b64_len;

	memset(parsed, 0, sizeof(*parsed));
	if (in == NULL || len < 4 ||
		len > CtEncodedLen(CT_MAX_PLAINTEXT))
		return CT_ERR_MALFORMED;
	for (i = 0; i <= len; i++)
	{
		if (i == len || in[i] == '.')
		{
			if (n == 5)
				return CT_ERR_MALFORMED;
			part[n] = in + start;
			plen[n] = i - start;
			n++;
			start = i + 1;
		}
	}
	if (n != 5)
		return CT_ERR_MALFORMED;
	if (plen[0] != 3 || memcmp(part[0], CT_VERSION, 3) != 0)
		return CT_ERR_MALFORMED;
	if (!parse_key_id(part[1], plen[1], &parsed->key_id))
		return CT_ERR_MALFORMED;
	if (plen[2] != FP_B64_LEN || !b64_exact(part[2], plen[2], parsed->fp, CT_FP_BYTES))
		return CT_ERR_MALFORMED;
	if (plen[3] != NONCE_B64_LEN ||
		!b64_exact(part[3], plen[3], parsed->nonce, CT_NONCE_BYTES))
		return CT_ERR_MALFORMED;

	/* body: base64url of at least the tag; length mod 4 == 1 is impossible */
	b64_len = plen[4];
	if (b64_len % 4 == 1)
		return CT_ERR_MALFORMED;
	parsed->sealed_len = b64_len / 4 * 3 + (b64_len % 4 ? b64_len % 4 - 1 : 0);
	if (parsed->sealed_len < CT_TAG_BYTES ||
		parsed->sealed_len - CT_TAG_BYTES > CT_MAX_PLAINTEXT)
		return CT_ERR_MALFORMED;
	if (!b64url_alphabet(part[4], b64_len))
		return CT_ERR_MALFORMED;
	parsed->body = part[4];
	parsed->body_len = b64_len;
	return CT_OK;
}

/*
 * CtOpen
 *		Authenticates and decrypts a parsed ciphertext.  out needs
 *		parsed->sealed_len bytes; the plaintext (parsed->sealed_len -
 *		CT_TAG_BYTES bytes) is written at its start.  On any failure out is
 *		wiped and nothing of the plaintext is returned.
 */
CtResult
CtOpen(const CtKeyring *ring, CtBackend backend, char domain,
	   const CtParsed *parsed,
	   const uint8_t *context, size_t context_len,
	   uint8_t *out, size_t outcap, size_t *outlen)
{
	const CtKey *key;
	uint8_t		ad[AD_FIXED_LEN + CT_MAX_CONTEXT];
	size_t		ad_len;
	uint8_t		tag[CT_TAG_BYTES];
	size_t		got = 0;
	size_t		mlen;
	bool		ok;

	*outlen = 0;
	if (context_len > CT_MAX_CONTEXT)
		return CT_ERR_CONTEXT_TOO_LONG;
	if (outcap < parsed->sealed_len || parsed->sealed_len < CT_TAG_BYTES)
		return CT_ERR_INTERNAL;
	key = CtKeyringFind(ring, parsed->key_id);
	if (key == NULL)
		return CT_ERR_UNKNOWN_KEY;
	if (sodium_memcmp(key->fp, parsed->fp, CT_FP_BYTES) != 0)
		return CT_ERR_KEY_MISMATCH;
	backend = CtResolveBackend(backend);
	if (backend == CT_BACKEND_LIBSODIUM && !CtLibsodiumAvailable())
		return CT_ERR_BACKEND;

	if (sodium_base642bin(out, outcap, parsed->body, parsed->body_len, NULL,
						  &got, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
		got != parsed->sealed_len)
	{
		sodium_memzero(out, outcap);
		return CT_ERR_MALFORMED;
	}
	mlen = got - CT_TAG_BYTES;
	memcpy(tag, out + mlen, CT_TAG_BYTES);
	ad_len = build_ad(ad, domain, key, context, context_len);

	if (backend == CT_BACKEND_LIBSODIUM)
		ok = crypto_aead_aes256gcm_decrypt_detached(out, NULL, out, mlen, tag,
													ad, ad_len, parsed->nonce,
													key->key) == 0;
	else
		ok = openssl_gcm(false, key->key, parsed->nonce, ad, ad_len,
						 out, mlen, out, tag);
	if (!ok)
	{
		sodium_memzero(out, outcap);
		return CT_ERR_AUTH;
	}
	sodium_memzero(out + mlen, CT_TAG_BYTES);
	*outlen = mlen;
	return CT_OK;
}
