-- role: bench_app
-- requires: audiotricks.at_history_page(integer,text)
BEGIN;
SELECT audiotricks.at_authenticate(:at_token);
SELECT * FROM audiotricks.at_history_page(20);
END;
