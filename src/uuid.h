/*
 * src/uuid.h
 *		UUIDv7 generation for the server (uuid.c; the generator is uuidv7.h).
 */
#ifndef AT_UUID_H
#define AT_UUID_H

#include "utils/uuid.h"

extern void UuidV7Generate(pg_uuid_t *out);

#endif							/* AT_UUID_H */
