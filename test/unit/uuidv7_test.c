/*
 * test/unit/uuidv7_test.c
 *		Unit test of the UUIDv7 generator with a controlled clock: values stay
 *		strictly increasing when the clock stands still, steps back, or the
 *		random field overflows; version and variant bits are always right.
 *		Prints TAP.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "tap.h"

#include "uuidv7.h"


static int
bits_ok(const unsigned char u[16])
{
	return (u[6] >> 4) == 7 && (u[8] >> 6) == 2;
}

static unsigned long long
ms_of(const unsigned char u[16])
{
	unsigned long long v = 0;

	for (int i = 0; i < 6; i++)
		v = (v << 8) | u[i];
	return v;
}

static int
run(const unsigned long long *clock, int count, int all_ff)
{
	UuidV7State st = {0, 0, 0};
	unsigned char prev[16],
				cur[16],
				rnd[10];
	int			good = 1;

	for (int i = 0; i < count; i++)
	{
		if (all_ff)
			memset(rnd, 0xFF, sizeof(rnd));
		else
			randombytes_buf(rnd, sizeof(rnd));
		UuidV7Next(&st, clock[i], rnd, cur);
		if (!bits_ok(cur))
			good = 0;
		if (i > 0 && memcmp(prev, cur, 16) >= 0)
			good = 0;
		memcpy(prev, cur, 16);
	}
	return good;
}

int
main(void)
{
	static unsigned long long clock[100000];
	UuidV7State st = {0, 0, 0};
	unsigned char u[16],
				rnd[10];

	if (sodium_init() < 0)
		return 2;

	for (int i = 0; i < 100000; i++)
		clock[i] = 1700000000000ULL;
	ok(run(clock, 100000, 0), "100000 values in one millisecond are strictly increasing");

	for (int i = 0; i < 100000; i++)
		clock[i] = 1700000000000ULL + (i < 50000 ? i : 50000 - (i - 50000));
	ok(run(clock, 100000, 0), "a clock stepping back 50 seconds keeps values increasing");

	for (int i = 0; i < 10000; i++)
		clock[i] = 1700000000000ULL;
	ok(run(clock, 10000, 1), "maximal random steps overflow into the timestamp and stay increasing");

	for (int i = 0; i < 100000; i++)
		clock[i] = 1700000000000ULL + (i % 7 == 0 ? 1000 : 0) - (i % 5);
	ok(run(clock, 100000, 0), "a jittering clock keeps values increasing");

	randombytes_buf(rnd, sizeof(rnd));
	UuidV7Next(&st, 0x0123456789ABULL, rnd, u);
	ok(ms_of(u) == 0x0123456789ABULL, "the first 48 bits are the clock's milliseconds");
	ok(bits_ok(u), "version 7 and RFC 9562 variant");
	UuidV7Next(&st, 0x0123456789ABULL + 5, rnd, u);
	ok(ms_of(u) == 0x0123456789ABULL + 5, "a later millisecond is taken as is");

	return tap_done();
}
