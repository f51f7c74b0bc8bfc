-- role: plain_app
\set n random(1, 1000)
BEGIN;
SELECT plainsql.authenticate(ps_token) FROM bench.tokens WHERE n = :n;
SELECT * FROM plainsql.history_page(20);
SELECT * FROM plainsql.api_key_status();
SELECT plainsql.history_add(title => 'Quick note', audio_url => 'https://cdn.example.com/audio/note.mp3',
       duration_seconds => 42,
       transcript => 'a short voice note about the next product review meeting with the team',
       summary => 'next review meeting');
END;
