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
extern void AuditInsertEvent(const char *event, const pg_uuid_t *user_id,
							 const pg_uuid_t *session_id, const char *detail,
							 const char *addr, TimestampTz at);

#endif							/* AT_AUDIT_H */
