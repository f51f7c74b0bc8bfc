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
	src/identity.o \
	src/throttle.o \
	src/admission.o \
	src/audit.o \
	src/audit_writer.o \
	src/password.o \
	src/session.o \
	src/accounts.o \
	src/history_rows.o \
	src/history_index.o \
	src/history_page.o \
	src/history_search.o \
	src/validate.o \
	src/ciphertext.o \
	src/keyring.o \
	src/keys.o

DATA = \
	src/extension/audiotricks--0.1.0.sql

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
	settings \
	limits \
	keys \
	identity \
	parallel \
	attacks \
	boundaries

REGRESS_OPTS = --inputdir=. --dbname=contrib_regression_audiotricks

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

# The control file is the one source of the version: META.json must agree.
.PHONY: check-meta
check-meta:
	@grep -q '"version": *"$(EXTVERSION)"' META.json || \
		{ echo "META.json does not carry version $(EXTVERSION)"; exit 1; }

# The pg_regress tests, for test/run to check that every one of them ran.
.PHONY: print-regress
print-regress:
	@echo $(REGRESS)
