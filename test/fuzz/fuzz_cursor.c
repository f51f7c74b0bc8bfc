/*
 * test/fuzz/fuzz_cursor.c
 *		libFuzzer target for the history cursor codec (src/cursor.h), which
 *		reads text any caller sends to at_history_page and at_history_search.
 *
 * fuzz-sources: none
 * fuzz-libs: -lsodium
 *
 * Properties: decoding arbitrary bytes never reads outside them; whatever
 * decodes re-encodes to exactly the same text (one spelling per cursor); and
 * a cursor built from the input round-trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cursor.h"

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); abort(); } } while (0)

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	CHECK(sodium_init() >= 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	AtCursor	c,
				d;
	char		text[AT_CURSOR_MAX_CHARS + 1];
	char	   *copy;
	size_t		len;

	/* an exact-size heap copy, so ASan sees any read past the end */
	copy = malloc(size ? size : 1);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	if (AtCursorDecode(copy, size, &c) == AT_CURSOR_OK)
	{
		len = AtCursorEncode(&c, text);
		CHECK(len == size && memcmp(text, copy, size) == 0);
	}
	free(copy);

	/* the input as a cursor's fields */
	if (size >= 1 + 4 + 8 + 16 + 4)
	{
		memset(&c, 0, sizeof(c));
		c.kind = (data[0] & 1) ? AT_CURSOR_SEARCH : AT_CURSOR_PAGE;
		if (c.kind == AT_CURSOR_SEARCH)
		{
			memcpy(&c.rank_bits, data + 1, 4);
			memcpy(&c.query_tag, data + 29, 4);
		}
		memcpy(&c.created_at, data + 5, 8);
		memcpy(c.id, data + 13, 16);
		len = AtCursorEncode(&c, text);
		CHECK(len == strlen(text));
		if ((c.rank_bits & 0x7F800000u) == 0x7F800000u)
			CHECK(AtCursorDecode(text, len, &d) == AT_CURSOR_BAD_RANK);
		else
		{
			CHECK(AtCursorDecode(text, len, &d) == AT_CURSOR_OK);
			CHECK(d.kind == c.kind && d.created_at == c.created_at &&
				  memcmp(d.id, c.id, 16) == 0 && d.rank_bits == c.rank_bits &&
				  d.query_tag == c.query_tag);
		}
	}
	return 0;
}
