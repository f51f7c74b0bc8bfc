/*
 * src/keyring.h
 *		The master keys of the encrypted API keys (keyring.c).
 */
#ifndef AT_KEYRING_H
#define AT_KEYRING_H

#include "ciphertext.h"

extern void KeyringInit(void);
extern const CtKeyring *KeyringCurrent(void);

#endif							/* AT_KEYRING_H */
