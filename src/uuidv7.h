/*
 * src/uuidv7.h
 *		The UUIDv7 generator as a pure function of (state, clock, random
 *		bytes), so that test/unit can drive the clock backwards and forwards.
 *
 * Layout (RFC 9562): 48-bit Unix time in milliseconds, 4 version bits (0111),
 * 12 bits rand_a, 2 variant bits (10), 62 bits rand_b.  When the clock has not
 * advanced past the last value's millisecond (same millisecond, or a clock
 * that stepped back) the 74 random bits of the previous value are advanced by
 * a random step in [1, 2^32] (RFC 9562 section 6.2, method 2), carrying into
 * the timestamp on overflow, so values are strictly increasing.
 */
#ifndef AT_UUIDV7_H
#define AT_UUIDV7_H

#include <stdint.h>

typedef struct UuidV7State
{
	uint64_t	ms;
	uint64_t	rand_a;			/* 12 bits */
	uint64_t	rand_b;			/* 62 bits */
} UuidV7State;

#define UUIDV7_RAND_B_MASK ((UINT64_C(1) << 62) - 1)
#define UUIDV7_RAND_A_MASK UINT64_C(0x0FFF)

static inline void
UuidV7Next(UuidV7State *st, uint64_t now_ms, const unsigned char rnd[10],
		   unsigned char out[16])
{
	if (now_ms > st->ms)
	{
		st->ms = now_ms;
		st->rand_a = ((uint64_t) rnd[0] << 8 | rnd[1]) & UUIDV7_RAND_A_MASK;
		st->rand_b = 0;
		for (int i = 2; i < 10; i++)
			st->rand_b = (st->rand_b << 8) | rnd[i];
		st->rand_b &= UUIDV7_RAND_B_MASK;
	}
	else
	{
		uint64_t	step = 1 + ((uint64_t) rnd[0] << 24 | (uint64_t) rnd[1] << 16 |
								(uint64_t) rnd[2] << 8 | rnd[3]);

		st->rand_b += step;
		if (st->rand_b > UUIDV7_RAND_B_MASK)
		{
			st->rand_b &= UUIDV7_RAND_B_MASK;
			st->rand_a++;
			if (st->rand_a > UUIDV7_RAND_A_MASK)
			{
				st->rand_a = 0;
				st->ms++;		/* borrow from the future; the clock catches up */
			}
		}
	}

	out[0] = (unsigned char) (st->ms >> 40);
	out[1] = (unsigned char) (st->ms >> 32);
	out[2] = (unsigned char) (st->ms >> 24);
	out[3] = (unsigned char) (st->ms >> 16);
	out[4] = (unsigned char) (st->ms >> 8);
	out[5] = (unsigned char) st->ms;
	out[6] = (unsigned char) (0x70 | (st->rand_a >> 8));
	out[7] = (unsigned char) (st->rand_a & 0xFF);
	out[8] = (unsigned char) (0x80 | ((st->rand_b >> 56) & 0x3F));
	for (int i = 9; i < 16; i++)
		out[i] = (unsigned char) (st->rand_b >> (8 * (15 - i)));
}

#endif							/* AT_UUIDV7_H */
