/*
 * src/password.h
 *		Credential rules, bcrypt, and storing a password (password.c).
 */
#ifndef AT_PASSWORD_H
#define AT_PASSWORD_H

#include "fmgr.h"
#include "utils/uuid.h"

#include "admission.h"

#define BCRYPT_MAX_BYTES	72
#define EMAIL_MAX_CHARS		255

extern void ValidateEmail(const char *s, int len);
extern void ValidateUsername(const char *s, int len);
extern void ValidatePassword(const char *s, int len);
extern text *BcryptSalt(const char *schema, int cost);
extern text *BcryptCrypt(const char *schema, text *password, text *setting,
						 AdmissionClass cls, const char *key, int key_len,
						 const char *refund, int refund_len);
extern int	BcryptCostOf(const char *hash, size_t len);
extern void BcryptPad(const char *schema, text *password, int stored_cost);
extern bool BcryptHashMatches(text *a, const char *b, size_t blen);
extern void PasswordStore(const char *schema, const pg_uuid_t *user_id,
						  text *password);
extern void RaiseBadLogin(void) pg_attribute_noreturn();

#endif							/* AT_PASSWORD_H */
