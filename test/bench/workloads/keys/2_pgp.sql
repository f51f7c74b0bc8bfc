-- role: plain_app
BEGIN;
SELECT plainsql.authenticate(:ps_token);
SELECT plainsql.set_api_key('elevenlabs', :apikey);
SELECT plainsql.get_api_key('elevenlabs');
END;
