/*
 * src/admission.h
 *		Admission control for password hashing (admission.c).
 */
#ifndef AT_ADMISSION_H
#define AT_ADMISSION_H

typedef enum AdmissionClass
{
	ADMISSION_AUTHENTICATED = 0,	/* proved a token or the password */
	ADMISSION_ANONYMOUS = 1,	/* at_login, at_register */
	ADMISSION_REPEATED = 2		/* its key was hashed often recently */
} AdmissionClass;

extern Size AdmissionShmemSize(void);
extern void AdmissionShmemInit(void);
extern void AdmissionDefineGucs(void);
extern bool AdmissionEnter(AdmissionClass cls, const char *key, int len);
extern void AdmissionRefuse(void) pg_attribute_noreturn();
extern void AdmissionLeave(void);

#endif							/* AT_ADMISSION_H */
