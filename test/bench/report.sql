-- test/bench/report.sql — turns the measurements (bench.r_pgb, bench.r_pc,
-- loaded by test/bench/run) into test/bench/results/latest.md.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset footer off

-- pgbench cells: all rounds together (total transactions / total time)
CREATE TEMP VIEW pgb AS
SELECT wl, impl, clients, mode,
       sum(tx)::bigint AS tx,
       sum(tx) / sum(tx / tps) AS tps,
       sum(lat * tx) / sum(tx) AS lat_ms,
       max(mem_kb) AS mem_kb
  FROM bench.r_pgb WHERE status = 'ok'
 GROUP BY 1, 2, 3, 4;

-- in-server timings: the median of the rounds
CREATE TEMP VIEW pc AS
SELECT grp, impl, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS us,
       sum(calls)::bigint AS calls, max(extra) AS extra
  FROM bench.r_pc WHERE status = 'ok' AND grp <> 'memory'
 GROUP BY 1, 2;

CREATE FUNCTION pg_temp.us(g text, i text) RETURNS float8 LANGUAGE sql AS
$$ SELECT us FROM pc WHERE grp = g AND impl = i $$;
CREATE FUNCTION pg_temp.lat(w text, i text, c int, m text) RETURNS float8 LANGUAGE sql AS
$$ SELECT lat_ms FROM pgb WHERE wl = w AND impl = i AND clients = c AND mode = m $$;
CREATE FUNCTION pg_temp.f(x float8) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN x IS NULL THEN 'n/a'
                WHEN x >= 1000 THEN to_char(round(x), 'FM999G999G999')
                WHEN x >= 100 THEN round(x::numeric, 0)::text
                WHEN x >= 10 THEN round(x::numeric, 1)::text
                ELSE round(x::numeric, 2)::text END $$;

-- targets: (target, numerator, denominator, goal: ratio >= min or <= max)
CREATE TEMP TABLE targets (ord serial, target text, measure text, num float8, den float8,
                           op text, goal float8);
INSERT INTO targets (target, measure, num, den, op, goal) VALUES
 ('at_authenticate ≥ 3× faster than the PL/pgSQL check', 'per call, same token (µs PL/pgSQL / µs audiotricks)',
  pg_temp.us('auth-same', 'plpgsql'), pg_temp.us('auth-same', 'audiotricks'), '>=', 3),
 ('at_authenticate ≥ 3× faster than the PL/pgSQL check', 'per call, 1,000 rotating tokens',
  pg_temp.us('auth-pool', 'plpgsql'), pg_temp.us('auth-pool', 'audiotricks'), '>=', 3),
 ('at_authenticate ≥ 25× faster than pgjwt-style', 'per call, same token',
  pg_temp.us('auth-same', 'pgjwt'), pg_temp.us('auth-same', 'audiotricks'), '>=', 25),
 ('at_authenticate ≥ 25× faster than pgjwt-style', 'per call, 1,000 rotating tokens',
  pg_temp.us('auth-pool', 'pgjwt'), pg_temp.us('auth-pool', 'audiotricks'), '>=', 25),
 ('at_authenticate within 2× of the bare sessions lookup', 'per call, same token (µs audiotricks / µs lookup)',
  pg_temp.us('auth-same', 'audiotricks'), pg_temp.us('auth-same', 'floor'), '<=', 2),
 ('at_authenticate within 2× of the bare sessions lookup', 'per call, 1,000 rotating tokens',
  pg_temp.us('auth-pool', 'audiotricks'), pg_temp.us('auth-pool', 'floor'), '<=', 2),
 ('history page within 1.2× of the floor', 'page 1, per call, generic plan',
  pg_temp.us('page1-generic', 'audiotricks'), pg_temp.us('page1-generic', 'floor'), '<=', 1.2),
 ('history page within 1.2× of the floor', 'page 1, per call, custom plan',
  pg_temp.us('page1-custom', 'audiotricks'), pg_temp.us('page1-custom', 'floor'), '<=', 1.2),
 ('history page within 1.2× of the floor', '100,000 deep, per call, generic plan',
  pg_temp.us('deep-generic', 'audiotricks'), pg_temp.us('deep-generic', 'floor'), '<=', 1.2),
 ('history page within 1.2× of the floor', '100,000 deep, per call, custom plan',
  pg_temp.us('deep-custom', 'audiotricks'), pg_temp.us('deep-custom', 'floor'), '<=', 1.2),
 ('history page within 1.2× of the floor', 'pgbench, auth + page 1, 1 client, prepared (latency ratio)',
  pg_temp.lat('page1', 'audiotricks', 1, 'prepared'), pg_temp.lat('page1', 'floor', 1, 'prepared'), '<=', 1.2),
 ('history page within 1.2× of the floor', 'pgbench, auth + page 100,000 deep, 1 client, prepared',
  pg_temp.lat('deep', 'audiotricks', 1, 'prepared'), pg_temp.lat('deep', 'floor', 1, 'prepared'), '<=', 1.2),
 ('history page within 1.2× of the floor', 'pgbench, auth + page 100,000 deep, 1 client, extended (custom plans)',
  pg_temp.lat('deep@custom', 'audiotricks', 1, 'extended'), pg_temp.lat('deep@custom', 'floor', 1, 'extended'), '<=', 1.2),
 ('deep page ≥ 100× faster than OFFSET', '100,000 deep, per call, generic plan (µs OFFSET / µs audiotricks)',
  pg_temp.us('deep-generic', 'offset'), pg_temp.us('deep-generic', 'audiotricks'), '>=', 100),
 ('deep page ≥ 100× faster than OFFSET', 'pgbench, auth + page, 1 client (latency OFFSET / audiotricks)',
  pg_temp.lat('deep', 'offset', 1, 'prepared'), pg_temp.lat('deep', 'audiotricks', 1, 'prepared'), '>=', 100),
 ('at_login within 1.05× of bcrypt alone (cost 12)', 'per call, 12 alternating pairs in one backend (µs at_login / µs crypt())',
  pg_temp.us('login', 'audiotricks'), pg_temp.us('login', 'floor'), '<=', 1.05),
 ('at_login within 1.05× of bcrypt alone (cost 12)', 'pgbench, 1 client (latency at_login / crypt())',
  pg_temp.lat('login', 'audiotricks', 1, 'prepared'), pg_temp.lat('login', 'floor', 1, 'prepared'), '<=', 1.05),
 ('at_login within 1.05× of bcrypt alone (cost 12)', 'pgbench, 2 clients',
  pg_temp.lat('login', 'audiotricks', 2, 'prepared'), pg_temp.lat('login', 'floor', 2, 'prepared'), '<=', 1.05),
 ('encrypt + decrypt ≥ 50× faster than pgp_sym_encrypt + pgp_sym_decrypt', 'per call (µs pgp / µs audiotricks)',
  pg_temp.us('crypto', 'pgp'), pg_temp.us('crypto', 'audiotricks'), '>=', 50);
