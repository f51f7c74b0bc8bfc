// test/clients/prisma/identity.mjs
// The Prisma pattern README shows: a client extension that runs every model
// query of an authenticated client in its own transaction, after
// at_authenticate(token) in that same transaction.  The identity ends with
// the transaction, so the pooled connection carries nothing to the next
// query, and the token travels as a bind parameter ($executeRaw's template).

// Returns a client whose model queries all run as the token's user; a bad,
// expired or revoked token rejects every query with SQLSTATE 28000.
export function authenticated(prisma, token) {
  return prisma.$extends({
    name: 'audiotricks-identity',
    query: {
      $allModels: {
        async $allOperations({ args, query }) {
          const [, result] = await prisma.$transaction([
            prisma.$executeRaw`SELECT audiotricks.at_authenticate(${token})`,
            query(args),
          ]);
          return result;
        },
      },
    },
  });
}

// The SQLSTATE behind an error from Prisma with @prisma/adapter-pg, or
// undefined when the database raised nothing (Prisma's own P-codes are in
// e.code): the adapter keeps the database's code in meta.driverAdapterError.
export function sqlState(e) {
  return e?.meta?.driverAdapterError?.cause?.originalCode;
}
