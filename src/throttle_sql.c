/*
 * src/throttle_sql.c
 *		The login throttle for an administrator: at_login_throttle_status and
 *		at_clear_login_throttle.  Not executable by the application roles
 *		(superusers, or a role they grant it to).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"
#include "password.h"
#include "spi.h"
#include "srf.h"
#include "throttle.h"

PG_FUNCTION_INFO_V1(at_login_throttle_status);
PG_FUNCTION_INFO_V1(at_clear_login_throttle);

static AtPlan plan_user_by_login = {
	"SELECT id FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	"    OR pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	" LIMIT 1",
	1, {TEXTOID}, NULL
};

/* the account that login (an email or a username) names; false if none */
static bool
account_of(FunctionCallInfo fcinfo, pg_uuid_t *user_id)
{
	text	   *login;
	Datum		values[1];
	bool		found = false;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("login must not be null")));
	login = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(login) > EMAIL_MAX_CHARS * MAX_MULTIBYTE_CHAR_LEN)
		return false;
	AtSpiConnect();
	values[0] = PointerGetDatum(login);
	AtRunPlan(&plan_user_by_login, values, NULL, true, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;

		*user_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
		found = true;
	}
	AtSpiFinish();
	return found;
}

/*
 * at_login_throttle_status(login text)
 *		RETURNS TABLE(failures integer, throttled boolean,
 *					  window_ends timestamptz, addresses_throttled integer)
 *		For the account that login names (no row when none): the failed
 *		logins counted against its per-account ceiling in the current window,
 *		whether that ceiling refuses it now, when the window ends, and from
 *		how many client addresses it is refused now (max_failed_logins).
 */
Datum
at_login_throttle_status(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	char		key[1 + UUID_LEN];
	TimestampTz window_end;
	Datum		out[4];
	bool		nulls[4] = {false, false, false, false};
	int			n;

	if (!account_of(fcinfo, &user_id))
	{
		TupleDesc	tupdesc;

		(void) AtMaterialize(fcinfo, &tupdesc);
		return (Datum) 0;
	}
	key[0] = 'a';
	memcpy(key + 1, user_id.data, UUID_LEN);
	n = ThrottleCount(key, sizeof(key), &window_end);
	out[0] = Int32GetDatum(n);
	out[1] = BoolGetDatum(audiotricks_max_failed_logins_per_account > 0 &&
						  n >= audiotricks_max_failed_logins_per_account);
	out[2] = TimestampTzGetDatum(window_end);
	nulls[2] = (window_end == 0);
	out[3] = Int32GetDatum(ThrottleGroupStatus(key, sizeof(key),
											   audiotricks_max_failed_logins));
	return AtReturnOneRow(fcinfo, out, nulls);
}

/*
 * at_clear_login_throttle(login text) RETURNS boolean
 *		Forgets every failed login counted for the account that login names
 *		(from every client address, its ceiling, and its password re-checks)
 *		and records a throttle_cleared event; false when login names no
 *		account.
 */
Datum
at_clear_login_throttle(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	char		key[1 + UUID_LEN];

	if (!account_of(fcinfo, &user_id))
		PG_RETURN_BOOL(false);
	key[0] = 'a';
	memcpy(key + 1, user_id.data, UUID_LEN);
	(void) ThrottleClearGroup(key, sizeof(key));
	key[0] = 'r';				/* check_own_password's count (accounts.c) */
	ThrottleReset(key, sizeof(key));
	AuditEvent("throttle_cleared", &user_id, NULL, NULL);
	PG_RETURN_BOOL(true);
}
