/*
 * src/spi.h
 *		SPI connections and kept, parameterized plans (spi.c).
 */
#ifndef AT_SPI_H
#define AT_SPI_H

#include "executor/spi.h"

/* a parameterized SPI plan, prepared on first use and kept */
typedef struct AtPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[9];
	SPIPlanPtr	plan;
} AtPlan;

extern void AtSpiConnect(void);
extern void AtSpiFinish(void);
extern int	AtRunPlan(AtPlan *p, Datum *values, const char *nulls,
					  bool read_only, long count);
extern int	AtRunPlanLatest(AtPlan *p, Datum *values);

#endif							/* AT_SPI_H */
