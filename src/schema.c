/*
 * src/schema.c
 *		Where the extension lives: the preload check, the extension's schema
 *		and owner (read from pg_extension, checked before every use of its
 *		objects by name), and the schema of pgcrypto.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "audiotricks.h"
#include "schema.h"

PG_FUNCTION_INFO_V1(at_check_preload);

/*
 * AtRequirePreload
 *		Raises 55000 unless the library came from shared_preload_libraries.
 */
void
AtRequirePreload(void)
{
	if (!audiotricks_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audiotricks must be loaded via shared_preload_libraries"),
				 errdetail("Its secret settings and shared state exist only when the server loads the library at start."),
				 errhint("Add 'audiotricks' to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * at_check_preload() RETURNS void
 *		Called first by the install script, so that CREATE EXTENSION fails
 *		clearly when the library is not preloaded.
 */
Datum
at_check_preload(PG_FUNCTION_ARGS)
{
	AtRequirePreload();
	PG_RETURN_VOID();
}

/*
 * The extension's schema and owner, read from pg_extension once per backend.
 * pg_extension has no syscache, so nothing announces its changes; but the
 * schema is not relocatable, and whatever changes the schema's name or owner
 * (ALTER SCHEMA, REASSIGN OWNED, DROP SCHEMA) updates pg_namespace, whose
 * syscache invalidation drops the copy.  A fill keeps it only when no such
 * invalidation arrived meanwhile.  (DROP EXTENSION leaves the schema behind,
 * and a new CREATE EXTENSION accepts it only from its owner: the copy stays
 * true.)
 */
typedef struct ExtCache
{
	bool		valid;
	Oid			nsp;			/* pg_extension.extnamespace */
	Oid			owner;			/* pg_extension.extowner */
	Oid			nspowner;		/* that schema's owner when the copy was made */
} ExtCache;

static ExtCache ext_cache;
static bool ext_callback_registered = false;
static uint64 ext_cache_inval_count = 0;

static void
ext_cache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	ext_cache_inval_count++;
	ext_cache.valid = false;
}

static void
ext_cache_fill(void)
{
	if (!ext_callback_registered)
	{
		CacheRegisterSyscacheCallback(NAMESPACEOID, ext_cache_invalidate, (Datum) 0);
		ext_callback_registered = true;
	}
	for (;;)
	{
		uint64		seen = ext_cache_inval_count;
		Relation	rel;
		SysScanDesc scan;
		ScanKeyData key;
		HeapTuple	tup;
		bool		found = false;

		ext_cache.valid = false;
		rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
					F_NAMEEQ, CStringGetDatum("audiotricks"));
		scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			Form_pg_extension ext = (Form_pg_extension) GETSTRUCT(tup);

			ext_cache.nsp = ext->extnamespace;
			ext_cache.owner = ext->extowner;
			found = true;
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension audiotricks is not installed in this database")));

		tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(ext_cache.nsp));
		ext_cache.nspowner = InvalidOid;
		if (HeapTupleIsValid(tup))
		{
			ext_cache.nspowner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
			ReleaseSysCache(tup);
		}
		if (seen == ext_cache_inval_count)
			break;
	}
	ext_cache.valid = true;
}

/*
 * AtCheckSchema
 *		The OID of the extension's schema, after checking that it is still
 *		the schema named audiotricks and still owned by the extension's
 *		owner.  The C code names its tables audiotricks.<table> in SPI
 *		queries, which are parsed again whenever a plan is invalidated: a
 *		schema renamed by mistake and replaced by someone else's would run
 *		that someone's objects with the owner's rights.  So every entry
 *		point that uses objects by name calls this first (AtRunPlan does, as
 *		do the token check, the history functions, the audit writer).  Takes
 *		the invalidations sent since the last lock, so a rename committed
 *		during this transaction is seen; then one syscache lookup.  Raises
 *		55000 when the schema was renamed, replaced or handed to another
 *		owner, and when the extension is not installed.
 */
Oid
AtCheckSchema(void)
{
	Oid			nsp;

	AcceptInvalidationMessages();
	if (!ext_cache.valid)
		ext_cache_fill();
	nsp = get_namespace_oid(AT_SCHEMA, true);
	if (nsp != ext_cache.nsp || ext_cache.nspowner != ext_cache.owner)
	{
		char	   *real = get_namespace_name(ext_cache.nsp);
		char	   *nspowner = GetUserNameFromId(ext_cache.nspowner, true);
		char	   *owner = GetUserNameFromId(ext_cache.owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema audiotricks was renamed or replaced"),
				 !OidIsValid(nsp) ?
				 errdetail("The extension's schema is now named \"%s\", and no schema is named audiotricks.",
						   real ? real : "?") :
				 nsp != ext_cache.nsp ?
				 errdetail("The schema named audiotricks is not the extension's own (which is now named \"%s\"), and is not used.",
						   real ? real : "?") :
				 errdetail("Schema audiotricks is owned by role \"%s\", not by the extension's owner \"%s\".",
						   nspowner ? nspowner : "?", owner ? owner : "?"),
				 errhint("Every audiotricks function refuses to run until the extension's own schema is named audiotricks and owned by the extension's owner again.")));
	}
	return nsp;
}

/*
 * AtOwnerOid
 *		The extension's owner (pg_extension.extowner: the superuser who
 *		created it, since it is not trusted), who owns its tables.  Code
 *		that must see every user's sessions runs its fully qualified SPI
 *		queries as this role.  Checks the schema first (AtCheckSchema, and
 *		raises as it does); cheap enough for every call.
 */
Oid
AtOwnerOid(void)
{
	(void) AtCheckSchema();
	return ext_cache.owner;
}

/*
 * AtPgcryptoSchema
 *		Name of the schema pgcrypto is installed in (palloc'd).  Raises 55000
 *		when pgcrypto is missing.
 */
char *
AtPgcryptoSchema(void)
{
	Oid			extoid = get_extension_oid("pgcrypto", true);
	Oid			nsp = InvalidOid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	char	   *name;

	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension pgcrypto is not installed"),
				 errhint("Run CREATE EXTENSION pgcrypto.")));

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	name = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	if (name == NULL)
		elog(ERROR, "could not find the schema of extension pgcrypto");
	return name;
}
