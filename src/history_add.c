/*
 * src/history_add.c
 *		at_history_add: one history entry for the current user.
 *
 * An INSERT through a kept SPI plan, run as the caller (SECURITY INVOKER),
 * so the table's row-level security and grants apply to it as they do to a
 * direct INSERT.  Written in C rather than as a SQL function because a SQL
 * function's statement is planned again on every call from a new statement
 * (about half of the call's cost: test/bench/README.md, "The mixed
 * transaction"); the kept plan is planned once per backend and again only
 * after an invalidation (DDL on the table, a new partition, another role).
 * Also at_default_search_config, the default of audio_history.search_config,
 * which every insert evaluates: as a SQL function its statement was parsed
 * and planned on every insert (a third of an insert's time).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/uuid.h"

#include "identity.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(at_history_add);
PG_FUNCTION_INFO_V1(at_default_search_config);

/* validate.c; raises 23514 for a value over its column's size limit */
extern Datum at_check_history_sizes(PG_FUNCTION_ARGS);
/* history_index.c: a language's text search configuration, by name */
extern Datum at_search_config(PG_FUNCTION_ARGS);

#define HISTORY_ADD_ARGS 8

static AtPlan plan_add = {
	"INSERT INTO audiotricks.audio_history"
	" (user_id, title, audio_url, file_size_bytes, duration_seconds,"
	"  transcript, summary, key_moments, processing_options)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
	HISTORY_ADD_ARGS + 1,
	{UUIDOID, TEXTOID, TEXTOID, INT8OID, INT4OID, TEXTOID, TEXTOID,
	JSONBOID, JSONBOID}
};

/*
 * check_sizes
 *		at_check_history_sizes(transcript, summary, key_moments,
 *		processing_options) on this call's arguments 4..7, NULLs included,
 *		so that an oversized entry is refused before its search document is
 *		made.
 */
static void
check_sizes(FunctionCallInfo fcinfo)
{
	LOCAL_FCINFO(sizes, 4);
	int			i;

	InitFunctionCallInfoData(*sizes, NULL, 4, InvalidOid, NULL, NULL);
	for (i = 0; i < 4; i++)
		sizes->args[i] = fcinfo->args[4 + i];
	(void) at_check_history_sizes(sizes);
}

/*
 * at_history_add(title text, audio_url text, file_size_bytes bigint,
 *				  duration_seconds integer, transcript text, summary text,
 *				  key_moments jsonb, processing_options jsonb) RETURNS uuid
 *		Adds an entry for the current user and returns its id.  Raises 42501
 *		without an identity, 23514 for a value over its size limit (before
 *		the insert) and whatever the table's constraints raise.
 */
Datum
at_history_add(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Datum		values[HISTORY_ADD_ARGS + 1];
	char		nulls[HISTORY_ADD_ARGS + 1];
	Datum		id;
	bool		isnull;
	int			i;

	if (PG_NARGS() != HISTORY_ADD_ARGS)
		elog(ERROR, "at_history_add: wrong number of arguments");
	IdentityRequire(&user_id, &session_id);
	check_sizes(fcinfo);

	values[0] = UUIDPGetDatum(&user_id);
	nulls[0] = ' ';
	for (i = 0; i < HISTORY_ADD_ARGS; i++)
	{
		values[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
	}

	AtSpiConnect();
	if (AtRunPlan(&plan_add, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "at_history_add: the insert did not return one row");
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "at_history_add: the insert returned no id");
	id = SPI_datumTransfer(id, false, UUID_LEN);
	AtSpiFinish();
	PG_RETURN_DATUM(id);
}

/* the current user's preferred_language, read as the caller (under RLS) */
static AtPlan plan_language = {
	"SELECT s.preferred_language::pg_catalog.text FROM audiotricks.user_settings s"
	" WHERE s.user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}
};

/*
 * at_default_search_config() RETURNS text
 *		The default of audio_history.search_config: at_search_config of the
 *		current user's preferred_language (read as the caller, so under the
 *		table's row-level security), or of NULL ('pg_catalog.simple') without
 *		an identity or a settings row.  STABLE.
 */
Datum
at_default_search_config(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Datum		language = (Datum) 0;
	bool		isnull = true;
	Datum		result;

	LOCAL_FCINFO(config, 1);

	if (IdentityGet(&user_id, &session_id))
	{
		Datum		v[1];

		v[0] = UUIDPGetDatum(&user_id);
		AtSpiConnect();
		if (AtRunPlan(&plan_language, v, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "at_default_search_config: could not read the settings");
		if (SPI_processed == 1)
		{
			language = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				language = SPI_datumTransfer(language, false, -1);
		}
		AtSpiFinish();
	}
	InitFunctionCallInfoData(*config, NULL, 1, InvalidOid, NULL, NULL);
	config->args[0].value = language;
	config->args[0].isnull = isnull;
	result = at_search_config(config);
	PG_RETURN_DATUM(result);
}