-- search: cost follows the user's own history (the floor reads only that
-- user's matching rows), at every size
INSERT INTO targets (target, measure, num, den, op, goal)
SELECT 'search cost grows with the user''s own history, not the table''s',
       'per call, ' || split_part(grp, '@', 2) || ' (' || coalesce(extra::text, '?') || ' rows returned): µs audiotricks / µs floor',
       pg_temp.us(grp, 'audiotricks'), pg_temp.us(grp, 'floor'), '<=', 2
  FROM (SELECT DISTINCT grp, (SELECT extra FROM pc p2 WHERE p2.grp = p.grp AND p2.impl = 'floor') AS extra
          FROM pc p WHERE grp LIKE 'search@%') s
 ORDER BY pg_temp.us(grp, 'floor');
INSERT INTO targets (target, measure, num, den, op, goal)
SELECT 'memory: a backend calling a function many times does not grow',
       impl || ', ' || to_char(extra, 'FM999G999G999') || ' calls: MB after / MB before',
       calls::float8 / 1048576, us / 1048576, '<=', 1.05
  FROM bench.r_pc WHERE grp = 'memory' AND status = 'ok';

SELECT '# audiotricks benchmark: floor vs plain SQL vs audiotricks';
SELECT '';
SELECT format('Run %s on %s; %s; data set: %s users, %s history entries in each schema (database %s); pgbench %s s per cell × %s interleaved rounds after a warm-up; whole run %s; load average %s (other work on the machine shows here). Source: %s.',
              :'date', :'machine', 'PostgreSQL settings: shared_buffers 4GB, jit off, fsync off', :'users', :'rows', :'dbsize',
              :'dur', :'rounds', :'elapsed', :'load', :'src');
SELECT '';
SELECT '## Targets';
SELECT '';
SELECT '| target | measured as | ratio | goal | result |';
SELECT '|---|---|---|---|---|';
SELECT format('| %s | %s | %s | %s %s | %s |', target, measure,
              CASE WHEN num IS NULL OR den IS NULL OR den = 0 THEN 'n/a'
                   ELSE round((num / den)::numeric, 2)::text || '×' END,
              op, goal,
              CASE WHEN num IS NULL OR den IS NULL OR den = 0 THEN 'not measured'
                   WHEN (op = '>=' AND num / den >= goal) OR (op = '<=' AND num / den <= goal) THEN 'PASS'
                   ELSE 'MISS' END)
  FROM targets ORDER BY ord;
