/*
 * src/session.h
 *		Sessions: what the account functions need of them (session.c).
 */
#ifndef AT_SESSION_H
#define AT_SESSION_H

#include "fmgr.h"

extern uint64 SessionsEndAll(Datum user_id, bool latest);

#endif							/* AT_SESSION_H */
