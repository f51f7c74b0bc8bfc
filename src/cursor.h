/*
 * src/cursor.h
 *		History cursors: the opaque text that at_history_page and
 *		at_history_search return with each row and take back to continue after
 *		that row.  Pure C (test/unit and test/fuzz use it without a server).
 *
 * A cursor holds the row's exact sort key: created_at in microseconds and
 * the id for a page; the rank's exact float bits before them for a search,
 * and a tag of the query text, so that a search cursor given with another
 * query is refused rather than read as a position in a different order.
 * Nothing in it is secret or needs a signature: it is only a position among
 * the caller's own rows, and the identity decides whose rows those are.
 *
 * Bytes: kind (1), [rank bits (4)], created_at (8), id (16), [query tag (4)],
 * check (4), all big-endian; text: base64url without padding (RFC 4648,
 * section 5), so it travels in a URL, a JSON string or a JS string unchanged.
 * The check is 4 bytes of SipHash-2-4 under a fixed public key: not a
 * signature, a way to tell a mistyped or truncated cursor (22023) from a
 * position, so that a damaged cursor never yields a wrong page.
 *
 * Decoding accepts exactly what encoding produces: the exact length, only
 * the base64url alphabet, zero padding bits, a known kind, a finite rank and
 * a matching check.
 */
#ifndef AT_CURSOR_H
#define AT_CURSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#define AT_CURSOR_PAGE		1
#define AT_CURSOR_SEARCH	2

/* bytes before encoding, and characters after */
#define AT_CURSOR_PAGE_BYTES	(1 + 8 + 16 + 4)
#define AT_CURSOR_SEARCH_BYTES	(1 + 4 + 8 + 16 + 4 + 4)
#define AT_CURSOR_CHARS(n)		(((n) * 4 + 2) / 3)
#define AT_CURSOR_MAX_CHARS		AT_CURSOR_CHARS(AT_CURSOR_SEARCH_BYTES)

typedef struct AtCursor
{
	int			kind;			/* AT_CURSOR_PAGE or AT_CURSOR_SEARCH */
	uint32_t	rank_bits;		/* search: the float4 rank's bits */
	int64_t		created_at;		/* PostgreSQL timestamp, microseconds */
	uint8_t		id[16];
	uint32_t	query_tag;		/* search: AtCursorQueryTag of the query */
} AtCursor;

typedef enum AtCursorError
{
	AT_CURSOR_OK = 0,
	AT_CURSOR_BAD_LENGTH,
	AT_CURSOR_BAD_CHARACTER,
	AT_CURSOR_BAD_CHECK,
	AT_CURSOR_BAD_KIND,
	AT_CURSOR_BAD_RANK
} AtCursorError;

/* a fixed, public SipHash key: the check is an error-detecting code */
static const unsigned char at_cursor_check_key[crypto_shorthash_KEYBYTES] =
"audiotricks.cur";

static inline uint32_t
at_cursor_tag(const unsigned char *data, size_t len, unsigned char domain)
{
	unsigned char key[crypto_shorthash_KEYBYTES];
	unsigned char h[crypto_shorthash_BYTES];

	memcpy(key, at_cursor_check_key, sizeof(key));
	key[sizeof(key) - 1] = domain;
	crypto_shorthash(h, data, len, key);
	return ((uint32_t) h[0] << 24) | ((uint32_t) h[1] << 16) |
		((uint32_t) h[2] << 8) | h[3];
}

/* the tag of a search query's text that a search cursor carries */
static inline uint32_t
AtCursorQueryTag(const char *query, size_t len)
{
	return at_cursor_tag((const unsigned char *) query, len, 'q');
}

static inline unsigned char *
at_cursor_put(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
	{
		p[i] = (unsigned char) (v & 0xFF);
		v >>= 8;
	}
	return p + bytes;
}

static inline const unsigned char *
at_cursor_get(const unsigned char *p, uint64_t *v, int bytes)
{
	uint64_t	r = 0;

	for (int i = 0; i < bytes; i++)
		r = (r << 8) | p[i];
	*v = r;
	return p + bytes;
}