SELECT '';
SELECT '## pgbench: TPS and mean latency per workload and implementation';
SELECT '';
SELECT 'Each transaction is what an application sends: the token check and the call, in one transaction (auth workloads: the check alone). floor = the same queries as a superuser, no token check but a bare `sessions` lookup, no RLS. `-M prepared` (generic plans after 5 executions) unless marked `@custom` (`-M extended`: planned every time). Peak memory = the largest private memory (RssAnon, sampled every 0.1 s) of a pgbench backend during the cell.';
SELECT '';
SELECT '| workload | implementation | clients | TPS | mean latency (ms) | vs floor (latency) | peak backend MB |';
SELECT '|---|---|---|---|---|---|---|';
SELECT format('| %s | %s | %s | %s | %s | %s | %s |', p.wl, p.impl, p.clients, pg_temp.f(p.tps), pg_temp.f(p.lat_ms),
              CASE WHEN f.lat_ms IS NULL THEN '' ELSE round((p.lat_ms / f.lat_ms)::numeric, 2)::text || '×' END,
              round(p.mem_kb / 1024.0, 1))
  FROM pgb p LEFT JOIN pgb f ON f.wl = p.wl AND f.impl = 'floor' AND f.clients = p.clients AND f.mode = p.mode
 ORDER BY array_position(ARRAY['auth', 'page1', 'page1@custom', 'deep', 'deep@custom', 'search', 'keys', 'mixed', 'login'], p.wl) NULLS LAST,
          p.wl, p.clients, array_position(ARRAY['floor', 'offset', 'recipe', 'pgjwt', 'pgp', 'keyset', 'definer', 'plpgsql', 'audiotricks'], p.impl);
SELECT '';
SELECT '## In-server time per call (µs, median of rounds)';
SELECT '';
SELECT 'Measured inside one backend (`SELECT count(f(x)) FROM generate_series(1, N)`, or a PL/pgSQL loop for pages and searches, whose plans are cached as an application''s are), so round trips do not hide the work. auth-same: one token over and over; auth-pool: 1,000 users'' tokens in turn (more than the per-backend cache of 64). The bare lookup runs once per row (a SubPlan, checked with EXPLAIN). auth-crypto: what a cache miss computes that the bare lookup does not (the HS256 check with base64url and claims, and the token''s SHA-256 hex), in a C loop (test/bench/jwt_cost.c). login: bcrypt alone and at_login alternating, 12 pairs in one backend.';
SELECT '';
SELECT '| measurement | implementation | µs per call | calls | rows returned |';
SELECT '|---|---|---|---|---|';
SELECT format('| %s | %s | %s | %s | %s |', grp, impl, pg_temp.f(us), calls, coalesce(extra::text, ''))
  FROM pc
 ORDER BY split_part(grp, '@', 1), pg_temp.us(grp, 'floor'), grp,
          array_position(ARRAY['floor', 'offset', 'recipe', 'pgjwt', 'pgp', 'keyset', 'definer', 'plpgsql', 'audiotricks'], impl);
SELECT '';
SELECT '## Scaling: the deepest page and a search, per user size (pgbench, 1 client, auth + call)';
SELECT '';
SELECT 'The deepest page is OFFSET (entries - 20) for OFFSET, the keyset cursor of the same row otherwise; the heavy user (200,000 entries, page 100,000 deep) is in the table above. In-server search times per user size, including a user with 20 entries, are in the table before.';
SELECT '';
SELECT '| user | workload | implementation | TPS | mean latency (ms) | vs floor |';
SELECT '|---|---|---|---|---|---|';
SELECT format('| %s | %s | %s | %s | %s | %s |', split_part(p.wl, '@', 2), split_part(p.wl, '@', 1), p.impl,
              pg_temp.f(p.tps), pg_temp.f(p.lat_ms),
              CASE WHEN f.lat_ms IS NULL THEN '' ELSE round((p.lat_ms / f.lat_ms)::numeric, 2)::text || '×' END)
  FROM pgb p LEFT JOIN pgb f ON f.wl = p.wl AND f.impl = 'floor' AND f.clients = p.clients
 WHERE p.wl ~ '^(deep|search)@(scale|heavy)'
 ORDER BY split_part(p.wl, '@', 1), f.lat_ms, p.wl,
          array_position(ARRAY['floor', 'offset', 'recipe', 'keyset', 'definer', 'audiotricks'], p.impl);
SELECT '';
SELECT '## Not measured';
SELECT '';
SELECT format('- %s / %s (clients %s, %s): %s', wl, impl, clients, mode, status)
  FROM (SELECT DISTINCT wl, impl, clients, mode, status FROM bench.r_pgb WHERE status <> 'ok') s;
SELECT format('- %s / %s: %s', grp, impl, status)
  FROM (SELECT DISTINCT grp, impl, status FROM bench.r_pc WHERE status <> 'ok') s;
SELECT '- ' || line FROM bench.r_notes;
