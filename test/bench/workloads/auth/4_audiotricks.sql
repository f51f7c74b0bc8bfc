-- role: bench_app
SELECT audiotricks.at_authenticate(:at_token);
