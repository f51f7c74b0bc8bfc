/*
 * test/unit/cursor_test.c
 *		Unit test of the history cursor codec (src/cursor.h): every cursor
 *		decodes to exactly what was encoded, and every damaged one (a changed,
 *		missing or extra character, a foreign alphabet, padding, non-zero
 *		spare bits, an unknown kind, a non-finite rank) is refused.  Prints TAP.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "tap.h"

#include "cursor.h"


static int
same(const AtCursor *a, const AtCursor *b)
{
	return a->kind == b->kind && a->created_at == b->created_at &&
		memcmp(a->id, b->id, 16) == 0 &&
		(a->kind != AT_CURSOR_SEARCH ||
		 (a->rank_bits == b->rank_bits && a->query_tag == b->query_tag));
}

static void
random_cursor(AtCursor *c, int kind)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	randombytes_buf(&c->created_at, sizeof(c->created_at));
	randombytes_buf(c->id, sizeof(c->id));
	if (kind == AT_CURSOR_SEARCH)
	{
		do
			c->rank_bits = randombytes_random();
		while ((c->rank_bits & 0x7F800000u) == 0x7F800000u);
		c->query_tag = randombytes_random();
	}
}

/* a cursor of any kind byte and payload, with a valid check */
static size_t
forge(const unsigned char *raw, size_t nraw_without_check, char *out)
{
	unsigned char buf[64];

	memcpy(buf, raw, nraw_without_check);
	return at_cursor_text(buf, (size_t) (at_cursor_seal(buf, buf + nraw_without_check) - buf), out);
}

int
main(void)
{
	char		text[AT_CURSOR_MAX_CHARS + 2];
	char		bad[AT_CURSOR_MAX_CHARS + 2];
	AtCursor	c,
				d;
	size_t		len;
	int			all;

	if (sodium_init() < 0)
	{
		printf("Bail out! sodium_init failed\n");
		return 1;
	}

	for (int kind = AT_CURSOR_PAGE; kind <= AT_CURSOR_SEARCH; kind++)
	{
		const char *name = kind == AT_CURSOR_PAGE ? "page" : "search";
		size_t		want = AT_CURSOR_CHARS(kind == AT_CURSOR_PAGE ?
										   AT_CURSOR_PAGE_BYTES : AT_CURSOR_SEARCH_BYTES);
		char		what[128];

		/* round trips, with extreme values too */
		all = 1;
		for (int i = 0; i < 20000; i++)
		{
			random_cursor(&c, kind);
			if (i == 0)
				c.created_at = INT64_MIN;
			if (i == 1)
				c.created_at = INT64_MAX;
			if (i == 2)
				memset(c.id, 0xFF, 16);
			len = AtCursorEncode(&c, text);
			all &= len == want && strlen(text) == len &&
				AtCursorDecode(text, len, &d) == AT_CURSOR_OK && same(&c, &d) &&
				strspn(text, at_cursor_alphabet) == len;
		}
		snprintf(what, sizeof(what), "%s: 20000 cursors round-trip, %zu URL-safe characters", name, want);
		ok(all, what);

		/* every single changed character is refused */
		random_cursor(&c, kind);
		len = AtCursorEncode(&c, text);
		all = 1;
		for (size_t i = 0; i < len; i++)
			for (const char *a = at_cursor_alphabet; *a; a++)
			{
				if (*a == text[i])
					continue;
				memcpy(bad, text, len + 1);
				bad[i] = *a;
				all &= AtCursorDecode(bad, len, &d) != AT_CURSOR_OK;
			}
		snprintf(what, sizeof(what), "%s: each of %zu x 63 one-character changes is refused", name, len);
		ok(all, what);

		/* one character missing or extra */
		ok(AtCursorDecode(text, len - 1, &d) == AT_CURSOR_BAD_LENGTH, "one character short: bad length");
		memcpy(bad, text, len);
		bad[len] = 'A';
		ok(AtCursorDecode(bad, len + 1, &d) == AT_CURSOR_BAD_LENGTH, "one character extra: bad length");

		/* base64 with padding or the standard alphabet */
		memcpy(bad, text, len + 1);
		bad[len - 1] = '=';
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_CHARACTER, "padding '=' is refused");
		bad[len - 1] = '+';
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_CHARACTER, "'+' (standard base64) is refused");
		bad[len - 1] = '\0';
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_CHARACTER, "a NUL byte is refused");
	}

	/* the spare bits of the last character must be zero */
	random_cursor(&c, AT_CURSOR_PAGE);
	len = AtCursorEncode(&c, text);
	memcpy(bad, text, len + 1);
	bad[len - 1] = at_cursor_alphabet[at_cursor_sextet(text[len - 1]) | 1];
	ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_CHARACTER,
	   "a last character with a spare bit set is refused (one spelling per cursor)");

	/* the empty text */
	ok(AtCursorDecode("", 0, &d) == AT_CURSOR_BAD_LENGTH, "an empty cursor is refused");

	/* valid checks around bad content */
	{
		unsigned char raw[AT_CURSOR_SEARCH_BYTES];

		memset(raw, 0x11, sizeof(raw));
		raw[0] = 3;
		len = forge(raw, AT_CURSOR_PAGE_BYTES - 4, bad);
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_KIND, "kind 3 with a valid check: bad kind");

		raw[0] = AT_CURSOR_SEARCH;
		len = forge(raw, AT_CURSOR_PAGE_BYTES - 4, bad);
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_KIND, "a search kind at page length: bad kind");

		raw[0] = AT_CURSOR_PAGE;
		len = forge(raw, AT_CURSOR_SEARCH_BYTES - 4, bad);
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_KIND, "a page kind at search length: bad kind");

		raw[0] = AT_CURSOR_SEARCH;
		at_cursor_put(raw + 1, 0x7FC00000u, 4);	/* NaN */
		len = forge(raw, AT_CURSOR_SEARCH_BYTES - 4, bad);
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_RANK, "a NaN rank is refused");

		at_cursor_put(raw + 1, 0xFF800000u, 4);	/* -infinity */
		len = forge(raw, AT_CURSOR_SEARCH_BYTES - 4, bad);
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_BAD_RANK, "an infinite rank is refused");

		at_cursor_put(raw + 1, 0x7F7FFFFFu, 4);	/* the largest finite float */
		len = forge(raw, AT_CURSOR_SEARCH_BYTES - 4, bad);
		ok(AtCursorDecode(bad, len, &d) == AT_CURSOR_OK && d.rank_bits == 0x7F7FFFFFu,
		   "the largest finite rank is accepted");
	}

	/* a search cursor is bound to its query */
	ok(AtCursorQueryTag("cats", 4) != AtCursorQueryTag("cats ", 5) &&
	   AtCursorQueryTag("cats", 4) == AtCursorQueryTag("cats", 4),
	   "query tags differ for different texts and agree for the same");

	return tap_done();
}
