/*
 * src/uuid.c
 *		at_uuid_v7(): time-ordered UUIDs (RFC 9562, version 7).
 *
 * Layout: 48-bit Unix time in milliseconds, 4 version bits (0111), 12 bits
 * "rand_a", 2 variant bits (10), 62 bits "rand_b".  Within one backend the
 * values are strictly increasing: when the clock has not advanced past the
 * last value's millisecond (same millisecond, or a clock that stepped back)
 * the 74 random bits of the previous value are advanced by a random step
 * (RFC 9562 section 6.2, method 2 with a random increment), carrying into
 * the timestamp if they overflow.
 */
#include "postgres.h"

#include <sys/time.h>

#include <sodium.h>

#include "fmgr.h"
#include "utils/uuid.h"

#include "audiotricks.h"

PG_FUNCTION_INFO_V1(at_uuid_v7);

#define RAND_B_BITS 62
#define RAND_B_MASK ((UINT64CONST(1) << RAND_B_BITS) - 1)
#define RAND_A_MASK 0x0FFF

static uint64 last_ms = 0;
static uint64 last_rand_a = 0;	/* 12 bits */
static uint64 last_rand_b = 0;	/* 62 bits */

static uint64
now_unix_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64) tv.tv_sec * 1000 + (uint64) tv.tv_usec / 1000;
}

/*
 * UuidV7Generate
 *		Writes a new UUIDv7 into *out.  Never fails.
 */
void
UuidV7Generate(pg_uuid_t *out)
{
	uint64		ms = now_unix_ms();
	unsigned char rnd[10];

	randombytes_buf(rnd, sizeof(rnd));

	if (ms > last_ms)
	{
		last_ms = ms;
		last_rand_a = ((uint64) rnd[0] << 8 | rnd[1]) & RAND_A_MASK;
		last_rand_b = 0;
		for (int i = 2; i < 10; i++)
			last_rand_b = (last_rand_b << 8) | rnd[i];
		last_rand_b &= RAND_B_MASK;
	}
	else
	{
		/* advance by a random step in [1, 2^32] so values stay hard to guess */
		uint64		step = 1 + ((uint64) rnd[0] << 24 | (uint64) rnd[1] << 16 |
								(uint64) rnd[2] << 8 | rnd[3]);

		last_rand_b += step;
		if (last_rand_b > RAND_B_MASK)
		{
			last_rand_b &= RAND_B_MASK;
			last_rand_a++;
			if (last_rand_a > RAND_A_MASK)
			{
				last_rand_a = 0;
				last_ms++;		/* borrow from the future; the clock catches up */
			}
		}
	}

	out->data[0] = (unsigned char) (last_ms >> 40);
	out->data[1] = (unsigned char) (last_ms >> 32);
	out->data[2] = (unsigned char) (last_ms >> 24);
	out->data[3] = (unsigned char) (last_ms >> 16);
	out->data[4] = (unsigned char) (last_ms >> 8);
	out->data[5] = (unsigned char) last_ms;
	out->data[6] = (unsigned char) (0x70 | (last_rand_a >> 8));
	out->data[7] = (unsigned char) (last_rand_a & 0xFF);
	out->data[8] = (unsigned char) (0x80 | ((last_rand_b >> 56) & 0x3F));
	for (int i = 9; i < 16; i++)
		out->data[i] = (unsigned char) (last_rand_b >> (8 * (15 - i)));
}

/*
 * at_uuid_v7() RETURNS uuid
 *		A new UUIDv7, palloc'd in the caller's context.
 */
Datum
at_uuid_v7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

	UuidV7Generate(u);
	PG_RETURN_UUID_P(u);
}
