/*
 * src/uuid.c
 *		at_uuid_v7(): time-ordered UUIDs (RFC 9562, version 7), strictly
 *		increasing within a backend.  The generator itself is in uuidv7.h.
 */
#include "postgres.h"

#include <sys/time.h>

#include <sodium.h>

#include "fmgr.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "uuid.h"
#include "uuidv7.h"

PG_FUNCTION_INFO_V1(at_uuid_v7);

static UuidV7State uuid_state;

/*
 * UuidV7Generate
 *		Writes a new UUIDv7 into *out.  Never fails.
 */
void
UuidV7Generate(pg_uuid_t *out)
{
	struct timeval tv;
	unsigned char rnd[10];

	gettimeofday(&tv, NULL);
	randombytes_buf(rnd, sizeof(rnd));
	UuidV7Next(&uuid_state,
			   (uint64_t) tv.tv_sec * 1000 + (uint64_t) tv.tv_usec / 1000,
			   rnd, out->data);
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
