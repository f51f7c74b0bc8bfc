-- role: bench_app
SELECT token FROM audiotricks.at_login(:login, :pw);
