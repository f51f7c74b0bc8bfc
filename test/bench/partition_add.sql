-- test/bench/partition.sh: at_history_add for one of 20 users (each has
-- their own audit chain, as an app's users do), as pgbench runs it
\set n random(1, 20)
BEGIN;
SELECT audiotricks.at_authenticate(token) FROM bench.tokens WHERE username = 'light' || :n;
SELECT audiotricks.at_history_add(title => 'Quick note', audio_url => 'https://cdn.example.com/audio/note.mp3',
       duration_seconds => 42,
       transcript => 'a short voice note about the next product review meeting with the team',
       summary => 'next review meeting');
END;
