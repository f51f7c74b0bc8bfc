-- at_uuid_v7(): RFC 9562 version 7, time-ordered, unique, monotonic.
CREATE TEMP TABLE u AS
SELECT n, audiotricks.at_uuid_v7() AS id FROM generate_series(1, 10000) n;

-- version 7 and variant 10xx on every value
SELECT count(*) FILTER (WHERE substr(id::text, 15, 1) = '7') AS version_7,
       count(*) FILTER (WHERE substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS variant_rfc,
       count(DISTINCT id) AS distinct_ids
  FROM u;

-- strictly increasing in call order, also within one millisecond
SELECT count(*) AS out_of_order
  FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM u) s
 WHERE prev IS NOT NULL AND id <= prev;

-- the first 48 bits are the Unix time in milliseconds (within a minute of now)
SELECT abs(('x' || lpad(replace(substr(id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
           - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 60000 AS timestamp_is_now
  FROM u WHERE n = 1;

-- many calls in one millisecond all get distinct, ordered values
SELECT count(DISTINCT left(id::text, 13)) < 10000 AS shared_milliseconds
  FROM u;

-- used as the default of every id
SELECT c.relname, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
  JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
 WHERE c.relnamespace = 'audiotricks'::regnamespace AND a.attname = 'id'
   AND NOT c.relispartition
 ORDER BY 1;
