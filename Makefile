# Makefile for audiotricks (PGXS)

EXTENSION   = audiotricks
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" audiotricks.control)

MODULE_big  = audiotricks
OBJS = \
	src/audiotricks.o \
	src/logscrub.o \
	src/schema.o \
	src/spi.o \
	src/srf.o \
	src/secret.o \
	src/uuid.o \
	src/jwt.o \
	src/token.o \
	src/request_headers.o \
	src/identity.o \
	src/client_addr.o \
	src/throttle.o \
	src/throttle_sql.o \
	src/admission.o \
	src/audit.o \
	src/audit_writer.o \
	src/audit_verify.o \
	src/audit_chain.o \
	src/audit_trigger.o \
	src/password.o \
	src/session.o \
	src/accounts.o \
	src/history_rows.o \
	src/history_index.o \
	src/history_page.o \
	src/history_partitions.o \
	src/history_maintain.o \
	src/history_search.o \
	src/history_add.o \
	src/validate.o \
	src/ciphertext.o \
	src/keyring.o \
	src/keys.o \
	src/mailer.o \
	src/recovery.o

DATA = \
	src/extension/audiotricks--0.1.0.sql

# The PL/Proxy router over shards (README, "Past one machine"): two more
# extensions, installed beside this one: audiotricks_shard in each shard
# database, audiotricks_router (requires plproxy) in the router database.
DATA += \
	src/router/audiotricks_shard.control \
	src/router/audiotricks_shard--0.1.0.sql \
	src/router/audiotricks_router.control \
	src/router/audiotricks_router--0.1.0.sql

REGRESS = \
	schema \
	uuid \
	accounts \
	rls \
	search_path \
	account_security \
	history \
	history_policy \
	history_upgrade \
	history_partitions \
	settings \
	limits \
	keys \
	identity \
	parallel \
	attacks \
	boundaries \
	recovery \
	identity_changes \
	audit_chain

REGRESS_OPTS = --inputdir=. --dbname=contrib_regression_audiotricks
# A test run on its own (make installcheck REGRESS=keys) needs the extension
# in the fresh database: pg_regress creates it there (no CASCADE, so the
# control file's requires first).  The first test, schema, creates it itself
# and checks what CREATE EXTENSION ... CASCADE prints, so a list that holds
# schema must not have it preloaded.
ifeq ($(filter schema,$(REGRESS)),)
REGRESS_OPTS += --load-extension=pgcrypto --load-extension=btree_gin --load-extension=audiotricks
endif

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = $(shell pkg-config --cflags libsodium)
SHLIB_LINK  = $(shell pkg-config --libs libsodium)
# Encrypted API keys (src/keys.c, src/ciphertext.c): OpenSSL's EVP is the
# AES-256-GCM fallback on CPUs without AES-NI
PG_CPPFLAGS += $(shell pkg-config --cflags libcrypto)
SHLIB_LINK  += $(shell pkg-config --libs libcrypto)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: a changed struct in a header must
# rebuild every object, or objects disagree on its size.
$(OBJS): $(wildcard src/*.h)

# The pg_regress tests, for test/run to check that every one of them ran.
.PHONY: print-regress
print-regress:
	@echo $(REGRESS)

# The TAP tests of test/t (PostgreSQL::Test::Cluster), like PGXS's
# prove_installcheck (which only looks in t/): each test starts its own
# nodes with the PostgreSQL found first in PATH, so the extension must be
# installed there (make install; or DESTDIR=... for an install into a copy
# of the tree, as test/run does).  Run as a user who may run initdb (not
# root).  PROVE_TESTS picks files, PROVE_FLAGS adds flags (-v), TAP_TESTDIR
# is where tmp_check (data directories, logs) goes.
PROVE_TESTS ?= $(sort $(wildcard test/t/*.pl))
TAP_TESTDIR ?= $(CURDIR)
.PHONY: prove_installcheck
prove_installcheck:
	@if [ "$$(id -u)" = 0 ]; then echo "prove_installcheck: initdb refuses root; run it as another user (runuser -u postgres -- make prove_installcheck)"; exit 1; fi
	rm -rf '$(TAP_TESTDIR)'/tmp_check
	$(MKDIR_P) '$(TAP_TESTDIR)'/tmp_check
	cd $(srcdir) && TESTDIR='$(TAP_TESTDIR)' PATH="$(DESTDIR)$(bindir):$$PATH" \
		PGPORT='6$(DEF_PGPORT)' AT_ROOT='$(abspath $(srcdir))' \
		PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
		$(PROVE) $(PG_PROVE_FLAGS) -I test/lib $(PROVE_FLAGS) $(PROVE_TESTS)
