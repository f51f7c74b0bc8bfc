/*
 * src/spi.c
 *		The one way the extension runs SQL: SPI connections that raise on
 *		failure, and parameterized plans prepared on first use and kept for
 *		the life of the backend, run after the schema check.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/snapmgr.h"

#include "schema.h"
#include "spi.h"

/*
 * AtSpiConnect / AtSpiFinish
 *		SPI_connect and SPI_finish, raising (elog) when they fail.
 */
void
AtSpiConnect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
AtSpiFinish(void)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/* p's plan, prepared and kept on first use, after AtCheckSchema */
static SPIPlanPtr
at_plan(AtPlan *p)
{
	/* the query names audiotricks.<table>: parsed again after invalidations */
	(void) AtCheckSchema();
	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		p->plan = plan;
	}
	return p->plan;
}

/*
 * AtRunPlan
 *		Executes p (preparing it and keeping it for the life of the backend on
 *		first use) inside an open SPI connection, after AtCheckSchema (which
 *		raises 55000 when the schema was renamed or replaced).  nulls as for
 *		SPI_execute_plan (NULL: none).  Returns the SPI result code; raises on
 *		failure.
 */
int
AtRunPlan(AtPlan *p, Datum *values, const char *nulls, bool read_only, long count)
{
	int			rc;

	rc = SPI_execute_plan(at_plan(p), values, nulls, read_only, count);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return rc;
}

/*
 * AtRunPlanLatest
 *		AtRunPlan for a statement that must act on the newest committed state
 *		whatever the isolation level (as foreign-key cascades do): ending a
 *		user's sessions after taking the lock that orders it after every
 *		login or refresh in flight, whose new session a REPEATABLE READ
 *		snapshot taken earlier would not see.
 */
int
AtRunPlanLatest(AtPlan *p, Datum *values)
{
	int			rc;

	rc = SPI_execute_snapshot(at_plan(p), values, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, false, true, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_snapshot failed: %s", SPI_result_code_string(rc));
	return rc;
}
