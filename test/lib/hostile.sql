-- test/lib/hostile.sql — the hostile-input generator of test/t/040_hostile_input.pl
--
-- hostile.pick(type) returns a SQL expression (not a value) of that type:
-- NULL, empty, boundary, random, malformed, huge (1 MB+, rarely), deep JSON
-- (10,000 levels), odd but valid UTF-8 (control characters, lone combining
-- marks, BOM, bidi overrides, U+10FFFF), search operators, and real tokens,
-- ciphertexts and ids from hostile.samples, mutated or not.  Expressions are
-- evaluated when the call runs, so a huge value costs no parsing.
-- hostile.run(function, calls, seed) calls the function that many times with
-- picked arguments (random request.headers too), each call in its own
-- subtransaction, and returns the count of calls per outcome (SQLSTATE, or
-- 'ok') with one message per outcome.  Everything is drawn from random()
-- after setseed(seed), so a seed replays the same calls.

CREATE SCHEMA hostile;
GRANT USAGE ON SCHEMA hostile TO PUBLIC;

-- real values to start from: kind is token, ciphertext, uuid, email,
-- username, password
CREATE TABLE hostile.samples (kind text NOT NULL, v text NOT NULL);
GRANT SELECT ON hostile.samples TO PUBLIC;

CREATE FUNCTION hostile.sample(k text) RETURNS text LANGUAGE sql VOLATILE AS $$
SELECT v FROM hostile.samples WHERE kind = k
 ORDER BY md5(v || random()::text) LIMIT 1
$$;

