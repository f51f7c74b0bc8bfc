# test/lib/cluster.sh — sourced by test/run, test/demo and test/bench/run.
# Starts and stops a throwaway PostgreSQL 15 cluster, as the postgres user,
# on a free loopback port, with audiotricks preloaded and configured.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# at_free_port: prints a TCP port nobody listens on.  Ports are tried in
# random order: runs started side by side (other worktrees) would otherwise
# all pick the lowest free port and race for it in at_cluster_start.
at_free_port() {
	local port
	for port in $(shuf -i 54320-54999); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# at_random_hex N: N random bytes as hex
at_random_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# --- Encrypted API keys (src/keys.c) ---
# at_write_key_file FILE CURRENT ID... : a key file with a random key for each
# id and CURRENT as the current one, owned by postgres, mode 0600
at_write_key_file() {
	local file=$1 current=$2 id
	shift 2
	(
		umask 077
		{
			echo "# audiotricks master keys (test)"
			for id in "$@"; do echo "key $id $(at_random_hex 32)"; done
			echo "current $current"
		} >"$file"
	)
	chown postgres:postgres "$file"
	chmod 600 "$file"
}

# at_cluster_start DIR PORT [extra postgresql.conf lines...]
at_cluster_start() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	chown postgres:postgres "$dir"
	chmod 700 "$dir"
	at_write_key_file "$dir/audiotricks.keys" 2 1 2
	# from /, which the postgres user can always enter
	(cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" --auth=trust \
		--username=postgres --encoding=UTF8 --locale=C.UTF-8) >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; return 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'audiotricks'"
		echo "audiotricks.jwt_secret = '$(at_random_hex 32)'"
		echo "audiotricks.key_file = '$dir/audiotricks.keys'"
		echo "fsync = off"
		echo "max_connections = 100"
		echo "log_min_error_statement = error"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
		-w -t 60 start) >/dev/null ||
		{ cat "$dir/server.log"; return 1; }
}

# at_cluster_stop DIR
at_cluster_stop() {
	local dir=$1
	if [ -f "$dir/data/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}
