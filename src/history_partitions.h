/*
 * src/history_partitions.h
 *		audio_history's time partitions (history_partitions.c).
 */
#ifndef AT_HISTORY_PARTITIONS_H
#define AT_HISTORY_PARTITIONS_H

#include "datatype/timestamp.h"
#include "utils/relcache.h"

/* one partition of audio_history: a range [lower, upper) or the default */
typedef struct AtHistoryPart
{
	Oid			relid;
	bool		is_default;
	bool		lower_inf;		/* MINVALUE (never made by us) */
	bool		upper_inf;		/* MAXVALUE (never made by us) */
	TimestampTz lower;
	TimestampTz upper;
} AtHistoryPart;

extern void HistoryPartitionsDefineGucs(void);
extern int	AtHistoryParts(Relation parent, AtHistoryPart **parts);
extern Oid	AtPartitionIndex(Relation partition, Oid parent_index);

#endif							/* AT_HISTORY_PARTITIONS_H */
