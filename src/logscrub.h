/*
 * src/logscrub.h
 *		Keeping secret settings out of the server log (logscrub.c).
 */
#ifndef AT_LOGSCRUB_H
#define AT_LOGSCRUB_H

extern void LogScrubInit(void);

#endif							/* AT_LOGSCRUB_H */
