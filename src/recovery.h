/*
 * src/recovery.h
 *		Account recovery and identity changes (recovery.c, mailer.c).
 */
#ifndef AT_RECOVERY_H
#define AT_RECOVERY_H

#include "fmgr.h"
#include "utils/uuid.h"

/* a reset or verification token: 32 random bytes as unpadded base64url */
#define RECOVERY_TOKEN_BYTES	32
#define RECOVERY_TOKEN_LEN		43

/* the associated-data domain of the outbox's sealed tokens (ciphertext.h) */
#define CT_DOMAIN_MAIL		'M'

extern int	audiotricks_reset_ttl;	/* seconds */
extern int	audiotricks_max_reset_requests;
extern bool audiotricks_allow_unverified_login;
extern bool audiotricks_require_email_verification;
extern int	audiotricks_max_registrations_per_address;

extern void RecoveryDefineGucs(void);
extern void RecoveryBadToken(void) pg_attribute_noreturn();
extern void RecoveryRequireKeys(void);
extern void RecoveryDecoyId(const char *text, int len, pg_uuid_t *out);
extern void RecoveryIssueToken(const pg_uuid_t *token_user, const char *purpose,
							   const char *address, const pg_uuid_t *mail_user,
							   const char *recipient, const char *kind);
extern void RecoveryIssueRegistration(const pg_uuid_t *key, const char *address,
									  text *username, text *hash,
									  const pg_uuid_t *mail_user, const char *recipient,
									  const char *kind, pg_uuid_t *id);
extern void RecoveryQueueMail(const pg_uuid_t *user_id, const char *recipient,
							  const char *kind, const char *token);

#endif							/* AT_RECOVERY_H */
