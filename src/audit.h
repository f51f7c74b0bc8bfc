/*
 * src/audit.h
 *		The audit trail: events in the caller's transaction (audit.c), and
 *		detached events and revocations written by the audit writer
 *		(audit_writer.c).
 */
#ifndef AT_AUDIT_H
#define AT_AUDIT_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

extern Size AuditShmemSize(void);
extern void AuditShmemInit(void);
extern void AuditEvent(const char *event, const pg_uuid_t *user_id,
					   const pg_uuid_t *session_id, const char *detail);
extern void AuditReserve(int n);
extern void AuditEventDetached(const char *event, const pg_uuid_t *user_id);
extern bool AuditRevokeFamilyDetached(const pg_uuid_t *family_id);

/* for the audit writer (audit_writer.c): how audit.c writes an event */
#define AUDIT_ADDR_LEN		64	/* a client address as text */
extern void AuditClientAddr(char *buf, size_t len);
extern bool AuditInsertEvent(const char *event, const pg_uuid_t *user_id,
							 const pg_uuid_t *session_id, const char *detail,
							 const char *addr, TimestampTz at,
							 const char *db_role, bool detached);

/* an audit event's fields as its hash covers them (audit_chain.c) */
typedef struct AuditFields
{
	pg_uuid_t	id;				/* set by AuditAppend */
	pg_uuid_t	chain_id;		/* set by AuditAppend */
	int64		seq;			/* set by AuditAppend */
	TimestampTz created_at;
	const char *event;
	const char *db_role;		/* the role that ran the statement */
	const char *table_name;		/* a row change: its table, row, operation */
	const pg_uuid_t *row_id;
	const char *operation;
	char	  **cols;			/* changed column names; ncols < 0: NULL */
	int			ncols;
	const char *detail;			/* JSON object text (jsonb_out's form once appended) */
	const pg_uuid_t *session_id;
	const pg_uuid_t *actor_id;	/* the identity's user, if any */
	unsigned char subject_hash[32];
} AuditFields;

extern void AuditSubjectHash(const pg_uuid_t *id, const pg_uuid_t *user_id,
							 const pg_uuid_t *actor_id, const char *addr,
							 unsigned char *out);
extern void AuditEventHash(const AuditFields *f, const unsigned char *prev,
						   unsigned char *out);
extern bool AuditAppend(AuditFields *e, const pg_uuid_t *user_id, const char *addr,
						bool detached, const pg_uuid_t *chain_id);
extern char *AuditDbRole(void);
extern void AuditRecord(AuditFields *e, const pg_uuid_t *user_id);
extern void AuditRowsPause(bool pause);
extern bool AuditIsGlobalChain(const pg_uuid_t *chain_id);
extern bytea *AuditToBytea(const unsigned char *p, size_t len);

#endif							/* AT_AUDIT_H */