static const char at_cursor_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static inline int
at_cursor_sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* writes raw's base64url text, without padding, and a NUL; returns its length */
static inline size_t
at_cursor_text(const unsigned char *raw, size_t nraw, char *out)
{
	size_t		n = 0;
	uint32_t	acc = 0;
	int			bits = 0;

	for (size_t i = 0; i < nraw; i++)
	{
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 6)
		{
			bits -= 6;
			out[n++] = at_cursor_alphabet[(acc >> bits) & 0x3F];
		}
	}
	if (bits > 0)
		out[n++] = at_cursor_alphabet[(acc << (6 - bits)) & 0x3F];
	out[n] = '\0';
	return n;
}

/* the check: the last 4 bytes of a cursor, over the bytes before them */
static inline unsigned char *
at_cursor_seal(unsigned char *raw, unsigned char *end)
{
	return at_cursor_put(end, at_cursor_tag(raw, (size_t) (end - raw), 'c'), 4);
}

/*
 * Writes c's text and a terminating NUL into out, which must hold
 * AT_CURSOR_MAX_CHARS + 1 bytes; returns the length.
 */
static inline size_t
AtCursorEncode(const AtCursor *c, char *out)
{
	unsigned char raw[AT_CURSOR_SEARCH_BYTES];
	unsigned char *p = raw;

	*p++ = (unsigned char) c->kind;
	if (c->kind == AT_CURSOR_SEARCH)
		p = at_cursor_put(p, c->rank_bits, 4);
	p = at_cursor_put(p, (uint64_t) c->created_at, 8);
	memcpy(p, c->id, 16);
	p += 16;
	if (c->kind == AT_CURSOR_SEARCH)
		p = at_cursor_put(p, c->query_tag, 4);
	p = at_cursor_seal(raw, p);
	return at_cursor_text(raw, (size_t) (p - raw), out);
}

/* Reads text of len bytes (no NUL needed) into *c; AT_CURSOR_OK or why not. */
static inline AtCursorError
AtCursorDecode(const char *text, size_t len, AtCursor *c)
{
	unsigned char raw[AT_CURSOR_SEARCH_BYTES];
	const unsigned char *p;
	size_t		nraw;
	size_t		n = 0;
	uint32_t	acc = 0;
	int			bits = 0;
	uint64_t	v;

	if (len == AT_CURSOR_CHARS(AT_CURSOR_PAGE_BYTES))
		nraw = AT_CURSOR_PAGE_BYTES;
	else if (len == AT_CURSOR_CHARS(AT_CURSOR_SEARCH_BYTES))
		nraw = AT_CURSOR_SEARCH_BYTES;
	else
		return AT_CURSOR_BAD_LENGTH;

	for (size_t i = 0; i < len; i++)
	{
		int			s = at_cursor_sextet(text[i]);

		if (s < 0)
			return AT_CURSOR_BAD_CHARACTER;
		acc = (acc << 6) | (uint32_t) s;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			raw[n++] = (unsigned char) ((acc >> bits) & 0xFF);
		}
	}
	/* the bits left over must be zero: one cursor, one spelling */
	if (n != nraw || (acc & ((1u << bits) - 1)) != 0)
		return AT_CURSOR_BAD_CHARACTER;

	at_cursor_get(raw + nraw - 4, &v, 4);
	if ((uint32_t) v != at_cursor_tag(raw, nraw - 4, 'c'))
		return AT_CURSOR_BAD_CHECK;

	memset(c, 0, sizeof(*c));
	c->kind = raw[0];
	if ((c->kind == AT_CURSOR_PAGE && nraw != AT_CURSOR_PAGE_BYTES) ||
		(c->kind == AT_CURSOR_SEARCH && nraw != AT_CURSOR_SEARCH_BYTES) ||
		(c->kind != AT_CURSOR_PAGE && c->kind != AT_CURSOR_SEARCH))
		return AT_CURSOR_BAD_KIND;

	p = raw + 1;
	if (c->kind == AT_CURSOR_SEARCH)
	{
		p = at_cursor_get(p, &v, 4);
		c->rank_bits = (uint32_t) v;
		/* exponent all ones: infinity or NaN, which no rank is */
		if ((c->rank_bits & 0x7F800000u) == 0x7F800000u)
			return AT_CURSOR_BAD_RANK;
	}
	p = at_cursor_get(p, &v, 8);
	c->created_at = (int64_t) v;
	memcpy(c->id, p, 16);
	p += 16;
	if (c->kind == AT_CURSOR_SEARCH)
	{
		at_cursor_get(p, &v, 4);
		c->query_tag = (uint32_t) v;
	}
	return AT_CURSOR_OK;
}

#endif							/* AT_CURSOR_H */
