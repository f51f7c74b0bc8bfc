-- role: bench_app
-- requires: audiotricks.at_set_api_key(text,text)
BEGIN;
SELECT audiotricks.at_authenticate(:at_token);
SELECT audiotricks.at_set_api_key('elevenlabs', :apikey);
SELECT audiotricks.at_get_api_key('elevenlabs');
END;
