-- pg_upgrade-safe catalog: pg_upgrade refuses a cluster whose user tables
-- (or indexes, or composite types used by them) have a column of a reg* type
-- that stores an OID of an object pg_upgrade does not preserve: regproc,
-- regprocedure, regoper, regoperator, regconfig, regdictionary,
-- regnamespace, regcollation (regclass, regrole and regtype are allowed).
-- Every relation of the extension (a member of it, or in its schemas) is
-- checked, so a new column of such a type fails here, not at upgrade time.
-- audio_history.search_config holds a configuration's name as text.
CREATE TEMP VIEW ext_relations AS
SELECT c.oid, c.relkind
  FROM pg_class c
 WHERE c.relnamespace IN ('audiotricks'::regnamespace, 'audiotricks_internal'::regnamespace)
    OR c.oid IN (SELECT d.objid FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
                    AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'audiotricks'));
CREATE TEMP VIEW refused_columns AS
SELECT r.oid::regclass AS relation, a.attname, a.atttypid::regtype AS type
  FROM ext_relations r JOIN pg_attribute a ON a.attrelid = r.oid
 WHERE a.attnum > 0 AND NOT a.attisdropped
   AND (a.atttypid = ANY (ARRAY['regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig',
                                'regdictionary', 'regnamespace', 'regcollation']::regtype[])
        -- arrays and domains over them too
        OR a.atttypid IN (SELECT t.oid FROM pg_type t
                           WHERE t.typelem = ANY (ARRAY['regproc', 'regprocedure', 'regoper', 'regoperator',
                                                        'regconfig', 'regdictionary', 'regnamespace',
                                                        'regcollation']::regtype[])
                              OR t.typbasetype = ANY (ARRAY['regproc', 'regprocedure', 'regoper', 'regoperator',
                                                            'regconfig', 'regdictionary', 'regnamespace',
                                                            'regcollation']::regtype[])));
-- tables, indexes and the row type history_entry are all looked at
SELECT count(*) FILTER (WHERE relkind = 'r') >= 6 AS tables,
       count(*) FILTER (WHERE relkind = 'i') >= 10 AS indexes,
       count(*) FILTER (WHERE relkind = 'c') >= 1 AS row_types
  FROM ext_relations;
SELECT * FROM refused_columns ORDER BY 1, 2;
-- the search configuration and the index expression are text
SELECT a.attname, a.atttypid::regtype AS type
  FROM pg_attribute a
 WHERE a.attrelid IN ('audiotricks.audio_history'::regclass, 'audiotricks.audio_history_config_idx'::regclass)
   AND a.attnum = ANY (ARRAY[2, 12]::int2[]) AND a.atttypid <> 'uuid'::regtype
 ORDER BY a.attrelid::regclass::text, a.attnum;
-- the check itself finds such a column (rolled back)
BEGIN;
CREATE TABLE audiotricks_internal.regress_regconfig (c regconfig, d regproc[]);
SELECT * FROM refused_columns ORDER BY 1, 2;
ROLLBACK;
DROP VIEW refused_columns, ext_relations;
