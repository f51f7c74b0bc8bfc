-- role: bench_app
-- requires: audiotricks.at_history_add(text,text,bigint,integer,text,text,jsonb,jsonb)
-- requires: audiotricks.at_api_key_status()
\set n random(1, 1000)
BEGIN;
SELECT audiotricks.at_authenticate(at_token) FROM bench.tokens WHERE n = :n;
SELECT * FROM audiotricks.at_history_page(20);
SELECT * FROM audiotricks.at_api_key_status();
SELECT audiotricks.at_history_add(title => 'Quick note', audio_url => 'https://cdn.example.com/audio/note.mp3',
       duration_seconds => 42,
       transcript => 'a short voice note about the next product review meeting with the team',
       summary => 'next review meeting');
END;
