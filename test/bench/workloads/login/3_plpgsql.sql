-- role: plain_app
SELECT token FROM plainsql.login(:login, :pw);
