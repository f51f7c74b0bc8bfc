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

/* a length of time in whole months or whole days (never both) */
typedef struct AtSpan
{
	int32		months;
	int32		days;
} AtSpan;

/* the settings (history_partitions.c) */
extern AtSpan at_partition_span;
extern AtSpan at_retention_span;
extern int	at_partitions_ahead;

extern void HistoryPartitionsDefineGucs(void);
extern Size PartitionShmemSize(void);	/* history_maintain.c */
extern void PartitionShmemInit(void);
extern int64 AtFloorDiv(int64 a, int64 b);
extern TimestampTz AtPeriodStart(const AtSpan *span, int64 k);
extern int64 AtPeriodOf(const AtSpan *span, TimestampTz t);
extern TimestampTz AtSpanBefore(const AtSpan *span, TimestampTz t);
extern char *AtUtcLiteral(TimestampTz t);
extern int	AtHistoryParts(Relation parent, AtHistoryPart **parts);
extern Oid	AtPartitionIndex(Relation partition, Oid parent_index);

#endif							/* AT_HISTORY_PARTITIONS_H */
