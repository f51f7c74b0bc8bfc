/*
 * src/schema.h
 *		The preload check and the extension's schema and owner (schema.c).
 */
#ifndef AT_SCHEMA_H
#define AT_SCHEMA_H

extern void AtRequirePreload(void);
extern Oid	AtCheckSchema(void);
extern Oid	AtOwnerOid(void);
extern char *AtPgcryptoSchema(void);

#endif							/* AT_SCHEMA_H */
