-- test/bench/partition.sh: at_history_add for the heavy user, as pgbench runs it
BEGIN;
SELECT audiotricks.at_authenticate(token) FROM bench.tokens WHERE username = 'heavy';
SELECT audiotricks.at_history_add(title => 'Quick note', audio_url => 'https://cdn.example.com/audio/note.mp3',
       duration_seconds => 42,
       transcript => 'a short voice note about the next product review meeting with the team',
       summary => 'next review meeting');
END;
