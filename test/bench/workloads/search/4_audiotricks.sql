-- role: bench_app
-- requires: audiotricks.at_history_search(text,integer,text)
BEGIN;
SELECT audiotricks.at_authenticate(:at_token);
SELECT * FROM audiotricks.at_history_search(:q, 20);
END;
