#!/bin/sh
# test/clients/prisma/no-schema-engine.sh
# Stands in for Prisma's schema engine during `prisma generate`.  The CLI
# insists that the engine binary exists before any command and would download
# it; generating the client needs only the WebAssembly modules shipped in the
# npm packages, so the tests point PRISMA_SCHEMA_ENGINE_BINARY here.  Should
# anything ever run it, it fails loudly instead of pretending to work.
echo "the Prisma schema engine is not installed (not needed for prisma generate)" >&2
exit 1