-- a literal for the value, with its type
CREATE FUNCTION hostile.lit(v text, typ text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN v IS NULL THEN 'NULL::' || typ ELSE pg_catalog.quote_literal(v) || '::' || typ END
$$;

CREATE FUNCTION hostile.ri(lo int, hi int) RETURNS int LANGUAGE sql VOLATILE AS $$
SELECT (lo + floor(random() * (hi::float8 - lo + 1)))::int
$$;

-- a random string of n characters from one of several alphabets
CREATE FUNCTION hostile.rstr(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
SELECT coalesce(string_agg(chr(CASE k
		WHEN 0 THEN hostile.ri(32, 126)						-- printable ASCII
		WHEN 1 THEN hostile.ri(1, 31)						-- control characters
		WHEN 2 THEN hostile.ri(768, 879)					-- combining marks
		WHEN 3 THEN (ARRAY[65279, 8238, 8203, 65533, 1114111, 917505, 173, 133, 8232, 127])[hostile.ri(1, 10)]
		WHEN 4 THEN (ARRAY[39, 34, 40, 41, 38, 124, 33, 60, 45, 62, 58, 42, 32, 92, 46, 61])[hostile.ri(1, 16)]
		WHEN 5 THEN hostile.ri(1, 55295)					-- any BMP character before the surrogates
		ELSE hostile.ri(57344, 1114111)						-- and after
	END), ''), '')
  FROM (SELECT hostile.ri(0, 6) AS k) a, generate_series(1, n)
$$;

-- a token, ciphertext or other string with one random edit
CREATE FUNCTION hostile.mutate(s text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	n int := length(coalesce(s, ''));
	p int := hostile.ri(1, greatest(n, 1));
BEGIN
	IF s IS NULL THEN RETURN NULL; END IF;
	RETURN CASE hostile.ri(0, 8)
		WHEN 0 THEN overlay(s placing chr(hostile.ri(33, 126)) from p for 1)	-- flip one character
		WHEN 1 THEN left(s, p - 1)												-- truncate
		WHEN 2 THEN s || hostile.rstr(hostile.ri(1, 8))							-- append
		WHEN 3 THEN replace(s, '.', '..')										-- empty parts
		WHEN 4 THEN replace(s, '.', '')											-- no parts
		WHEN 5 THEN overlay(s placing '' from p for 1)							-- drop one character
		WHEN 6 THEN s || '.' || s												-- extra part
		WHEN 7 THEN upper(s)
		ELSE translate(s, '-_', '+/')											-- base64 instead of base64url
	END;
END
$$;

-- random JSON text: known keys of the validated shapes with values of any type
CREATE FUNCTION hostile.rjson(depth int) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	keys text[] := ARRAY['timestamp', 'description', 'confidence', 'language', 'model',
		'summaryStyle', 'includeTimestamps', 'speakerDiarization', 'theme', 'autoSave',
		'notifications', 'email', 'browser', 'audioDefaults', 'format', 'quality', 'x', ''];
	r int := hostile.ri(0, CASE WHEN depth > 3 THEN 7 ELSE 9 END);
	s text;
BEGIN
	CASE r
	WHEN 0 THEN RETURN 'null';
	WHEN 1 THEN RETURN (ARRAY['true', 'false'])[hostile.ri(1, 2)];
	WHEN 2 THEN RETURN (ARRAY['0', '-0', '1', '0.5', '1.0000001', '-1', '1e308', '-1e-308', '1e400',
		'123456789012345678901234567890', '2147483648'])[hostile.ri(1, 11)];
	WHEN 3 THEN RETURN to_json((ARRAY['00:00:00', '23:59:59', '99:59:59', '12:60:00', '1:2:3',
		'12:00:00.5', '', 'en', 'pt-BR', 'zz', 'dark'])[hostile.ri(1, 11)])::text;
	WHEN 4, 5, 6, 7 THEN RETURN to_json(hostile.rstr(hostile.ri(0, 20)))::text;
	WHEN 8 THEN
		SELECT '[' || coalesce(string_agg(hostile.rjson(depth + 1), ','), '') || ']'
		  INTO s FROM generate_series(1, hostile.ri(0, 4));
		RETURN s;
	ELSE
		SELECT '{' || coalesce(string_agg(to_json(keys[hostile.ri(1, array_length(keys, 1))])::text
			|| ':' || hostile.rjson(depth + 1), ','), '') || '}'
		  INTO s FROM generate_series(1, hostile.ri(0, 5));
		RETURN s;
	END CASE;
END
$$;

-- text: every kind for every argument; half of the time, a kind that fits the
-- argument's name, so that calls also get past the first checks
CREATE FUNCTION hostile.pick_text(argname text DEFAULT NULL) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	r int := hostile.ri(0, 28);
BEGIN
	IF argname IS NOT NULL AND random() < 0.5 THEN
		r := CASE
			WHEN argname = 'email' THEN (ARRAY[26, 17, 18])[hostile.ri(1, 3)]
			WHEN argname = 'username' THEN (ARRAY[27, 19])[hostile.ri(1, 2)]
			WHEN argname = 'login' THEN (ARRAY[17, 19, 18, 25])[hostile.ri(1, 4)]
			WHEN argname LIKE '%password' THEN (ARRAY[20, 20, 28, 5, 6])[hostile.ri(1, 5)]
			WHEN argname = 'token' THEN (ARRAY[11, 13, 14])[hostile.ri(1, 3)]
			WHEN argname IN ('ciphertext', 'plaintext', 'api_key') THEN (ARRAY[15, 16, 2])[hostile.ri(1, 3)]
			WHEN argname IN ('provider', 'language', 'context', 'preferred_language', 'summary_quality') THEN 21
			WHEN argname = 'query' THEN 10
			WHEN argname = 'audio_url' THEN 22
			WHEN argname = 'headers' THEN (ARRAY[23, 23, 9, 24])[hostile.ri(1, 4)]
			ELSE r END;
	END IF;
	-- huge values, rarely (a few per function and mode)
	IF random() < 0.0008 THEN
		RETURN (ARRAY[
			$q$repeat('a', 1048577)$q$,
			$q$repeat('ab"(&|!) ', 131073)$q$,
			$q$repeat(chr(768), 1048577)$q$,
			$q$repeat('eyJhbGciOiJIUzI1NiJ9.', 65537)$q$,
			$q$'at1.2.' || repeat('A', 2097152)$q$,
			$q$repeat(E'line\n', 262145)$q$])[hostile.ri(1, 6)];
	END IF;
	RETURN CASE
		WHEN r = 0 THEN 'NULL::text'
		WHEN r = 1 THEN $q$''::text$q$
		WHEN r IN (2, 3) THEN hostile.lit(hostile.rstr(hostile.ri(1, 40)), 'text')
		WHEN r = 4 THEN hostile.lit(repeat(hostile.rstr(hostile.ri(1, 20)), hostile.ri(10, 400)), 'text')
		WHEN r = 5 THEN hostile.lit(repeat('x', hostile.ri(70, 80)), 'text')			-- bcrypt's 72 bytes
		WHEN r = 6 THEN hostile.lit(repeat(chr(233), hostile.ri(30, 40)), 'text')		-- 2-byte characters near 72 bytes
		WHEN r = 7 THEN $q$(repeat('[', 10000) || repeat(']', 10000))$q$
		WHEN r = 8 THEN $q$(repeat('{"a":', 10000) || '1' || repeat('}', 10000))$q$
		WHEN r = 9 THEN hostile.lit((ARRAY['{"a":', '[1,2', '{"authorization": 1}', '{"authorization":"Bearer "}',
			'{"Authorization":"bearer x.y.z"}', '[]', 'null', '"', '{"authorization":"Bearer a.b.c", "authorization":"x"}',
			$j${"authorization": "Bearer \u0000"}$j$, 'Bearer', '{'])[hostile.ri(1, 12)], 'text')
		WHEN r = 10 THEN hostile.lit((ARRAY[$s$'"(&|!$s$, '!!!!', '""', '"a" -"b" or c', '(a | b) & !c',
			'a:*', '<->', '- - -', 'or or or', '"unterminated', '&', '|', ' ', 'seed', 'words',
			'seed words', 'a & (b | (c & (d | e)))'])[hostile.ri(1, 17)], 'text')
		WHEN r IN (11, 12) THEN hostile.lit(hostile.sample('token'), 'text')
		WHEN r IN (13, 14) THEN hostile.lit(hostile.mutate(hostile.sample('token')), 'text')
		WHEN r = 15 THEN hostile.lit(hostile.sample('ciphertext'), 'text')
		WHEN r = 16 THEN hostile.lit(hostile.mutate(hostile.sample('ciphertext')), 'text')
		WHEN r = 17 THEN hostile.lit(hostile.sample('email'), 'text')
		WHEN r = 18 THEN hostile.lit(hostile.mutate(hostile.sample('email')), 'text')
		WHEN r = 19 THEN hostile.lit(hostile.sample('username'), 'text')
		WHEN r = 20 THEN hostile.lit(hostile.sample('password'), 'text')
		WHEN r = 21 THEN hostile.lit((ARRAY['openai', 'elevenlabs', 'OpenAI', 'openai ', 'anthropic',
			'en', 'de', 'pt-BR', 'german', 'simple', 'zz-ZZ', 'english_stem'])[hostile.ri(1, 12)], 'text')
		WHEN r = 22 THEN hostile.lit('https://' || hostile.rstr(hostile.ri(0, 30)) || '/a.mp3', 'text')
		WHEN r = 23 THEN hostile.lit('{"authorization":"Bearer ' || coalesce(hostile.sample('token'), '') || '"}', 'text')
		WHEN r = 24 THEN hostile.lit(hostile.rjson(0), 'text')
		WHEN r = 26 THEN hostile.lit('u' || hostile.ri(1, 1000000) || '@Example.com', 'text')	-- valid, new
		WHEN r = 27 THEN hostile.lit('U_' || hostile.ri(1, 1000000), 'text')
		WHEN r = 28 THEN hostile.lit('Aa1' || hostile.rstr(hostile.ri(0, 72)), 'text')			-- passes the class rules
		ELSE hostile.lit(hostile.rstr(hostile.ri(0, 3)) || hostile.sample('username') || '@' || hostile.rstr(hostile.ri(0, 3)), 'text')
	END;
END
$$;

CREATE FUNCTION hostile.pick(typ oid, argname text DEFAULT NULL) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	tname text := format_type(typ, NULL);
BEGIN
	IF random() < 0.06 THEN
		RETURN 'NULL::' || tname;
	END IF;
	CASE tname
	WHEN 'text' THEN
		RETURN hostile.pick_text(argname);
	WHEN 'integer', 'bigint' THEN
		RETURN hostile.lit((ARRAY['0', '1', '-1', '20', '99', '100', '101', '2147483647', '-2147483648',
			(hostile.ri(-1000, 1000))::text, (hostile.ri(-2147483647, 2147483647))::text,
			CASE WHEN tname = 'bigint' THEN '9223372036854775807' ELSE '2' END,
			CASE WHEN tname = 'bigint' THEN '-9223372036854775808' ELSE '3' END])[hostile.ri(1, 13)], tname);
	WHEN 'uuid' THEN
		RETURN hostile.lit(CASE hostile.ri(0, 5)
			WHEN 0 THEN '00000000-0000-0000-0000-000000000000'
			WHEN 1 THEN 'ffffffff-ffff-ffff-ffff-ffffffffffff'
			WHEN 2 THEN md5(random()::text)
			ELSE hostile.sample('uuid') END, 'uuid');
	WHEN 'timestamp with time zone' THEN
		RETURN hostile.lit((ARRAY['infinity', '-infinity', 'epoch', '4714-11-24 00:00:00+00 BC',
			'294276-12-31 23:59:59.999999+00', (now() - random() * interval '30 days')::text,
			(now() + random() * interval '30 days')::text, now()::text])[hostile.ri(1, 8)], 'timestamptz');
	WHEN 'interval' THEN
		RETURN hostile.lit((ARRAY['0', '1 microsecond', '-1 year', '1 year', '178000000 years',
			'-178000000 years', '-2147483648 days', '2147483647 months',
			(random() * 1000)::text || ' days'])[hostile.ri(1, 9)], 'interval');
	WHEN 'jsonb' THEN
		RETURN CASE hostile.ri(0, 39)
			WHEN 0 THEN $q$(repeat('[', 10000) || repeat(']', 10000))::jsonb$q$
			WHEN 1 THEN $q$(repeat('{"timestamp":', 10000) || '1' || repeat('}', 10000))::jsonb$q$
			WHEN 2 THEN CASE WHEN random() < 0.01
				THEN $q$(SELECT jsonb_agg(jsonb_build_object('timestamp', '00:00:01', 'description', repeat('d', 100))) FROM generate_series(1, 20000))$q$
				ELSE $q$'[]'::jsonb$q$ END
			ELSE hostile.lit(hostile.rjson(0), 'jsonb')
		END;
	WHEN 'regconfig' THEN
		RETURN (ARRAY[$q$'simple'::regconfig$q$, $q$'english'::regconfig$q$, $q$'german'::regconfig$q$,
			'0::oid::regconfig', '1::oid::regconfig', '4294967295::oid::regconfig',
			'16384::oid::regconfig', $q$'pg_catalog.pg_class'::regclass::oid::regconfig$q$])[hostile.ri(1, 8)];
	ELSE
		RETURN 'NULL::' || tname;
	END CASE;
END
$$;

-- the statement that makes a trigger function run: an UPDATE or DELETE of
-- a row (by a picked uuid) of the table it is a trigger on
CREATE FUNCTION hostile.trigger_call(fn regprocedure) RETURNS text LANGUAGE sql STABLE AS $$
SELECT CASE WHEN t.tgtype & 8 <> 0
	THEN format('DELETE FROM %s WHERE %I = %%s', t.tgrelid::regclass, a.attname)
	ELSE format('UPDATE %s SET %I = %I WHERE %I = %%s', t.tgrelid::regclass, a.attname, a.attname, a.attname)
	END
  FROM pg_trigger t
  JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = 1
 WHERE t.tgfoid = fn
 ORDER BY t.oid LIMIT 1
$$;

CREATE FUNCTION hostile.run(fn regprocedure, calls int, seed float8)
	RETURNS TABLE(outcome text, n bigint, example text)
	LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	p pg_proc;
	args text;
	sql text;
	hdr text;
	st text;
	msg text;
	trig text;
	counts jsonb := '{}';
	examples jsonb := '{}';
BEGIN
	PERFORM setseed(seed);
	SELECT * INTO p FROM pg_proc WHERE oid = fn;
	IF p.prorettype = 'trigger'::regtype THEN
		trig := hostile.trigger_call(fn);
	END IF;
	FOR i IN 1 .. calls LOOP
		IF trig IS NOT NULL THEN
			sql := format(trig, hostile.pick('uuid'::regtype));
		ELSE
			SELECT coalesce(string_agg(hostile.pick(t, p.proargnames[o]), ', ' ORDER BY o), '') INTO args
			  FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, o);
			sql := CASE WHEN p.proretset
				THEN format('SELECT count(*) FROM %s(%s)', fn::oid::regproc, args)
				ELSE format('SELECT %s(%s) IS NULL', fn::oid::regproc, args) END;
		END IF;
		-- PostgREST's header, set for the transaction, in a third of the calls
		hdr := CASE WHEN random() < 0.33 THEN hostile.pick_text('headers') END;
		BEGIN
			IF hdr IS NOT NULL THEN
				EXECUTE format('SELECT set_config(%L, %s, true)', 'request.headers', hdr);
			END IF;
			EXECUTE sql;
			st := 'ok';
			msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
		END;
		counts := jsonb_set(counts, ARRAY[st], to_jsonb(coalesce((counts ->> st)::bigint, 0) + 1));
		IF NOT examples ? st THEN
			examples := jsonb_set(examples, ARRAY[st],
				to_jsonb(left(coalesce(msg, ''), 200) || ' <- ' || left(sql, 300)));
		END IF;
	END LOOP;
	RETURN QUERY SELECT k, (counts ->> k)::bigint,
		regexp_replace(examples ->> k, '[[:cntrl:]|]', ' ', 'g') FROM jsonb_object_keys(counts) k ORDER BY k;
END
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA hostile TO PUBLIC;
