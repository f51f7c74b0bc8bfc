/*
 * src/history_index.h
 *		Text search configurations by name (history_index.c).
 */
#ifndef AT_HISTORY_INDEX_H
#define AT_HISTORY_INDEX_H

extern Oid	AtSearchConfigOid(const char *name, int len, bool missing_ok,
							  const char **canonical);

#endif							/* AT_HISTORY_INDEX_H */
