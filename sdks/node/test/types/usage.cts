// Compiled by `tsc --noEmit` (never run): the CommonJS surface (require) as a TypeScript user sees it.
import sdk = require('@dbaudit/sdk');

const client = new sdk.DBaudit({ apiKey: 'k' });
export async function main(): Promise<void> {
  try {
    await client.databases.list();
  } catch (error) {
    if (error instanceof sdk.PermissionDeniedError) console.log(error.scope);
  }
  // @ts-expect-error no such resource
  client.users.list();
}
